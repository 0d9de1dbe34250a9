"""One round of the transparency log written straight to Postgres, as the checkpointer
writes it, for the tests of the log's tables."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from ledger.checkpoint import Checkpoint, NoteSigner, sign_checkpoint
from ledger.crypto import KeyPair
from ledger.envelope import format_timestamp
from ledger.merkle import CompactRange
from storage.tlog_store import StoredCheckpoint
from storage.tlog_writer import PendingEvent, append_round


async def append_signed_round(
    conn: asyncpg.Connection,
    edge: CompactRange,
    events: Sequence[PendingEvent],
    origin: str,
    key: KeyPair,
) -> StoredCheckpoint:
    """Append ``events`` to ``edge`` (in place) and store them with their new nodes and
    the checkpoint of the grown tree, signed by ``key`` for ``origin``."""
    first = edge.size
    nodes = edge.extend([event.leaf_hash for event in events])
    checkpoint = Checkpoint(origin, edge.size, edge.root())
    note = sign_checkpoint(checkpoint, [NoteSigner(origin, key)]).decode()
    stored = StoredCheckpoint(
        edge.size, origin, edge.root(), note, key.did, str(uuid.uuid4()), format_timestamp()
    )
    await append_round(conn, first, events, nodes, stored)
    return stored
