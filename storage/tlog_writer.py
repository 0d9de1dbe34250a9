"""What the checkpointer reads and writes (ADR 0017): the only writer of the log's tables.

It connects as the ledger's writer role (INSERT and SELECT on ``tlog_*``,
migration 0010). One round = one transaction: the new leaves, the nodes of
the complete subtrees they close and the signed checkpoint, so the stored
tree is always exactly the last checkpoint's, and a crash at any point
leaves the previous round intact.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import asyncpg

from ledger.errors import LedgerError
from ledger.merkle import CompactRange, root_plan
from ledger.tlog import CONTROL_CHAIN_BASE
from storage.tlog_store import StoredCheckpoint, fetch_nodes, latest_checkpoint, leaf_chain_sql

__all__ = [
    "ADVISORY_LOCK_KEY",
    "AppendedRound",
    "LogOrderBroken",
    "LogState",
    "SealRound",
    "Waiting",
    "append_committed_round",
    "load_log_state",
    "release_lock",
    "substantive_waiting",
    "try_lock",
    "unpublished_checkpoints",
    "waiting_partitions",
    "write_nodes_and_checkpoint",
]

#: the checkpointer's session advisory lock ("clawtlog" as int64): one sequencer per ledger
ADVISORY_LOCK_KEY = int.from_bytes(b"clawtlog", "big", signed=True)


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


@dataclass(frozen=True, slots=True)
class Waiting:
    """A partition of a lane whose committed head is past the log: ``(done, head]`` wait."""

    topic: str
    partition: int
    #: the last ledger_seq of this partition in the log (0: none)
    done: int
    #: the last committed ledger_seq (``consumer_positions``)
    head: int


@dataclass(frozen=True, slots=True)
class AppendedRound:
    """What a round appended: how many leaves, each chain's new last seq, the checkpoint."""

    leaves: int
    #: chain number (:func:`ledger.tlog.chain_number`) -> its last ledger_seq now in the log
    included: dict[int, int]
    checkpoint: StoredCheckpoint


#: given the new leaf hashes in log order, the nodes they complete and the signed checkpoint
SealRound = Callable[[list[bytes]], tuple[Sequence[tuple[int, int, bytes]], StoredCheckpoint]]


class LogOrderBroken(LedgerError):
    """A round saw a partition's events out of order or with a gap: nothing was appended."""


async def waiting_partitions(
    conn: asyncpg.Connection, topics: Sequence[str], included: Mapping[int, int]
) -> list[Waiting]:
    """Partitions of ``topics`` whose committed head is past what the log holds.

    ``included`` is keyed by chain number (:func:`ledger.tlog.chain_number`: on
    the control lane's topic, the partition plus
    :data:`~ledger.tlog.CONTROL_CHAIN_BASE`), so one map serves both lanes.
    Reads only ``consumer_positions``: partitions that did not move cost nothing.
    """
    rows = await conn.fetch(
        "SELECT topic, kafka_partition, max(ledger_seq) AS seq FROM consumer_positions"
        " WHERE topic = ANY($1::text[]) GROUP BY topic, kafka_partition",
        list(topics),
    )
    waiting = []
    for row in rows:
        topic, partition = str(row["topic"]), int(row["kafka_partition"])
        base = CONTROL_CHAIN_BASE if topic.endswith(".control") else 0
        done = included.get(base + partition, 0)
        if int(row["seq"]) > done:
            waiting.append(Waiting(topic, partition, done, int(row["seq"])))
    return waiting


def _moved_arrays(waiting: Sequence[Waiting]) -> tuple[list[str], list[int], list[int]]:
    return [w.topic for w in waiting], [w.partition for w in waiting], [w.done for w in waiting]


async def substantive_waiting(
    conn: asyncpg.Connection, waiting: Sequence[Waiting], own_type: str
) -> bool:
    """Whether any waiting event is of another type than ``own_type`` (the log's own
    checkpoint events do not call for a checkpoint: each would cause the next)."""
    if not waiting:
        return False
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM unnest($1::text[], $2::int[], $3::bigint[])"
            " AS m(topic, part, done) CROSS JOIN LATERAL (SELECT 1 FROM events"
            " WHERE kafka_topic = m.topic AND kafka_partition = m.part"
            " AND ledger_seq > m.done AND event_type <> $4 LIMIT 1) AS e)",
            *_moved_arrays(waiting),
            own_type,
        )
    )


