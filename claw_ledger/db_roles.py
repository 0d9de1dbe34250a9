"""The writer's and reader's passwords of the local ledger, and migrate with roles.

Passwords are generated once per database and kept in
``<state_dir>/db-roles.json`` (mode 0600); ``services up`` records the writer
and reader URLs built from them, ``migrate`` creates the roles with them
(ADR 0013).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from claw_ledger.config import Settings, effective_database_url
from ledger.errors import ConfigError
from storage.migrate import MigrationReport, migrate
from storage.roles import (
    RoleCredentials,
    database_name,
    ensure_roles,
    generate_password,
    grants_available,
    role_names,
    role_url,
)

__all__ = ["ROLES_FILE_NAME", "migrate_with_roles", "role_credentials", "role_urls"]

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


def role_credentials(state_dir: Path, database: str) -> RoleCredentials:
    """The writer/reader credentials of ``database``, generated and stored on first use."""
    path = state_dir / ROLES_FILE_NAME
    data = _read(path)
    databases = data.setdefault("databases", {})
    entry = databases.get(database)
    writer, reader = role_names(database)
    if (
        isinstance(entry, dict)
        and entry.get("writer") == writer
        and entry.get("reader") == reader
        and all(isinstance(entry.get(k), str) for k in ("writer_password", "reader_password"))
    ):
        return RoleCredentials(writer, entry["writer_password"], reader, entry["reader_password"])
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


async def migrate_with_roles(
    settings: Settings, *, directory: Path | None = None
) -> tuple[MigrationReport, list[str]]:
    """Apply the migrations as the owner, then create the roles and grant their rights.

    Returns the report and the roles created. A ``directory`` of other
    migrations than the project's, without migration 0006, gets no roles. Raises
    :class:`storage.roles.RolesNotCreated` (with the SQL to run) when the owner
    may not create roles.
    """
    url = effective_database_url(settings, role="owner")
    report = await migrate(url, directory=directory)
    if directory is not None and not await grants_available(url):
        return report, []
    credentials = role_credentials(settings.state_dir, database_name(url))
    created = await ensure_roles(url, credentials)
    return report, created
