"""The migration runner: ``migrations/NNNN_name.sql`` applied in order, once each.

The SQL files are package data of the ``migrations`` package, found with
:mod:`importlib.resources`, so an installed wheel migrates without a checkout.

Rules:

* files are named ``NNNN_name.sql`` (four digits, then a name) and applied in
  numeric order, each in its own transaction together with its row in
  ``schema_migrations(version, name, checksum, applied_at)``; a file must not
  hold its own ``BEGIN``/``COMMIT``;
* an applied migration is never changed: its SHA-256 (of the text with LF line
  ends) is stored, and a changed file is refused; write a new migration instead;
* a database whose schema is newer than the newest file is refused (old code
  must not write into a newer schema), as is a new file numbered below an
  already applied version;
* a session-level advisory lock serialises concurrent runs against one database.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.resources
import re
import time
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import asyncpg

import migrations
from ledger.errors import MigrationError
from storage import connect

__all__ = [
    "MIGRATIONS_DIR",
    "Migration",
    "MigrationReport",
    "check_schema",
    "discover_migrations",
    "migrate",
    "schema_version",
]

#: The ``migrations`` package's SQL files (a directory in a checkout or an installed wheel).
MIGRATIONS_DIR: Traversable = importlib.resources.files(migrations)
#: advisory lock key shared by every claw-ledger migrate run ("clawmigr" as int64).
ADVISORY_LOCK_KEY = int.from_bytes(b"clawmigr", "big") & 0x7FFF_FFFF_FFFF_FFFF
_FILE_RE = re.compile(r"^(\d{4})_([A-Za-z0-9][A-Za-z0-9_\-]*)\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    path: Traversable
    sql: str = field(repr=False)
    checksum: str

    @property
    def filename(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class MigrationReport:
    """What a :func:`migrate` run did."""

    applied: tuple[Migration, ...]
    already_applied: int
    version: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "applied": [{"version": m.version, "name": m.name} for m in self.applied],
            "already_applied": self.already_applied,
            "version": self.version,
        }


def _checksum(text: str) -> str:
    normalised = text.replace("\r\n", "\n")
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()


def discover_migrations(directory: Path | Traversable | None = None) -> list[Migration]:
    """The migrations in ``directory`` (default :data:`MIGRATIONS_DIR`), by version."""
    root: Traversable = MIGRATIONS_DIR if directory is None else directory
    if not root.is_dir():
        raise MigrationError(
            f"migrations directory {root} does not exist",
            hint="run from a checkout or an installed tree that has migrations/",
        )
    found: dict[int, Migration] = {}
    for path in sorted(
        (p for p in root.iterdir() if p.name.endswith(".sql") and p.is_file()),
        key=lambda p: p.name,
    ):
        match = _FILE_RE.match(path.name)
        if match is None:
            raise MigrationError(
                f"migration file {path.name} is not named NNNN_name.sql",
                hint="rename it, e.g. 0002_add_index.sql",
            )
        version = int(match.group(1))
        if version in found:
            raise MigrationError(
                f"two migrations share version {version}: {found[version].filename}, {path.name}"
            )
        sql = path.read_text(encoding="utf-8")
        found[version] = Migration(version, match.group(2), path, sql, _checksum(sql))
    return [found[v] for v in sorted(found)]


async def _acquire_lock(conn: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", ADVISORY_LOCK_KEY):
        if time.monotonic() > deadline:
            raise MigrationError(
                f"another migration run holds the lock for more than {timeout:.0f}s",
                hint="wait for it to finish, or look for a stuck `claw-ledger migrate`",
            )
        await asyncio.sleep(0.1)


async def _applied(conn: Any) -> dict[int, tuple[str, str]]:
    rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
    return {int(r["version"]): (str(r["name"]), str(r["checksum"])) for r in rows}


def _check_applied(applied: dict[int, tuple[str, str]], files: list[Migration]) -> None:
    """Refuse a database that is newer than the files, or whose history was changed."""
    newest_file = files[-1].version if files else 0
    newest_db = max(applied, default=0)
    if newest_db > newest_file:
        raise MigrationError(
            f"the database schema is at version {newest_db} ({applied[newest_db][0]}), "
            f"newer than this code's newest migration {newest_file}",
            hint="upgrade claw-ledger to a version that knows this schema, "
            "or point --database-url at the right database",
        )
    by_version = {m.version: m for m in files}
    for version in sorted(applied):
        name, checksum = applied[version]
        migration = by_version.get(version)
        if migration is None:
            raise MigrationError(
                f"migration {version:04d}_{name} is applied in the database"
                " but its file is missing",
                hint="restore the file; applied migrations are never removed",
            )
        if migration.checksum != checksum:
            raise MigrationError(
                f"migration {migration.filename} changed after it was applied "
                f"(checksum {checksum[:12]}… in the database, {migration.checksum[:12]}… on disk)",
                hint="restore the applied text and put the change in a new migration file",
            )
    for migration in files:
        if migration.version not in applied and migration.version < newest_db:
            raise MigrationError(
                f"migration {migration.filename} is older than the applied version {newest_db}",
                hint="give the new migration a number above every applied one",
            )


async def migrate(
    database_url: str, *, directory: Path | None = None, lock_timeout: float = 120.0
) -> MigrationReport:
    """Apply the pending migrations of ``directory`` (default ``migrations/``) to the database.

    Idempotent; raises :class:`MigrationError` on a newer or changed schema or a
    failed migration (which is rolled back; earlier ones stay applied).
    """
    files = discover_migrations(directory)
    conn = await connect(database_url)
    try:
        await _acquire_lock(conn, lock_timeout)
        try:
            await conn.execute(_CREATE_TABLE)
            applied = await _applied(conn)
            _check_applied(applied, files)
            done: list[Migration] = []
            for migration in files:
                if migration.version in applied:
                    continue
                try:
                    async with conn.transaction():
                        await conn.execute(migration.sql)
                        await conn.execute(
                            "INSERT INTO schema_migrations (version, name, checksum)"
                            " VALUES ($1, $2, $3)",
                            migration.version,
                            migration.name,
                            migration.checksum,
                        )
                except asyncpg.PostgresError as exc:
                    raise MigrationError(
                        f"migration {migration.filename} failed and was rolled back: "
                        f"{type(exc).__name__}: {exc}",
                        hint=f"fix {migration.path} (it was not applied) and run migrate again",
                    ) from exc
                done.append(migration)
            version = max([*applied, *(m.version for m in done)], default=None)
            return MigrationReport(tuple(done), len(applied), version)
        finally:
            with contextlib.suppress(Exception):  # closing the connection releases it anyway
                await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)
    finally:
        await conn.close()


async def schema_version(database_url: str) -> int | None:
    """The newest applied migration version, or None for an unmigrated database."""
    conn = await connect(database_url)
    try:
        exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
        if not exists:
            return None
        value = await conn.fetchval("SELECT max(version) FROM schema_migrations")
        return None if value is None else int(value)
    finally:
        await conn.close()


async def check_schema(database_url: str, *, directory: Path | None = None) -> int:
    """Raise MigrationError unless the database is at exactly the newest migration.

    For processes that need the schema (processor, API) to call at start-up.
    """
    files = discover_migrations(directory)
    wanted = files[-1].version if files else None
    current = await schema_version(database_url)
    if current != wanted:
        if current is not None and wanted is not None and current > wanted:
            hint = "upgrade claw-ledger; the database is newer than this code"
        else:
            hint = "run `claw-ledger migrate`"
        raise MigrationError(
            f"the database schema is at version {current}, this code needs {wanted}", hint=hint
        )
    return current if current is not None else 0
