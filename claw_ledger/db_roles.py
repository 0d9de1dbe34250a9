"""The writer's and reader's passwords of the local ledger, and migrate with roles.

Passwords are generated once per database and kept in
``<state_dir>/db-roles.json`` (mode 0600); ``services up`` records the writer
and reader URLs built from them, ``migrate`` creates the roles with them
(ADR 0013). ``migrate`` changes the password of a role that exists only on
the state dir's own local server, or when asked to rotate: on a shared server,
a state dir that did not set them must not lock out whoever did.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NamedTuple

from claw_ledger.config import Settings, effective_database_url, read_services_file
from ledger.errors import ConfigError
from storage.migrate import MigrationReport, migrate
from storage.roles import (
    RoleCredentials,
    database_name,
    ensure_roles,
    existing_roles,
    generate_password,
    grant_roles,
    grants_available,
    role_names,
    role_url,
)

__all__ = [
    "ROLES_FILE_NAME",
    "MigrateOutcome",
    "kept_roles_note",
    "migrate_with_roles",
    "role_credentials",
    "role_urls",
    "stored_credentials",
]

ROLES_FILE_NAME = "db-roles.json"


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"cannot read {path}: {exc}", hint="remove it to generate new passwords"
        ) from exc
    return data if isinstance(data, dict) else {}


def _write_private(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    # created 0600: the passwords never exist in a file others can read
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _stored(data: dict[str, Any], database: str) -> RoleCredentials | None:
    entry = data.get("databases", {}).get(database)
    writer, reader = role_names(database)
    if (
        isinstance(entry, dict)
        and entry.get("writer") == writer
        and entry.get("reader") == reader
        and all(isinstance(entry.get(k), str) for k in ("writer_password", "reader_password"))
    ):
        return RoleCredentials(writer, entry["writer_password"], reader, entry["reader_password"])
    return None


def stored_credentials(state_dir: Path, database: str) -> RoleCredentials | None:
    """The writer/reader credentials of ``database`` this state dir holds, if any."""
    return _stored(_read(state_dir / ROLES_FILE_NAME), database)


def role_credentials(state_dir: Path, database: str, *, new: bool = False) -> RoleCredentials:
    """The writer/reader credentials of ``database``, generated and stored on first
    use (and with ``new``, in place of the stored ones)."""
    path = state_dir / ROLES_FILE_NAME
    data = _read(path)
    databases = data.setdefault("databases", {})
    stored = None if new else _stored(data, database)
    if stored is not None:
        return stored
    writer, reader = role_names(database)
    credentials = RoleCredentials(writer, generate_password(), reader, generate_password())
    databases[database] = {
        "writer": writer,
        "writer_password": credentials.writer_password,
        "reader": reader,
        "reader_password": credentials.reader_password,
    }
    data["format"] = 1
    _write_private(path, data)
    return credentials


def role_urls(state_dir: Path, owner_url: str) -> tuple[str, str]:
    """(writer URL, reader URL) for the database of ``owner_url``."""
    credentials = role_credentials(state_dir, database_name(owner_url))
    return (
        role_url(owner_url, credentials.writer, credentials.writer_password),
        role_url(owner_url, credentials.reader, credentials.reader_password),
    )


def kept_roles_note(kept: list[str]) -> str:
    """What to do about roles whose passwords ``migrate`` left alone."""
    return (
        f"note: kept the passwords of the existing roles {', '.join(kept)}: this state dir"
        " holds none for them. Give the processor and the queries the writer and reader"
        " URLs of whoever set them (CLAW_LEDGER_WRITER_URL, CLAW_LEDGER_READER_URL), or run"
        " `claw-ledger migrate --rotate-role-passwords` to set new ones here (every process"
        " using the old ones is then refused)"
    )


def _own_server(settings: Settings, owner_url: str) -> bool:
    """Whether ``owner_url`` is the database of the server this state dir runs."""
    record = (read_services_file(settings.state_dir) or {}).get("postgres")
    return isinstance(record, dict) and record.get("url") == owner_url


class MigrateOutcome(NamedTuple):
    report: MigrationReport
    #: the roles this run created
    created: list[str]
    #: roles that existed, whose passwords this state dir does not hold: left as they are
    kept: list[str]


async def migrate_with_roles(
    settings: Settings, *, directory: Path | None = None, rotate_passwords: bool = False
) -> MigrateOutcome:
    """Apply the migrations as the owner, then create the roles and grant their rights.

    Existing roles keep their passwords unless the server is the state dir's
    own (``services up``; its stored passwords are the truth, and deleting
    them rotates) or ``rotate_passwords`` is given (new ones, stored here). On
    a shared server another state dir or an administrator may have set them,
    and changing them would refuse every process that uses them: such roles
    are only granted their rights, and reported as ``kept`` when this state
    dir holds no passwords for them. A ``directory`` of other migrations than the project's,
    without migration 0006, gets no roles. Raises
    :class:`storage.roles.RolesNotCreated` (with the SQL to run) when the owner
    may not create roles.
    """
    url = effective_database_url(settings, role="owner")
    report = await migrate(url, directory=directory)
    if directory is not None and not await grants_available(url):
        return MigrateOutcome(report, [], [])
    database = database_name(url)
    if not rotate_passwords and not _own_server(settings, url):
        writer, reader = role_names(database)
        present = await existing_roles(url, [writer, reader])
        if present == [writer, reader]:
            await grant_roles(url, writer, reader)
            stored = stored_credentials(settings.state_dir, database)
            return MigrateOutcome(report, [], present if stored is None else [])
    credentials = role_credentials(settings.state_dir, database, new=rotate_passwords)
    created = await ensure_roles(url, credentials)
    return MigrateOutcome(report, created, [])
