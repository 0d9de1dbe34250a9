"""The checkpointer's log (migration 0010) as a sealed bundle's proof source.

:class:`LogProofSource` implements :class:`ledger.log_proofs.InclusionProofSource`
over the tables the checkpointer writes: the newest signed checkpoint, and the
inclusion proof of each event against exactly that checkpoint's tree, read for
thousands of events at a time (:func:`storage.tlog_store.inclusion_proofs_for_events`).
"""

from __future__ import annotations

from collections.abc import Sequence

from ledger.checkpoint import Checkpoint
from ledger.log_proofs import EventInclusion, EventsNotLogged, SignedCheckpoint
from storage.projection_queries import connection
from storage.tlog_store import inclusion_proofs_for_events, latest_checkpoint

__all__ = ["LogProofSource", "log_has_checkpoint"]


async def log_has_checkpoint(database_url: str) -> bool:
    """Whether the checkpointer has signed a checkpoint in this ledger yet."""
    async with connection(database_url) as conn:
        if not await conn.fetchval("SELECT to_regclass('tlog_checkpoints') IS NOT NULL"):
            return False
        return await latest_checkpoint(conn) is not None


class LogProofSource:
    """Proofs from the ledger's own transparency log, read as ``database_url``."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    async def checkpoint(self) -> SignedCheckpoint:
        async with connection(self.database_url) as conn:
            stored = await latest_checkpoint(conn)
        if stored is None:
            raise EventsNotLogged([], 0)
        checkpoint = Checkpoint(stored.origin, stored.tree_size, stored.root_hash)
        return SignedCheckpoint(stored.note, checkpoint)

    async def prove(
        self, event_ids: Sequence[str], checkpoint: SignedCheckpoint
    ) -> dict[str, EventInclusion]:
        async with connection(self.database_url) as conn:
            found, missing = await inclusion_proofs_for_events(conn, event_ids, checkpoint.size)
        if missing:
            raise EventsNotLogged(missing, checkpoint.size)
        proofs: dict[str, EventInclusion] = {}
        for event_id in event_ids:
            log_index, leaf, proof = found[event_id]
            proofs[event_id] = EventInclusion(log_index, leaf, tuple(proof))
        return proofs
