"""Rounds of the transparency log written straight to Postgres, for the tests of the
log's tables: leaves that need no ``events`` rows, then the nodes and the checkpoint
the way the checkpointer writes them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from ledger.checkpoint import Checkpoint, NoteSigner, sign_checkpoint
from ledger.crypto import KeyPair
from ledger.envelope import format_timestamp
from ledger.merkle import CompactRange
from ledger.tlog import EventLeaf
from storage.tlog_store import StoredCheckpoint
from storage.tlog_writer import write_nodes_and_checkpoint

#: the ledger key the tests' rounds sign their checkpoints with
LOG_KEY = KeyPair.generate("ledger")


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """A leaf to append at ``position``, with its hash."""

    position: int
    leaf: EventLeaf
    leaf_hash: bytes


def signed_checkpoint(edge: CompactRange, origin: str, key: KeyPair) -> StoredCheckpoint:
    """The checkpoint of the tree ``edge`` ends, signed by ``key`` for ``origin``."""
    checkpoint = Checkpoint(origin, edge.size, edge.root())
    note = sign_checkpoint(checkpoint, [NoteSigner(origin, key)]).decode()
    return StoredCheckpoint(
        edge.size, origin, edge.root(), note, key.did, str(uuid.uuid4()), format_timestamp()
    )


async def append_signed_round(
    conn: asyncpg.Connection,
    edge: CompactRange,
    events: Sequence[PendingEvent],
    origin: str,
    key: KeyPair,
) -> StoredCheckpoint:
    """Append ``events`` to ``edge`` (in place) and store them with their new nodes and
    the checkpoint of the grown tree, signed by ``key`` for ``origin``, in one transaction."""
    first = edge.size
    nodes = edge.extend([event.leaf_hash for event in events])
    stored = signed_checkpoint(edge, origin, key)
    records = [
        (
            first + i,
            event.leaf.event_id,
            event.position,
            event.leaf.partition,
            event.leaf.ledger_seq,
            event.leaf_hash,
        )
        for i, event in enumerate(events)
    ]
    async with conn.transaction():
        await conn.copy_records_to_table(
            "tlog_leaves",
            records=records,
            columns=(
                "log_index",
                "event_id",
                "position",
                "kafka_partition",
                "ledger_seq",
                "leaf_hash",
            ),
        )
        await write_nodes_and_checkpoint(conn, nodes, stored)
    return stored


async def append_rounds(
    conn: asyncpg.Connection,
    leaves: Sequence[EventLeaf],
    rounds: Sequence[int],
    origin: str,
    *,
    first_position: int,
) -> list[int]:
    """Append the first ``sum(rounds)`` of ``leaves`` round by round, as the checkpointer
    does, ``rounds[k]`` leaves in round ``k``, leaf ``i`` at position ``first_position + i``,
    each round's checkpoint signed by :data:`LOG_KEY` for ``origin``; the checkpoint sizes."""
    edge = CompactRange()
    sizes = []
    for count in rounds:
        first = edge.size
        pending = [
            PendingEvent(first_position + first + i, leaf, leaf.hash())
            for i, leaf in enumerate(leaves[first : first + count])
        ]
        await append_signed_round(conn, edge, pending, origin, LOG_KEY)
        sizes.append(edge.size)
    return sizes
