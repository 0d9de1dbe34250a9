"""The partitions of ``events`` and the archive boundaries (migration 0017, ADR 0021).

``events`` is range-partitioned on ``position``. Partitions are cut ahead of
need by ``claw_ensure_event_partitions()`` (the processor calls it, see
:func:`ensure_partitions`); an owner detaches the oldest ones with
:func:`detach_partition`, which records the boundary (the chain head of every
Kafka partition at the cut and the verified replay state there) that the audit
and replay resume from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from ledger.errors import ConfigError
from ledger.instants import format_instant

__all__ = [
    "ArchiveBoundary",
    "ChainHead",
    "EventPartition",
    "SealedPartition",
    "archive_boundary",
    "detach_partition",
    "ensure_partitions",
    "is_missing_partition",
    "list_partitions",
    "merge_heads",
    "partition_heads",
    "read_archive_boundary",
    "seal_oldest_partition",
    "set_partition_rows",
]


@dataclass(frozen=True)
class EventPartition:
    name: str
    position_from: int
    position_to: int
    created_at: datetime
    detached_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "position_from": self.position_from,
            "position_to": self.position_to,
            "created_at": format_instant(self.created_at),
            "detached_at": None if self.detached_at is None else format_instant(self.detached_at),
            "state": "attached" if self.detached_at is None else "detached",
        }


@dataclass(frozen=True)
class ChainHead:
    """Where one Kafka partition's chain stood at a cut."""

    kafka_topic: str
    kafka_partition: int
    ledger_seq: int
    chain_hash: str
    next_offset: int


@dataclass(frozen=True)
class ArchiveBoundary:
    """The newest cut: events below ``before_position`` are archived."""

    before_position: int
    partition_name: str
    #: events archived by every cut up to this one
    events: int
    detached_at: datetime
    detached_by: str
    heads: dict[tuple[str, int], ChainHead]
    state_snapshot: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "before_position": self.before_position,
            "partition": self.partition_name,
            "events": self.events,
            "detached_at": format_instant(self.detached_at),
            "detached_by": self.detached_by,
            "chain_heads": [
                {
                    "kafka_topic": h.kafka_topic,
                    "kafka_partition": h.kafka_partition,
                    "ledger_seq": h.ledger_seq,
                    "chain_hash": h.chain_hash,
                }
                for h in self.heads.values()
            ],
        }


@dataclass(frozen=True)
class SealedPartition:
    """The oldest attached partition, full: no transaction can add a row to it."""

    partition: EventPartition
    rows: int


async def ensure_partitions(conn: asyncpg.Connection, need: int = 0) -> int:
    """Create the partitions missing ahead of the last position (``need`` positions at
    least, else the configured number of partitions); the positions left."""
    return int(await conn.fetchval("SELECT claw_ensure_event_partitions($1)", need))


def is_missing_partition(exc: BaseException) -> bool:
    """An insert found no partition for its position (ingest outran the partitions)."""
    return isinstance(exc, asyncpg.CheckViolationError) and "no partition of relation" in str(exc)


async def set_partition_rows(conn: asyncpg.Connection, rows: int) -> int:
    """Owner only: cut partitions not yet holding a row at ``rows`` positions each."""
    return int(await conn.fetchval("SELECT claw_set_event_partition_rows($1)", rows))


async def list_partitions(conn: asyncpg.Connection) -> list[EventPartition]:
    rows = await conn.fetch(
        "SELECT name, position_from, position_to, created_at, detached_at"
        " FROM event_partitions ORDER BY position_from"
    )
    return [EventPartition(**dict(r)) for r in rows]


async def archive_boundary(conn: asyncpg.Connection) -> ArchiveBoundary | None:
    """The newest archive cut, or None when every event is in the table."""
    row = await conn.fetchrow(
        "SELECT id, before_position, partition_name, events, detached_at, detached_by,"
        " state_snapshot::text AS snapshot FROM archive_boundaries"
        " ORDER BY before_position DESC LIMIT 1"
    )
    if row is None:
        return None
    heads = await conn.fetch(
        "SELECT kafka_topic, kafka_partition, ledger_seq, chain_hash, next_offset"
        " FROM archive_chain_heads WHERE boundary_id = $1",
        row["id"],
    )
    return ArchiveBoundary(
        before_position=row["before_position"],
        partition_name=row["partition_name"],
        events=row["events"],
        detached_at=row["detached_at"],
        detached_by=row["detached_by"],
        heads={(h["kafka_topic"], h["kafka_partition"]): ChainHead(**dict(h)) for h in heads},
        state_snapshot=json.loads(row["snapshot"]),
    )


async def read_archive_boundary(database_url: str) -> ArchiveBoundary | None:
    """:func:`archive_boundary` on a connection of its own."""
    from storage.ledger_queries import _connect

    conn = await _connect(database_url)
    try:
        return await archive_boundary(conn)
    finally:
        await conn.close()


