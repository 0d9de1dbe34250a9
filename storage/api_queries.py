"""SQL of the HTTP API and its keys (migration 0011, ADR 0018).

Every function takes an open asyncpg connection (jsonb decoded, see
:func:`storage.projection_queries.open_connection`) and binds every value as a
parameter. The API keys are written by the tables' owner only
(``claw-ledger apikey``); the service reads them as the reader.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from storage.projection_queries import row_dict

__all__ = [
    "API_KEYS_CHANNEL",
    "api_key_by_id",
    "archived_event",
    "event_by_id",
    "events_committed_since",
    "halt_figures",
    "insert_api_key",
    "list_api_keys",
    "partition_heads",
    "quarantine_by_event_id",
    "quarantined_since",
    "revoke_api_key",
    "table_exists",
]

#: announced at the commit of every change to api_keys (migration 0020)
API_KEYS_CHANNEL = "claw_ledger_api_keys"

_KEY_COLUMNS = "key_id, name, role, created_at, revoked_at"


async def insert_api_key(
    conn: asyncpg.Connection, *, key_id: str, name: str, role: str, key_sha256: str
) -> dict[str, Any]:
    """Record a new key (its hash only); ``asyncpg.UniqueViolationError`` when the name
    is taken."""
    row = await conn.fetchrow(
        "INSERT INTO api_keys (key_id, name, role, key_sha256) VALUES ($1, $2, $3, $4)"
        f" RETURNING {_KEY_COLUMNS}",
        key_id,
        name,
        role,
        key_sha256,
    )
    assert row is not None
    return dict(row)


async def list_api_keys(
    conn: asyncpg.Connection, *, include_revoked: bool = False
) -> list[dict[str, Any]]:
    """Every key without its hash, oldest first."""
    rows = await conn.fetch(
        f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE $1 OR revoked_at IS NULL"
        " ORDER BY created_at, name",
        include_revoked,
    )
    return [dict(r) for r in rows]


async def revoke_api_key(conn: asyncpg.Connection, name: str) -> dict[str, Any] | None:
    """Revoke key ``name`` (a revoked key stays revoked: the first time is kept);
    ``None`` when there is no such key."""
    row = await conn.fetchrow(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE name = $1"
        f" RETURNING {_KEY_COLUMNS}",
        name,
    )
    return None if row is None else dict(row)


async def api_key_by_id(conn: asyncpg.Connection, key_id: str) -> dict[str, Any] | None:
    """The row of ``key_id`` with its hash, for the service's check."""
    row = await conn.fetchrow(
        f"SELECT {_KEY_COLUMNS}, key_sha256 FROM api_keys WHERE key_id = $1", key_id
    )
    return None if row is None else dict(row)


async def table_exists(conn: asyncpg.Connection, table: str) -> bool:
    """Whether ``table`` exists (a feature whose migration is not applied has none)."""
    return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table))


async def event_by_id(conn: asyncpg.Connection, event_id: str) -> dict[str, Any] | None:
    """The stored event ``event_id`` with its exact bytes, or ``None``."""
    row = await conn.fetchrow(
        "SELECT position, event_id::text AS event_id, event_type, stream, producer,"
        " occurred_at, recorded_at, payload_hash_b64u, envelope_sha256, envelope_raw,"
        " kafka_topic, kafka_partition, kafka_offset, ledger_seq, prev_chain_hash, chain_hash"
        # event_keys: the event_id index of the partitioned events (migration 0017)
        " FROM events WHERE position = (SELECT position FROM event_keys WHERE event_id = $1::uuid)",
        event_id,
    )
    return None if row is None else row_dict(row)


async def archived_event(conn: asyncpg.Connection, event_id: str) -> dict[str, Any] | None:
    """Where a recorded event that is no longer in ``events`` went: its position and
    the archive cut whose detached partitions hold it, or ``None``.

    ``event_keys`` keeps every recorded id, archived ones too (migration 0017).
    """
    return await _one(
        conn,
        "SELECT k.position, b.before_position, b.partition_name, b.detached_at"
        " FROM event_keys k JOIN archive_boundaries b ON k.position < b.before_position"
        " WHERE k.event_id = $1::uuid ORDER BY b.before_position LIMIT 1",
        event_id,
    )


