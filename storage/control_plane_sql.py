"""The control plane in Postgres: its version, trust root, state and digests.

The processor's state (``LedgerState``) is loaded from these tables; every
commit that writes them bumps the control version (and notifies
:data:`CONTROL_CHANNEL`) and moves their digests in the same transaction
(ADR 0007, ADR 0014). The functions take a connection; :mod:`storage.postgres`
runs them on its pool.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import asyncpg

from ledger.control_digest import (
    CONTROL_DIGEST_TABLES,
    digest_delta,
    digest_hex,
    parse_digest,
)
from ledger.errors import EventError, ReasonCode, StaleBatchError
from ledger.plan_reads import PlanReads
from ledger.state import KeyRecord, LedgerState, ProjectionRow

__all__ = [
    "CONTROL_CHANNEL",
    "CONTROL_TABLES",
    "CONTROL_VERSION_COLUMN",
    "VERSIONED_TABLES",
    "bump_control_version",
    "control_digests",
    "control_row",
    "control_version",
    "load_state",
    "load_state_snapshot",
    "load_state_with_digests",
    "move_digests",
    "refuse_changed_rows",
    "seal_control_digests",
    "set_trust_root",
    "trust_root",
]

#: LISTEN/NOTIFY channel: every commit that moves the control version notifies
#: it (payload: the new version) in its transaction, so a follower of the
#: control state (the authorize service, ADR 0015) learns of it on commit
CONTROL_CHANNEL = "claw_ledger_control"


#: Control-plane projections loaded into LedgerState besides ``keys``.
CONTROL_TABLES: dict[str, str] = {
    "policies": "policy_hash_b64u",
    "tokens": "jti",
    "jobs": "job_id",
    "halts": "target",
    "shadows": "scope",
}


#: The column in which every control-plane row records the control version of
#: the commit that last wrote it (migration 0004).
CONTROL_VERSION_COLUMN = "control_version"


VERSIONED_TABLES = frozenset({"keys", *CONTROL_TABLES})

#: the name the stored digest takes beside a table's columns in :func:`move_digests`
_DIGEST_ALIAS = "claw_stored_digest"


async def control_version(conn: asyncpg.Connection) -> int:
    """The committed control-plane version (bumped by every commit that changes it)."""
    return int(await conn.fetchval("SELECT version FROM control_state WHERE id = 1"))


async def bump_control_version(conn: asyncpg.Connection) -> int:
    """Inside a transaction: increment and return the version (row-locked until
    commit), and notify :data:`CONTROL_CHANNEL` (delivered on commit)."""
    # one statement, one round trip: the notification rides on the RETURNING list
    return int(
        await conn.fetchval(
            "UPDATE control_state SET version = version + 1 WHERE id = 1"
            " RETURNING version, pg_notify($1, (version)::text)",
            CONTROL_CHANNEL,
        )
    )


async def load_state_snapshot(
    conn: asyncpg.Connection,
    configured_trust_root: str | None,
    *,
    since: int | None = None,
    into: LedgerState | None = None,
) -> tuple[int, LedgerState]:
    """Version and state read in one snapshot, so they always belong together.

    With ``since`` (a version whose state ``into`` holds), only the rows
    written after it are read and applied onto ``into``.
    """
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        version = await control_version(conn)
        root = configured_trust_root or await trust_root(conn)
        return version, await load_state(conn, root, since=since, into=into)


async def control_digests(conn: asyncpg.Connection) -> dict[str, int | None]:
    """The stored digest of each control-plane table (``None``: not sealed yet)."""
    rows = await conn.fetch("SELECT table_name, digest FROM control_digests")
    return {r["table_name"]: parse_digest(r["digest"]) for r in rows}


async def load_state_with_digests(
    conn: asyncpg.Connection, configured_trust_root: str | None
) -> tuple[int, LedgerState, dict[str, int | None]]:
    """The whole control state, its version and the stored digests, in one snapshot."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        version = await control_version(conn)
        root = configured_trust_root or await trust_root(conn)
        state = await load_state(conn, root)
        return version, state, await control_digests(conn)


def control_row(record: asyncpg.Record) -> dict[str, Any]:
    """A control-plane row as the state holds it (without the bookkeeping column)."""
    return {k: v for k, v in record.items() if k != CONTROL_VERSION_COLUMN}


async def seal_control_digests(
    conn: asyncpg.Connection, version: int, digests: Mapping[str, int]
) -> bool:
    """Record the digests of tables not sealed yet, computed from the state of
    ``version``; nothing (``False``) when the control plane has moved since."""
    async with conn.transaction():
        current = await conn.fetchval("SELECT version FROM control_state WHERE id = 1 FOR UPDATE")
        if current != version:
            return False
        await conn.executemany(
            "UPDATE control_digests SET digest = $2 WHERE table_name = $1 AND digest IS NULL",
            [(table, digest_hex(digest)) for table, digest in digests.items()],
        )
        return True


#: the key column of every control-plane table
_KEY_COLUMNS: dict[str, str] = {"keys": "did", **CONTROL_TABLES}
#: the columns a scope read may select on (ledger.control_reads.CONTROL_SCOPES)
_SCOPE_COLUMNS: dict[str, frozenset[str]] = {"tokens": frozenset({"mission_id", "sub"})}