async def seal_oldest_partition(
    conn: asyncpg.Connection, name: str | None = None, before: int | None = None
) -> SealedPartition:
    """The oldest attached partition, once no transaction can still add a row to it.

    ``name`` / ``before`` (a position) must name that partition: the archive is
    a prefix of the ledger, cut in order. Raises :class:`ConfigError` otherwise,
    or when the partition is still being filled.
    """
    attached = [p for p in await list_partitions(conn) if p.detached_at is None]
    if not attached:
        raise ConfigError("no partition of events is attached")
    oldest = attached[0]
    if name is not None and name != oldest.name:
        raise ConfigError(
            f"{name} is not the oldest attached partition ({oldest.name})",
            hint="partitions are archived oldest first; `claw-ledger archive list` shows them",
        )
    if before is not None and before != oldest.position_to:
        raise ConfigError(
            f"--before {before} is not a partition boundary: the oldest attached partition"
            f" {oldest.name} holds positions {oldest.position_from} to {oldest.position_to - 1}",
            hint=f"use --before {oldest.position_to}",
        )
    async with conn.transaction():
        # waits for every transaction that may hold a position of this partition
        await conn.execute("LOCK TABLE events IN SHARE MODE")
        last = await conn.fetchval(
            "SELECT coalesce(pg_sequence_last_value("
            "pg_get_serial_sequence('events', 'position')::regclass), 0)"
        )
    if last < oldest.position_to - 1:
        raise ConfigError(
            f"{oldest.name} is still being filled (positions up to {oldest.position_to - 1},"
            f" the last one handed out is {last})",
            hint="a partition is archived once the ledger has moved past it",
        )
    unlogged = await conn.fetchval(
        # a checkpointer that has begun must have logged every event of the partition:
        # its leaf hashes are computed from the rows, which leave with the partition
        "SELECT min(e.position) FROM events e WHERE e.position >= $1 AND e.position < $2"
        " AND EXISTS (SELECT 1 FROM tlog_leaves)"
        " AND NOT EXISTS (SELECT 1 FROM tlog_leaves l WHERE l.position = e.position)",
        oldest.position_from,
        oldest.position_to,
    )
    if unlogged is not None:
        raise ConfigError(
            f"{oldest.name} holds events the transparency log has not appended yet"
            f" (from position {unlogged})",
            hint="let the checkpointer catch up (`claw-ledger checkpointer status`), then"
            " detach again",
        )
    rows = await conn.fetchval(
        f'SELECT count(*) FROM "{oldest.name}"'  # a name from event_partitions
    )
    return SealedPartition(oldest, int(rows))


async def detach_partition(
    conn: asyncpg.Connection,
    sealed: SealedPartition,
    heads: Sequence[ChainHead],
    state_snapshot: Mapping[str, Any],
) -> ArchiveBoundary:
    """Owner only: record the boundary after ``sealed`` and detach it, in one transaction.

    The detached table stays in the database under its name until the owner
    exports and drops it (docs/operations.md, "Archiving old events").
    """
    name = sealed.partition.name
    async with conn.transaction():
        previous = await archive_boundary(conn)
        total = sealed.rows + (previous.events if previous else 0)
        boundary_id = await conn.fetchval(
            "INSERT INTO archive_boundaries (before_position, partition_name, events,"
            " state_snapshot) VALUES ($1, $2, $3, $4::text::jsonb) RETURNING id",
            sealed.partition.position_to,
            name,
            total,
            json.dumps(state_snapshot, separators=(",", ":")),
        )
        await conn.executemany(
            "INSERT INTO archive_chain_heads (boundary_id, kafka_topic, kafka_partition,"
            " ledger_seq, chain_hash, next_offset) VALUES ($1, $2, $3, $4, $5, $6)",
            [
                (
                    boundary_id,
                    h.kafka_topic,
                    h.kafka_partition,
                    h.ledger_seq,
                    h.chain_hash,
                    h.next_offset,
                )
                for h in heads
            ],
        )
        await conn.execute("UPDATE event_partitions SET detached_at = now() WHERE name = $1", name)
        await conn.execute(f'ALTER TABLE events DETACH PARTITION "{name}"')
        boundary = await archive_boundary(conn)
    assert boundary is not None
    return boundary


async def partition_heads(conn: asyncpg.Connection, partition: EventPartition) -> list[ChainHead]:
    """The last row of each Kafka partition's chain inside ``partition``."""
    rows = await conn.fetch(
        "SELECT DISTINCT ON (kafka_topic, kafka_partition) kafka_topic, kafka_partition,"
        " ledger_seq, chain_hash, kafka_offset + 1 AS next_offset FROM events"
        " WHERE position >= $1 AND position < $2"
        " ORDER BY kafka_topic, kafka_partition, ledger_seq DESC",
        partition.position_from,
        partition.position_to,
    )
    return [ChainHead(**dict(r)) for r in rows]


def merge_heads(
    previous: Mapping[tuple[str, int], ChainHead], newer: Sequence[ChainHead]
) -> list[ChainHead]:
    """Every chain's head after a cut: the newer head where the partition has rows."""
    merged = dict(previous)
    for head in newer:
        merged[(head.kafka_topic, head.kafka_partition)] = head
    return sorted(merged.values(), key=lambda h: (h.kafka_topic, h.kafka_partition))
