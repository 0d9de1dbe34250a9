"""The Postgres reads of a processor whose control state is a bounded cache (ADR 0020).

A processor no longer loads ``tokens`` and ``jobs`` at start: it streams them
once to check their digests (ADR 0014), then reads the rows each batch needs
by key (and the rows of a halt's scope: ``ScopeRead``), together with the
control version and what changed since the version it holds, in one
snapshot per read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from typing import Any

import asyncpg

from ledger.control_digest import CONTROL_DIGEST_TABLES, DIGEST_MODULUS, row_hash
from ledger.control_reads import ScopeRead
from storage import control_plane_sql as control_plane
from storage.protocol import ControlQuery, ControlRead, ControlStart

__all__ = ["open_control_state", "read_control", "version_and_recorded"]

#: the key column of each control-plane table (table names are constants)
_KEY_COLUMNS: dict[str, str] = {"keys": "did", **control_plane.CONTROL_TABLES}
#: the columns a scope read may select on, per table (each indexed; names go into SQL)
_SCOPE_COLUMNS: dict[str, frozenset[str]] = {"tokens": frozenset({"sub", "mission_id"})}
#: rows per round trip while a table's digest streams by
_STREAM_CHUNK = 2000
#: rows hashed between two turns given to the rest of the event loop
_YIELD_EVERY = 200


async def _streamed_digest(conn: asyncpg.Connection, table: str) -> int:
    """Inside a transaction: the digest of ``table``, its rows read through a
    server-side cursor and dropped once hashed (memory does not grow with it)."""
    digest = 0
    # table names are constants; canonical_row leaves control_version and NULLs out
    hashed = 0
    async for record in conn.cursor(f"SELECT * FROM {table}", prefetch=_STREAM_CHUNK):
        digest += row_hash(table, record)
        hashed += 1
        if hashed % _YIELD_EVERY == 0:
            # the check may run beside the processor's batches on the same event
            # loop (ADR 0020): hashing must not starve them or the Kafka client
            await asyncio.sleep(0)
    return digest % DIGEST_MODULUS


async def _scoped_rows(
    conn: asyncpg.Connection, scopes: Sequence[ScopeRead]
) -> dict[tuple[str, str], dict[str, dict[str, Any]]]:
    """The rows of each scope read: one query per (table, column, status), however
    many scopes a batch holds (a batch of halts may name hundreds of jobs)."""
    scoped: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
        (read.table, read.scope): {} for read in scopes
    }
    grouped: dict[tuple[str, str, str], dict[str, list[str]]] = {}
    for read in scopes:
        if read.column not in _SCOPE_COLUMNS.get(read.table, ()):
            raise ValueError(f"no scope read of {read.table} by {read.column}")
        by_value = grouped.setdefault((read.table, read.column, read.status), {})
        by_value.setdefault(read.value, []).append(read.scope)
    for (table, column, status), by_value in grouped.items():
        key = _KEY_COLUMNS[table]
        for r in await conn.fetch(
            f"SELECT * FROM {table} WHERE {column} = ANY($1::text[]) AND status = $2",
            list(by_value),
            status,
        ):
            row = control_plane.control_row(r)
            for scope in by_value[r[column]]:
                scoped[table, scope][r[key]] = row
    return scoped


async def open_control_state(
    conn: asyncpg.Connection,
    configured_trust_root: str | None,
    *,
    whole: Collection[str],
    stream: bool = True,
) -> ControlStart:
    """A processor's start (ADR 0020): the ``whole`` tables, every stored digest
    and the streamed digests of the other control tables, in one snapshot."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        version = await control_plane.control_version(conn)
        root = configured_trust_root or await control_plane.trust_root(conn)
        state = await control_plane.load_state(conn, root, tables=whole)
        stored = await control_plane.control_digests(conn)
        streamed = {
            table: await _streamed_digest(conn, table)
            for table in CONTROL_DIGEST_TABLES
            if stream and table not in whole
        }
        return ControlStart(version, state, stored, streamed)


async def version_and_recorded(
    conn: asyncpg.Connection, event_ids: Sequence[str]
) -> tuple[int, dict[str, str]]:
    """The control version and the recorded payload hash of each of ``event_ids``,
    in one statement (one snapshot, one round trip)."""
    records = await conn.fetch(
        # event_keys, not events: it holds archived events too (migration 0017)
        "SELECT s.version, k.event_id::text AS event_id, k.payload_hash_b64u"
        " FROM control_state s LEFT JOIN event_keys k ON k.event_id = ANY($1::uuid[])"
        " WHERE s.id = 1",
        list(event_ids),
    )
    recorded = {r["event_id"]: r["payload_hash_b64u"] for r in records if r["event_id"]}
    return int(records[0]["version"]), recorded


async def read_control(conn: asyncpg.Connection, query: ControlQuery) -> ControlRead:
    """The version, what changed after ``query.since``, the wanted rows and the
    rows of the scopes, in one snapshot; and the recorded hashes of ``query.event_ids``.

    A query that wants no rows is first answered by one statement: when the
    version has not moved, that is the whole answer (the common batch of a
    processor whose cache holds every row its rules read). Otherwise the read
    runs in a snapshot of its own.
    """
    since, whole = query.since, query.whole
    recorded: dict[str, str] | None = None
    if not any(query.wanted.values()) and not query.scopes:
        version, recorded = await version_and_recorded(conn, query.event_ids)
        if version == since:
            return ControlRead(version, recorded=recorded)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        if recorded is None:
            version, recorded = await version_and_recorded(conn, query.event_ids)
        else:
            version = await control_plane.control_version(conn)
        changed = None
        changed_keys: dict[str, list[str]] = {}
        if version != since:
            root = query.trust_root or await control_plane.trust_root(conn)
            changed = await control_plane.load_state(conn, root, since=since, tables=whole)
            bounded = [(table, key) for table, key in _KEY_COLUMNS.items() if table not in whole]
            if bounded:
                # the changed keys of every bounded table in one round trip
                column = control_plane.CONTROL_VERSION_COLUMN
                sql = " UNION ALL ".join(
                    f"SELECT '{table}' AS table_name, {key}::text AS key FROM {table}"
                    f" WHERE {column} > $1"
                    for table, key in bounded
                )
                changed_keys = {table: [] for table, _ in bounded}
                for r in await conn.fetch(sql, since):
                    changed_keys[r["table_name"]].append(r["key"])
        rows: dict[str, dict[str, dict[str, Any]]] = {}
        for table, keys in query.wanted.items():
            if not keys:
                continue
            key = _KEY_COLUMNS[table]
            rows[table] = {
                r[key]: control_plane.control_row(r)
                for r in await conn.fetch(
                    f"SELECT * FROM {table} WHERE {key} = ANY($1::text[])", list(keys)
                )
            }
        scoped = await _scoped_rows(conn, query.scopes)
        return ControlRead(version, changed, changed_keys, rows, scoped, recorded)
