"""What the checkpointer reads and writes (ADR 0017): the only writer of the log's tables.

It connects as the ledger's writer role (INSERT and SELECT on ``tlog_*``,
migration 0010). One round = one transaction: the new leaves, the nodes of
the complete subtrees they close and the signed checkpoint, so the stored
tree is always exactly the last checkpoint's, and a crash at any point
leaves the previous round intact.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from ledger.errors import LedgerError
from ledger.merkle import CompactRange, root_plan
from ledger.tlog import CONTROL_CHAIN_BASE, EventLeaf
from storage.tlog_store import StoredCheckpoint, fetch_nodes, latest_checkpoint, leaf_chain_sql

__all__ = [
    "ADVISORY_LOCK_KEY",
    "LogState",
    "PendingEvent",
    "append_round",
    "load_log_state",
    "read_new_events",
    "release_lock",
    "try_lock",
    "unpublished_checkpoints",
]

#: the checkpointer's session advisory lock ("clawtlog" as int64): one sequencer per ledger
ADVISORY_LOCK_KEY = int.from_bytes(b"clawtlog", "big", signed=True)


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """A committed event not in the log yet, with its leaf hash (computed by Postgres)."""

    position: int
    event_type: str
    leaf: EventLeaf
    leaf_hash: bytes


#: ledger.tlog.EventLeaf's bytes and hash, in SQL: the checkpointer's hot path hashes
#: in the database (tests and the audit hold it to the Python definition)
_LEAF_HASH_SQL = (
    "sha256('\\x00'::bytea || '\\x01'::bytea || int4send(" + leaf_chain_sql() + ")"
    " || int8send(ledger_seq) || uuid_send(event_id)"
    " || decode(translate(envelope_sha256, '-_', '+/') || '=', 'base64')"
    " || decode(translate(chain_hash, '-_', '+/') || '=', 'base64'))"
)


@dataclass
class LogState:
    """The log as stored: its right edge, the last checkpoint, each partition's last seq."""

    edge: CompactRange
    checkpoint: StoredCheckpoint | None
    #: partition -> the last ledger_seq in the log (absent: none)
    included: dict[int, int] = field(default_factory=dict)


async def try_lock(conn: asyncpg.Connection) -> bool:
    """Take the checkpointer's lock for this session; False when another session holds it."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", ADVISORY_LOCK_KEY))


async def release_lock(conn: asyncpg.Connection) -> None:
    await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)


async def load_log_state(conn: asyncpg.Connection) -> LogState:
    """The stored tree (a restart resumes from it), checked against its own last checkpoint."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        checkpoint = await latest_checkpoint(conn)
        size = checkpoint.tree_size if checkpoint else 0
        leaves = await conn.fetchval("SELECT coalesce(max(log_index) + 1, 0) FROM tlog_leaves")
        if leaves != size:
            raise LedgerError(
                f"the log holds {leaves} leaves but its last checkpoint has size {size}",
                hint="the tlog tables were changed outside the checkpointer: run"
                " `claw-ledger audit`",
            )
        plan = root_plan(size)
        nodes = await fetch_nodes(conn, plan)
        edge = CompactRange(size, [nodes[node] for node in plan])
        if checkpoint is not None and edge.root() != checkpoint.root_hash:
            raise LedgerError(
                f"the stored nodes do not fold to the root of the checkpoint of size {size}",
                hint="the tlog tables were changed outside the checkpointer: run"
                " `claw-ledger audit`",
            )
        rows = await conn.fetch(
            "SELECT kafka_partition, max(ledger_seq) AS seq FROM tlog_leaves"
            " GROUP BY kafka_partition"
        )
    return LogState(edge, checkpoint, {int(r["kafka_partition"]): int(r["seq"]) for r in rows})


