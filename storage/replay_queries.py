"""The SQL of ``claw-ledger replay``: the events in commit order, the live
projections, and an isolated schema to write a rebuild into.

Reads stream through a server-side cursor inside one read-only snapshot, so a
replay of millions of events holds one batch in memory at a time.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import asyncpg

from ledger.errors import ConfigError
from ledger.replay import StoredEvent
from ledger.state import ProjectionRow

__all__ = [
    "BOOKKEEPING_COLUMNS",
    "PROJECTION_TABLES",
    "check_replay_schema",
    "count_events",
    "create_replay_schema",
    "event_ids_unique",
    "iter_decisions",
    "iter_event_batches",
    "iter_events",
    "iter_shadowed",
    "read_projection",
    "write_projection_rows",
]

#: every projection table the rules write, and its primary key
PROJECTION_TABLES: dict[str, str] = {
    "keys": "did",
    "policies": "policy_hash_b64u",
    "tokens": "jti",
    "jobs": "job_id",
    "halts": "target",
    "shadows": "scope",
    "receipts": "receipt_id",
    "decisions": "decision_id",
    "bundles": "bundle_hash_b64u",
    "pulse_records": "pulse_id",
}

#: columns a processor keeps for itself, not derived from the events (migration 0004)
BOOKKEEPING_COLUMNS = frozenset({"control_version"})

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


async def count_events(conn: asyncpg.Connection, skip_types: Sequence[str] = ()) -> int:
    """The events :func:`iter_events` reads with the same ``skip_types``."""
    if not skip_types:
        return int(await conn.fetchval("SELECT count(*) FROM events"))
    query = "SELECT count(*) FROM events WHERE event_type <> ALL($1::text[])"
    return int(await conn.fetchval(query, list(skip_types)))


async def iter_decisions(
    conn: asyncpg.Connection, batch: int = 5000
) -> AsyncIterator[tuple[int, dict[str, Any]]]:
    """The recorded authorize decisions (``call.authorized``/``call.denied``) in
    the order they were made: ``(position, body)``, the body parsed from the
    stored envelope bytes (which the replay fold then verifies)."""
    cursor = conn.cursor(
        "SELECT position, envelope_raw FROM events"
        " WHERE event_type IN ('call.authorized', 'call.denied')"
        " ORDER BY payload->'body'->>'decided_at', position",
        prefetch=batch,
    )
    async for row in cursor:
        yield int(row["position"]), json.loads(bytes(row["envelope_raw"]))["payload"]["body"]


async def event_ids_unique(conn: asyncpg.Connection) -> bool:
    """Whether a unique index on ``event_id`` alone holds, on ``events`` (migration
    0001) or on ``event_keys`` (the partitioned layout, migration 0017, whose rows
    outlive an archive cut): then no event id can repeat in the ledger, and a
    replay need not remember them all."""
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a"
            " ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]"
            " WHERE i.indrelid = ANY(ARRAY['events'::regclass, to_regclass('event_keys')])"
            " AND i.indisunique AND i.indisvalid"
            " AND i.indnatts = 1 AND a.attname = 'event_id')"
        )
    )


async def iter_shadowed(
    conn: asyncpg.Connection, job_id: str | None = None, batch: int = 5000
) -> AsyncIterator[tuple[int, dict[str, Any]]]:
    """The recorded shadow disagreements (``call.shadowed``) in the order they
    were decided: ``(position, body)``; only ``job_id``'s when given (its stream)."""
    where, args = ("", ()) if job_id is None else (" AND stream = $1", (f"job:{job_id}",))
    cursor = conn.cursor(
        "SELECT position, payload->'body' AS body FROM events"
        " WHERE event_type = 'call.shadowed'" + where + " ORDER BY"
        " payload->'body'->>'decided_at', position",
        *args,
        prefetch=batch,
    )
    async for row in cursor:
        body = row["body"]
        yield int(row["position"]), body if isinstance(body, dict) else json.loads(body)


#: the columns of :class:`StoredEvent`, in the order of its fields
_STORED_EVENT_COLUMNS = (
    "envelope_raw AS raw, kafka_partition AS partition, kafka_offset AS offset,"
    " ledger_seq, prev_chain_hash, chain_hash, recorded_at, position,"
    " event_id::text AS event_id, kafka_topic AS topic"
)


