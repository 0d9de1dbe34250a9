"""Read queries over the ledger by database URL: the timeline, the key registry,
quarantine, and the hash chains for the audit."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from ledger.encoding import MAX_POSITION
from ledger.errors import ServiceError
from storage import connect
from storage.projection_queries import row_dict

__all__ = [
    "TimelineFilter",
    "TimelinePage",
    "chain_heads",
    "fetch_quarantine",
    "fetch_timeline",
    "iter_chain",
    "list_keys",
    "list_quarantine",
    "parse_timeline_cursor",
    "timeline_cursor",
    "timeline_page",
]


async def _connect(url: str) -> asyncpg.Connection:
    try:
        conn = await connect(url, timeout=10)
    except asyncpg.PostgresError as exc:  # starting up, shutting down, full
        raise ServiceError(
            f"cannot reach the ledger database: {exc}",
            hint="is Postgres up? `claw-ledger services status`, or check --database-url",
        ) from exc
    for name in ("jsonb", "json"):
        await conn.set_type_codec(
            name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog", format="text"
        )
    return conn


async def list_keys(database_url: str) -> list[dict[str, Any]]:
    conn = await _connect(database_url)
    try:
        rows = await conn.fetch("SELECT * FROM keys ORDER BY name, did")
        return [row_dict(r) for r in rows]
    finally:
        await conn.close()


@dataclass(frozen=True)
class TimelineFilter:
    stream: str | None = None
    event_type: str | None = None
    signer: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after: int | None = None
    limit: int = 50
    #: order by (occurred_at, position) instead of position: a time-bounded query then
    #: reads the occurred_at index from its bound, never the ledger past its window
    by_time: bool = False
    #: with ``by_time``: the cursor's occurred_at (``after`` is its position)
    after_time: datetime | None = None


@dataclass(frozen=True)
class TimelinePage:
    rows: list[dict[str, Any]]
    next_cursor: int | None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def timeline_cursor(row: Mapping[str, Any], by_time: bool) -> str:
    """The cursor of the page after ``row``, as the CLI and the API give it: its
    position, or, in a time-ordered query (``since`` or ``until``),
    ``t<µs since 1970>.<position>``: such a query pages by both."""
    if not by_time:
        return str(row["position"])
    return f"t{(row['occurred_at'] - _EPOCH) // _MICROSECOND}.{row['position']}"


def parse_timeline_cursor(cursor: str, by_time: bool) -> tuple[int, datetime | None]:
    """(position, occurred_at) of a :func:`timeline_cursor`; ``ValueError`` says what is
    wrong with it (not a cursor, out of range, or one of a query with other time filters)."""
    if by_time != cursor.startswith("t"):
        raise ValueError("it belongs to a query with other time filters; start again without it")
    micros, dot, position = cursor[1:].partition(".") if by_time else ("0", ".", cursor)
    if not dot or not position.isdigit() or not micros.lstrip("-").isdigit():
        raise ValueError(f"{cursor!r} is not a timeline cursor")
    if int(position) > MAX_POSITION:
        raise ValueError("out of range")
    if not by_time:
        return int(position), None
    try:
        return int(position), _EPOCH + int(micros) * _MICROSECOND
    except OverflowError:
        raise ValueError("out of range") from None


async def timeline_page(database_url: str, flt: TimelineFilter) -> TimelinePage:
    """One keyset page of ledger events, oldest first, after position ``flt.after``."""
    conn = await _connect(database_url)
    try:
        return await fetch_timeline(conn, flt)
    finally:
        await conn.close()


async def fetch_timeline(conn: asyncpg.Connection, flt: TimelineFilter) -> TimelinePage:
    """:func:`timeline_page` on an open connection (jsonb decoded). Every filter is a
    bound parameter; the column names come from this function only."""
    if flt.by_time:
        clauses = ["TRUE"]
        args: list[Any] = []
        if flt.after_time is not None:
            args += [flt.after_time, flt.after or 0]
            clauses = [f"(occurred_at, position) > (${len(args) - 1}, ${len(args)})"]
        order = "occurred_at, position"
    else:
        clauses = ["position > $1"]
        args = [flt.after or 0]
        order = "position"
    for column, value, op in (
        ("stream", flt.stream, "="),
        ("event_type", flt.event_type, "="),
        ("producer", flt.signer, "="),
        ("occurred_at", flt.since, ">="),
        ("occurred_at", flt.until, "<"),
    ):
        if value is not None:
            args.append(value)
            clauses.append(f"{column} {op} ${len(args)}")
    args.append(flt.limit + 1)
    sql = (
        "SELECT position, event_id::text AS event_id, event_type, stream, producer,"
        " occurred_at, recorded_at, payload, kafka_topic, kafka_partition, ledger_seq, chain_hash"
        f" FROM events WHERE {' AND '.join(clauses)} ORDER BY {order} LIMIT ${len(args)}"
    )
    rows = [dict(r) for r in await conn.fetch(sql, *args)]
    more = len(rows) > flt.limit
    rows = rows[: flt.limit]
    for row in rows:
        row["body"] = row.pop("payload").get("body", {})
    return TimelinePage(rows, rows[-1]["position"] if more and rows else None)


async def list_quarantine(
    database_url: str, *, reason: str | None = None, after: int = 0, limit: int = 50
) -> TimelinePage:
    conn = await _connect(database_url)
    try:
        return await fetch_quarantine(conn, reason=reason, after=after, limit=limit)
    finally:
        await conn.close()


async def fetch_quarantine(
    conn: asyncpg.Connection, *, reason: str | None = None, after: int = 0, limit: int = 50
) -> TimelinePage:
    """One keyset page of quarantine rows after id ``after`` (``raw`` as bytes)."""
    args: list[Any] = [after]
    where = "id > $1"
    if reason:
        args.append(reason)
        where += " AND reason_code = $2"
    args.append(limit + 1)
    rows = [
        dict(r)
        for r in await conn.fetch(
            "SELECT id, reason_code, detail, event_id, signer_did, raw_size, kafka_topic,"
            f" kafka_partition, kafka_offset, received_at, raw FROM quarantine WHERE {where}"
            f" ORDER BY id LIMIT ${len(args)}",
            *args,
        )
    ]
    more = len(rows) > limit
    rows = rows[:limit]
    return TimelinePage(rows, rows[-1]["id"] if more and rows else None)


async def _snapshot_rows(database_url: str, sql: str, batch: int) -> AsyncIterator[dict[str, Any]]:
    """The rows of ``sql``, streamed ``batch`` at a time from one read-only snapshot
    (the audit reads tables far larger than memory, and all of them as of one moment)."""
    conn = await _connect(database_url)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            async for row in conn.cursor(sql, prefetch=batch):
                yield dict(row)
    finally:
        await conn.close()


def iter_chain(database_url: str, batch: int = 5000) -> AsyncIterator[dict[str, Any]]:
    """Every ledger row, all of its columns, in (partition, ledger_seq) order, for the audit."""
    return _snapshot_rows(
        database_url,
        "SELECT kafka_topic, kafka_partition, ledger_seq, event_id::text AS event_id,"
        " envelope_raw, prev_chain_hash, chain_hash, envelope_sha256, position,"
        " event_type, stream, producer, occurred_at, payload_hash_b64u, payload"
        " FROM events ORDER BY kafka_topic, kafka_partition, ledger_seq",
        batch,
    )


async def chain_heads(database_url: str) -> dict[tuple[str, int], tuple[int, str | None]]:
    """Per (topic, partition): the ledger_seq and chain hash the processor last committed."""
    conn = await _connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT topic, kafka_partition, ledger_seq, chain_hash FROM consumer_positions"
        )
    finally:
        await conn.close()
    return {(r["topic"], r["kafka_partition"]): (r["ledger_seq"], r["chain_hash"]) for r in rows}