async def read_new_events(
    conn: asyncpg.Connection, topic: str, seen: Mapping[int, int], limit: int
) -> list[PendingEvent]:
    """Committed events of ``topic`` past ``seen[chain]``, at most ``limit`` a partition.

    ``seen`` and the leaves are keyed by chain number
    (:func:`ledger.tlog.chain_number`: on the control lane's topic, the partition
    plus :data:`~ledger.tlog.CONTROL_CHAIN_BASE`), so one map serves both lanes.

    A partition's rows become visible in ``ledger_seq`` order with no gap (one
    processor commits a partition at a time), so reading by seq never skips a
    row that commits later. Partitions whose committed head did not move cost
    nothing but the ``consumer_positions`` read.
    """
    heads = await conn.fetch(
        "SELECT kafka_partition, max(ledger_seq) AS seq FROM consumer_positions"
        " WHERE topic = $1 GROUP BY kafka_partition",
        topic,
    )
    base = CONTROL_CHAIN_BASE if topic.endswith(".control") else 0
    moved = [
        (int(r["kafka_partition"]), seen.get(base + int(r["kafka_partition"]), 0))
        for r in heads
        if int(r["seq"]) > seen.get(base + int(r["kafka_partition"]), 0)
    ]
    if not moved:
        return []
    rows = await conn.fetch(
        "SELECT e.position, e.event_type, e.chain AS kafka_partition, e.ledger_seq,"
        " e.event_id::text AS event_id, e.envelope_sha256, e.chain_hash, e.leaf_hash"
        " FROM unnest($2::int[], $3::bigint[]) AS p(part, done)"
        " CROSS JOIN LATERAL (SELECT position, event_type,"
        f" {leaf_chain_sql()} AS chain, ledger_seq,"
        f" event_id, envelope_sha256, chain_hash, {_LEAF_HASH_SQL} AS leaf_hash FROM events"
        " WHERE kafka_topic = $1 AND kafka_partition = p.part AND ledger_seq > p.done"
        " ORDER BY ledger_seq LIMIT $4) AS e",
        topic,
        [part for part, _ in moved],
        [done for _, done in moved],
        limit,
    )
    return [
        PendingEvent(
            int(r["position"]), str(r["event_type"]), EventLeaf.from_row(r), bytes(r["leaf_hash"])
        )
        for r in rows
    ]


async def append_round(
    conn: asyncpg.Connection,
    first_index: int,
    appended: Sequence[PendingEvent],
    nodes: Sequence[tuple[int, int, bytes]],
    checkpoint: StoredCheckpoint,
) -> None:
    """Write one round: the leaves from ``first_index`` in log order, the new nodes
    above them (the level-0 ones are the leaves' hashes) and the checkpoint, in one
    transaction."""
    leaf_records: list[tuple[Any, ...]] = [
        (
            first_index + i,
            # canonical text (events.event_id::text): asyncpg encodes it as a uuid in C
            event.leaf.event_id,
            event.position,
            event.leaf.partition,
            event.leaf.ledger_seq,
            event.leaf_hash,
        )
        for i, event in enumerate(appended)
    ]
    inner = [node for node in nodes if node[0]]
    async with conn.transaction():
        if leaf_records:
            await conn.copy_records_to_table(
                "tlog_leaves",
                records=leaf_records,
                columns=(
                    "log_index",
                    "event_id",
                    "position",
                    "kafka_partition",
                    "ledger_seq",
                    "leaf_hash",
                ),
            )
        if inner:
            await conn.copy_records_to_table(
                "tlog_nodes", records=inner, columns=("level", "idx", "hash")
            )
        await conn.execute(
            "INSERT INTO tlog_checkpoints (tree_size, origin, root_hash, note, signer_did,"
            " event_id, occurred_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            checkpoint.tree_size,
            checkpoint.origin,
            checkpoint.root_hash,
            checkpoint.note,
            checkpoint.signer_did,
            uuid.UUID(checkpoint.event_id),
            checkpoint.occurred_at,
        )


async def unpublished_checkpoints(conn: asyncpg.Connection, last: int) -> list[StoredCheckpoint]:
    """Of the ``last`` newest checkpoints, those whose ``checkpoint.signed`` event is not on
    the ledger (a crash between the round's commit and its publication)."""
    rows = await conn.fetch(
        "SELECT c.tree_size, c.origin, c.root_hash, c.note, c.signer_did,"
        " c.event_id::text AS event_id, c.occurred_at, c.created_at"
        " FROM (SELECT * FROM tlog_checkpoints ORDER BY tree_size DESC LIMIT $1) AS c"
        # event_keys: the event_id index of the partitioned events (migration 0017)
        " WHERE NOT EXISTS (SELECT 1 FROM event_keys k WHERE k.event_id = c.event_id)"
        " ORDER BY c.tree_size",
        last,
    )
    return [StoredCheckpoint.from_row(r) for r in rows]