async def refuse_changed_rows(conn: asyncpg.Connection, reads: PlanReads, since: int) -> None:
    """Inside the commit, holding the control order lock: raise
    :class:`StaleBatchError` when a control-plane row in ``reads`` (by key, by
    scope, or any row of a table read whole) was written by a commit after
    version ``since``, the state the batch was planned on (ADR 0029). The lock
    keeps every other control commit out until this transaction ends, so
    nothing can change between this read and the commit. One statement."""
    args: list[Any] = [since]
    selects = []

    def select(table: str, where: str) -> None:
        # table and column names are constants of _KEY_COLUMNS and _SCOPE_COLUMNS
        column = _KEY_COLUMNS[table]
        selects.append(
            f"SELECT '{table}' AS table_name, {column}::text AS key, {CONTROL_VERSION_COLUMN}"
            f" FROM {table} WHERE {where}{CONTROL_VERSION_COLUMN} > $1"
        )

    for table in sorted(reads.whole):
        select(table, "")
    for table, values in sorted(reads.keys.items()):
        if table not in reads.whole and values:
            args.append(sorted(values))
            select(table, f"{_KEY_COLUMNS[table]} = ANY(${len(args)}::text[]) AND ")
    for table, column, value in sorted(reads.scopes):
        if column not in _SCOPE_COLUMNS.get(table, ()):
            raise ValueError(f"no scope read of {table} by {column!r}")
        if table not in reads.whole:
            args.append(value)
            select(table, f"{column} = ${len(args)} AND ")
    if not selects:
        return
    changed = await conn.fetchrow(" UNION ALL ".join(selects) + " LIMIT 1", *args)
    if changed is not None:
        raise StaleBatchError(
            f"{changed['table_name']} row {changed['key']!r} was changed at control version"
            f" {changed[CONTROL_VERSION_COLUMN]}, after version {since} this batch was planned on"
        )


async def move_digests(conn: asyncpg.Connection, projections: Sequence[ProjectionRow]) -> None:
    """Inside the commit, after :func:`bump_control_version` and before the upsert:
    move each touched table's digest from its stored rows to what the upsert
    makes of them.

    The bump's row lock orders every commit that changes the control plane (and
    :func:`seal_control_digests` takes the same lock), so the digest and the
    old rows are read without a lock of their own, in one round trip per table.
    """
    by_table: dict[str, list[ProjectionRow]] = {}
    for row in projections:
        if row.table in CONTROL_DIGEST_TABLES:
            by_table.setdefault(row.table, []).append(row)
    updates = []
    for table, changes in by_table.items():
        key_column = changes[0].key_column
        keys = list({c.values[key_column] for c in changes})
        # the digest row joined to the stored rows of the keys: one row with NULL
        # columns when none is stored yet (table and column names are constants)
        records = await conn.fetch(
            f"SELECT d.digest AS {_DIGEST_ALIAS}, t.* FROM control_digests d"
            f" LEFT JOIN {table} t ON t.{key_column} = ANY($2::text[])"
            " WHERE d.table_name = $1",
            table,
            keys,
        )
        digest = parse_digest(records[0][_DIGEST_ALIAS]) if records else None
        if digest is None:  # not sealed yet: the first processor start computes it
            continue
        old = {
            r[key_column]: {
                k: v for k, v in r.items() if k not in (CONTROL_VERSION_COLUMN, _DIGEST_ALIAS)
            }
            for r in records
            if r[key_column] is not None
        }
        updates.append((table, digest_hex(digest + digest_delta(table, old, changes))))
    if updates:
        await conn.executemany(
            "UPDATE control_digests SET digest = $2 WHERE table_name = $1", updates
        )


async def trust_root(conn: asyncpg.Connection) -> str | None:
    """The DID of the first admin key, recorded by ``claw-ledger init``."""
    value = await conn.fetchval("SELECT value FROM ledger_meta WHERE key = 'trust_root'")
    return str(value) if value is not None else None


async def set_trust_root(conn: asyncpg.Connection, did: str) -> None:
    """Record the trust root once; bump the control version so processors reload."""
    async with conn.transaction():
        existing = await trust_root(conn)
        if existing is not None and existing != did:
            raise EventError(
                ReasonCode.TRUST_ROOT_EXISTS,
                f"this ledger already has the trust root {existing}",
                hint="use that admin key; a ledger has exactly one trust root",
            )
        await conn.execute(
            "INSERT INTO ledger_meta (key, value) VALUES ('trust_root', $1) ON CONFLICT DO NOTHING",
            did,
        )
        await bump_control_version(conn)


async def load_state(
    conn: asyncpg.Connection,
    trust_root: str | None,
    *,
    since: int | None = None,
    into: LedgerState | None = None,
    tables: Collection[str] | None = None,
) -> LedgerState:
    """The control state from its tables (all of them, or those named in ``tables``).

    With ``since``, only rows whose ``control_version`` is newer are read, and
    they replace their keys in ``into`` (projections are upserted, never
    deleted, so the newest row of each key is the whole story).
    """
    state = into if into is not None else LedgerState()
    state.trust_root = trust_root
    where, args = ("", ()) if since is None else (f" WHERE {CONTROL_VERSION_COLUMN} > $1", (since,))
    # table names are constants
    if tables is None or "keys" in tables:
        for r in await conn.fetch("SELECT * FROM keys" + where, *args):
            state.keys[r["did"]] = KeyRecord.from_row(r)
    for table, key in CONTROL_TABLES.items():
        if tables is not None and table not in tables:
            continue
        target: dict[str, dict[str, Any]] = getattr(state, table)
        for r in await conn.fetch(f"SELECT * FROM {table}{where}", *args):
            target[r[key]] = control_row(r)
    return state