# One statement appends the round's leaves: Postgres reads the committed events
# above each partition's last leaf (by ledger_seq, at most $4 a partition), numbers
# them in position order from $5 (ADR 0011's log order), hashes each leaf
# (_LEAF_HASH_SQL) and inserts them; Python receives only the 32-byte hashes it
# folds, whether each partition continued its chain with no gap, and each chain's
# last seq. ``in_order``: the n-th new event of a chain in position order has
# ledger_seq done + n.
_APPEND_LEAVES_SQL = (
    "WITH new AS MATERIALIZED (SELECT e.* FROM unnest($1::text[], $2::int[], $3::bigint[])"
    " AS m(topic, part, done) CROSS JOIN LATERAL (SELECT position, m.done,"
    f" {leaf_chain_sql()} AS chain, ledger_seq, event_id, {_LEAF_HASH_SQL} AS leaf_hash"
    " FROM events WHERE kafka_topic = m.topic AND kafka_partition = m.part"
    " AND ledger_seq > m.done ORDER BY ledger_seq LIMIT $4) AS e),"
    " numbered AS MATERIALIZED (SELECT $5::bigint + row_number() OVER (ORDER BY position) - 1"
    " AS log_index, ledger_seq - done = row_number() OVER (PARTITION BY chain"
    " ORDER BY position) AS in_order, * FROM new),"
    " appended AS (INSERT INTO tlog_leaves"
    " (log_index, event_id, position, kafka_partition, ledger_seq, leaf_hash)"
    " SELECT log_index, event_id, position, chain, ledger_seq, leaf_hash FROM numbered),"
    " heads AS (SELECT chain, max(ledger_seq) AS seq FROM numbered GROUP BY chain)"
    " SELECT (SELECT array_agg(leaf_hash ORDER BY log_index) FROM numbered) AS hashes,"
    " (SELECT coalesce(bool_and(in_order), true) FROM numbered) AS in_order,"
    " (SELECT array_agg(chain ORDER BY chain) FROM heads) AS chains,"
    " (SELECT array_agg(seq ORDER BY chain) FROM heads) AS seqs"
)


async def append_committed_round(
    conn: asyncpg.Connection,
    waiting: Sequence[Waiting],
    first_index: int,
    limit: int,
    seal: SealRound,
) -> AppendedRound | None:
    """Append the committed events of ``waiting`` (at most ``limit`` a partition) as
    leaves from ``first_index``, then the nodes and the checkpoint ``seal`` makes of
    their hashes, in one transaction. ``None`` when nothing was there to append.

    A partition's rows become visible in ``ledger_seq`` order with no gap (one
    processor commits a partition at a time), so reading by seq never skips a row
    that commits later. Raises :class:`LogOrderBroken` (and appends nothing) when
    a partition's new events do not continue its chain in position order.
    """
    if not waiting:
        return None
    async with conn.transaction():
        row = await conn.fetchrow(_APPEND_LEAVES_SQL, *_moved_arrays(waiting), limit, first_index)
        assert row is not None  # an aggregate-only SELECT returns one row
        hashes = [bytes(h) for h in row["hashes"] or ()]
        if not row["in_order"]:
            raise LogOrderBroken(
                "a partition's new events do not continue its chain in position order",
                hint="the round was not appended; run `claw-ledger audit`",
            )
        if not hashes:
            return None
        nodes, checkpoint = seal(hashes)
        await write_nodes_and_checkpoint(conn, nodes, checkpoint)
    included = dict(zip(row["chains"], row["seqs"], strict=True))
    return AppendedRound(len(hashes), included, checkpoint)


async def write_nodes_and_checkpoint(
    conn: asyncpg.Connection, nodes: Sequence[tuple[int, int, bytes]], checkpoint: StoredCheckpoint
) -> None:
    """The nodes above level 0 (level 0 is the leaves' own column) and the checkpoint."""
    inner = [node for node in nodes if node[0]]
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