async def quarantine_by_event_id(conn: asyncpg.Connection, event_id: str) -> dict[str, Any] | None:
    """The latest quarantine row that names ``event_id`` (a hint: never trusted)."""
    return await _one(
        conn,
        "SELECT id, reason_code, detail, event_id, signer_did, raw_size, raw, kafka_topic,"
        " kafka_partition, kafka_offset, received_at FROM quarantine WHERE event_id = $1"
        " ORDER BY id DESC LIMIT 1",
        event_id,
    )


async def _one(conn: asyncpg.Connection, sql: str, *args: Any) -> dict[str, Any] | None:
    row = await conn.fetchrow(sql, *args)
    return None if row is None else dict(row)


async def partition_heads(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """Every (group, topic, partition) position the processors committed."""
    rows = await conn.fetch(
        "SELECT consumer_group, topic, kafka_partition, next_offset, ledger_seq, updated_at"
        " FROM consumer_positions ORDER BY consumer_group, topic, kafka_partition"
    )
    return [dict(r) for r in rows]


async def events_committed_since(
    conn: asyncpg.Connection, topic: str, partition: int, after_seq: int
) -> Sequence[asyncpg.Record]:
    """Per event type: the count of a partition's events after ``after_seq`` and the
    last seq seen. A partition's seqs commit in order, so counting on from the last
    one seen is exact (``position`` is not: concurrent commits interleave it)."""
    rows: Sequence[asyncpg.Record] = await conn.fetch(
        "SELECT event_type, count(*) AS n, max(ledger_seq) AS last FROM events"
        " WHERE kafka_topic = $1 AND kafka_partition = $2 AND ledger_seq > $3"
        " GROUP BY event_type",
        topic,
        partition,
        after_seq,
    )
    return rows


async def quarantined_since(
    conn: asyncpg.Connection, topic: str, partition: int, after_offset: int
) -> Sequence[asyncpg.Record]:
    """Per reason code: the count of a partition's quarantine rows after Kafka offset
    ``after_offset`` and the last offset seen (offsets commit in order too)."""
    rows: Sequence[asyncpg.Record] = await conn.fetch(
        "SELECT reason_code, count(*) AS n, max(kafka_offset) AS last FROM quarantine"
        " WHERE kafka_topic = $1 AND kafka_partition = $2 AND kafka_offset > $3"
        " GROUP BY reason_code",
        topic,
        partition,
        after_offset,
    )
    return rows


async def commit_batch_figures(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """Per processor that beat in the last five minutes: batches committed, their
    summed seconds, the longest since its previous beat (``None``: none), and the
    seconds since that beat, by the server's clock (``beat_age_seconds``)."""
    rows = await conn.fetch(
        "SELECT worker_id, batches, batch_seconds_sum, batch_seconds_max,"
        " greatest(0, extract(epoch FROM clock_timestamp() - beat_at))::float8"
        " AS beat_age_seconds"
        " FROM processor_heartbeats WHERE beat_at > now() - interval '5 minutes'"
        " ORDER BY worker_id"
    )
    return [dict(r) for r in rows]


async def halt_figures(conn: asyncpg.Connection) -> dict[str, Any]:
    """The number of active halts, and how long the newest ``agent.halted`` took from
    its ``occurred_at`` to its commit (seconds; ``None`` before any halt)."""
    active = await conn.fetchval("SELECT count(*) FROM halts WHERE active")
    seconds = await conn.fetchval(
        "SELECT extract(epoch FROM recorded_at - occurred_at)::float8 FROM events"
        " WHERE event_type = 'agent.halted' ORDER BY position DESC LIMIT 1"
    )
    return {"active": int(active), "propagation_seconds": seconds}
