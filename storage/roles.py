"""The ledger's database roles: a writer for the processor, a reader for queries.

The owner (the role ``claw-ledger migrate`` connects as) owns the tables; the
**writer** may append to ``events``/``quarantine`` and upsert the projections
and positions, the **reader** may only SELECT (the grants are the function
``claw_ledger_grant_roles`` of ``migrations/0006_least_privilege.sql``). Role
names derive from the database name, so several ledgers can share a server:
``<database>_writer`` and ``<database>_reader`` (ADR 0013).

Creating a role needs CREATEROLE (or superuser). Without it,
:func:`ensure_roles` raises :class:`RolesNotCreated` carrying the SQL that an
administrator must run (:func:`roles_sql`, also what ``migrate --print-grants``
prints).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from ledger.errors import MigrationError
from storage import connect

__all__ = [
    "RoleCredentials",
    "RolesNotCreated",
    "database_name",
    "ensure_roles",
    "existing_roles",
    "generate_password",
    "grant_roles",
    "grants_available",
    "role_names",
    "role_url",
    "roles_sql",
]

_MAX_IDENT = 63  # NAMEDATALEN - 1: Postgres silently truncates longer names


class RolesNotCreated(MigrationError):
    """The connecting role may not create the writer/reader roles; ``sql`` says what to run."""

    def __init__(self, message: str, sql: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.sql = sql


@dataclass(frozen=True)
class RoleCredentials:
    """Login names and passwords of the writer and the reader of one database."""

    writer: str
    writer_password: str
    reader: str
    reader_password: str


def generate_password() -> str:
    return secrets.token_urlsafe(24)


def database_name(database_url: str) -> str:
    """The database a URL names (the path), e.g. ``claw_ledger``."""
    name = urlsplit(database_url).path.lstrip("/")
    if not name:
        raise MigrationError(
            f"the database URL names no database: {database_url.split('@')[-1]}",
            hint="e.g. postgresql://user@host:5432/claw_ledger",
        )
    return name


def role_names(database: str) -> tuple[str, str]:
    """(writer, reader) role names for ``database``; shortened with a hash past 63 bytes."""
    base = database.lower()
    if len(base.encode()) + len("_writer") > _MAX_IDENT:
        digest = hashlib.sha256(database.encode()).hexdigest()[:10]
        base = f"{base.encode()[:40].decode(errors='ignore')}_{digest}"
    return f"{base}_writer", f"{base}_reader"


def role_url(database_url: str, user: str, password: str) -> str:
    """``database_url`` with its user and password replaced."""
    parts = urlsplit(database_url)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _create_role_sql(name: str, password: str) -> str:
    # NOINHERIT and no attributes: the role can do exactly what it is granted
    attributes = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT"
    return (
        # a tagged quote: a role name cannot end the block early
        "DO $claw$ BEGIN\n"
        f"  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {_literal(name)}) THEN\n"
        f"    CREATE ROLE {_ident(name)} {attributes};\n"
        "  END IF;\n"
        "END $claw$;\n"
        # only LOGIN and the password: a CREATEROLE owner may not name SUPERUSER & co.
        f"ALTER ROLE {_ident(name)} LOGIN PASSWORD {_literal(password)};\n"
    )


def roles_sql(credentials: RoleCredentials) -> str:
    """The SQL that creates both roles and grants their rights (idempotent).

    Run it as the owner of the ledger's tables (a superuser will do) after the
    migrations, in the ledger's database.
    """
    return (
        "-- claw-ledger database roles (ADR 0013); run in the ledger's database, after migrate\n"
        + _create_role_sql(credentials.writer, credentials.writer_password)
        + _create_role_sql(credentials.reader, credentials.reader_password)
        + _grants_sql(credentials.writer, credentials.reader)
    )


#: the functions that run as the owner and that the writer calls (migration 0021
#: takes them from PUBLIC)
_WRITER_FUNCTIONS = ("claw_ensure_event_partitions(bigint)",)


def _grants_sql(writer: str, reader: str) -> str:
    """The rights of both roles: the tables (``claw_ledger_grant_roles``) and the
    owner's functions the writer calls."""
    return f"SELECT claw_ledger_grant_roles({_literal(writer)}, {_literal(reader)});\n" + "".join(
        f"GRANT EXECUTE ON FUNCTION {function} TO {_ident(writer)};\n"
        for function in _WRITER_FUNCTIONS
    )


async def _may_create_roles(conn: Any) -> bool:
    row = await conn.fetchrow(
        "SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user"
    )
    return bool(row and (row["rolsuper"] or row["rolcreaterole"]))


async def _missing(conn: Any, names: list[str]) -> list[str]:
    rows = await conn.fetch("SELECT rolname FROM pg_roles WHERE rolname = ANY($1::text[])", names)
    found = {r["rolname"] for r in rows}
    return [n for n in names if n not in found]


async def grants_available(owner_url: str) -> bool:
    """Whether the schema has ``claw_ledger_grant_roles`` (migration 0006)."""
    conn = await connect(owner_url)
    try:
        return bool(
            await conn.fetchval(
                "SELECT to_regprocedure('claw_ledger_grant_roles(text, text)') IS NOT NULL"
            )
        )
    finally:
        await conn.close()


async def existing_roles(owner_url: str, names: list[str]) -> list[str]:
    """Those of ``names`` that are roles of the server, in the order given."""
    conn = await connect(owner_url)
    try:
        missing = await _missing(conn, names)
    finally:
        await conn.close()
    return [name for name in names if name not in missing]


async def grant_roles(owner_url: str, writer: str, reader: str) -> None:
    """Grant existing roles their rights, leaving everything else about them alone."""
    conn = await connect(owner_url)
    try:
        await _run(conn, _grants_sql(writer, reader))
    finally:
        await conn.close()


async def _run(conn: Any, sql: str, *args: Any) -> None:
    try:
        await conn.execute(sql, *args)
    except asyncpg.PostgresError as exc:
        raise MigrationError(
            f"cannot create or grant the database roles: {type(exc).__name__}: {exc}",
            hint="run `claw-ledger migrate` as the owner of the ledger's tables",
        ) from exc


async def ensure_roles(owner_url: str, credentials: RoleCredentials) -> list[str]:
    """Create (or reset the passwords of) the writer and reader, then grant their rights.

    Needs the schema (``migrate`` first). Returns the roles that were created.
    Raises :class:`RolesNotCreated` when the connecting role may not create
    or alter roles; the grants are then not applied either.
    """
    names = [credentials.writer, credentials.reader]
    conn = await connect(owner_url)
    try:
        missing = await _missing(conn, names)
        if not await _may_create_roles(conn):
            if missing:
                raise RolesNotCreated(
                    f"the role {await conn.fetchval('SELECT current_user')} may not create"
                    f" the database roles {', '.join(missing)}",
                    roles_sql(credentials),
                    hint="have an administrator run the SQL above in this database"
                    " (`claw-ledger migrate --print-grants` prints it), then migrate again",
                )
            # the roles exist: their passwords are the administrator's business
            await _run(conn, _grants_sql(credentials.writer, credentials.reader))
            return []
        async with conn.transaction():
            await _run(conn, roles_sql(credentials))
        return missing
    finally:
        await conn.close()