async def iter_event_batches(
    conn: asyncpg.Connection,
    batch: int = 2000,
    *,
    skip_types: Sequence[str] = (),
    before: int | None = None,
) -> AsyncIterator[list[StoredEvent]]:
    """Every ledger event in commit order (``position``), with its stored chain
    fields, ``batch`` at a time (one round trip each, no per-row await); without
    the rows of ``skip_types``, and only those below position ``before``, when given.

    Call it inside a transaction (a server-side cursor lives in one); a
    repeatable-read one lets the caller read the projections of the same snapshot.
    """
    conditions: list[str] = []
    args: list[Any] = []
    if skip_types:
        args.append(list(skip_types))
        conditions.append(f"event_type <> ALL(${len(args)}::text[])")
    if before is not None:
        args.append(before)
        conditions.append(f"position < ${len(args)}")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    cursor = await conn.cursor(
        f"SELECT {_STORED_EVENT_COLUMNS} FROM events{where} ORDER BY position", *args
    )
    while rows := await cursor.fetch(batch):
        yield [StoredEvent(*row) for row in rows]


async def iter_events(
    conn: asyncpg.Connection,
    batch: int = 2000,
    *,
    skip_types: Sequence[str] = (),
    before: int | None = None,
) -> AsyncIterator[StoredEvent]:
    """:func:`iter_event_batches`, one event at a time."""
    async for events in iter_event_batches(conn, batch, skip_types=skip_types, before=before):
        for stored in events:
            yield stored


def _schema(name: str) -> str:
    if not _SCHEMA_NAME.fullmatch(name):
        raise ConfigError(f"{name!r} is not a plain lowercase schema name")
    if name in ("public", "pg_catalog", "information_schema") or name.startswith("pg_"):
        raise ConfigError(
            f"refusing to write a rebuild into {name!r}: the live tables are never replaced",
            hint="name a new schema, e.g. --into replay_20261130",
        )
    return name


async def check_replay_schema(conn: asyncpg.Connection, name: str) -> str:
    """``name`` if a rebuild may be written there: not ``public`` (nor a system
    schema), and holding no table with rows."""
    schema = _schema(name)
    tables = await conn.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
    )
    for table in tables:
        if await conn.fetchval(f'SELECT EXISTS (SELECT 1 FROM {schema}."{table[0]}")'):
            raise ConfigError(
                f"schema {schema!r} already holds rows (table {table[0]})",
                hint="replay into a new schema, or DROP SCHEMA it first",
            )
    return schema


async def create_replay_schema(conn: asyncpg.Connection, name: str) -> str:
    """A fresh schema holding empty copies of the projection tables.

    Refuses what :func:`check_replay_schema` refuses.
    """
    schema = await check_replay_schema(conn, name)
    async with conn.transaction():
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        for table in PROJECTION_TABLES:
            await conn.execute(f"DROP TABLE IF EXISTS {schema}.{table}")
            await conn.execute(f"CREATE TABLE {schema}.{table} (LIKE public.{table} INCLUDING ALL)")
    return schema


async def write_projection_rows(
    conn: asyncpg.Connection, schema: str, rows: Iterable[ProjectionRow]
) -> int:
    """Insert rebuilt rows into ``schema`` (made by :func:`create_replay_schema`) on a
    connection whose jsonb codec takes Python values
    (:func:`storage.projection_queries.open_connection`)."""
    schema = _schema(schema)
    groups: dict[tuple[str, tuple[str, ...]], list[tuple[Any, ...]]] = {}
    for row in rows:
        if row.table not in PROJECTION_TABLES:
            raise ValueError(f"not a projection table: {row.table}")
        groups.setdefault((row.table, tuple(row.values)), []).append(tuple(row.values.values()))
    written = 0
    async with conn.transaction():
        for (table, columns), records in groups.items():
            placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
            await conn.executemany(
                f"INSERT INTO {schema}.{table} ({', '.join(columns)}) VALUES ({placeholders})",
                records,
            )
            written += len(records)
    return written


async def read_projection(
    conn: asyncpg.Connection, table: str, schema: str = "public"
) -> dict[Any, dict[str, Any]]:
    """Every row of a projection table by primary key, without bookkeeping columns,
    jsonb decoded (the text codec of :func:`storage.projection_queries.open_connection`)."""
    if table not in PROJECTION_TABLES:
        raise ValueError(f"not a projection table: {table}")
    if schema != "public":
        schema = _schema(schema)
    key = PROJECTION_TABLES[table]
    rows = await conn.fetch(f"SELECT * FROM {schema}.{table}")
    return {r[key]: {k: v for k, v in r.items() if k not in BOOKKEEPING_COLUMNS} for r in rows}
