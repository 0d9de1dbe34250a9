"""Where a sealed bundle's inclusion proofs come from: one seam, one in-memory source.

:class:`InclusionProofSource` is what the bundler needs from the transparency
log: a signed checkpoint, and an inclusion proof of each of a run's events
against exactly that checkpoint. :class:`MemoryProofSource` implements it over
:class:`ledger.merkle.MerkleTree`, fed with the ledger's accepted events in the
append order of ADR 0011 (:func:`ledger.tlog.order_new_leaves`) and signing its
checkpoints with the key it is given. A source backed by the checkpointer's
tables plugs in behind the same protocol.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ledger.checkpoint import Checkpoint, NoteSigner, sign_checkpoint
from ledger.errors import LedgerError, ProofError, ReasonCode
from ledger.merkle import HASH_SIZE, MerkleTree
from ledger.tlog import EventLeaf, order_new_leaves

__all__ = [
    "EventInclusion",
    "EventsNotLogged",
    "InclusionProofSource",
    "MemoryProofSource",
    "SignedCheckpoint",
    "b64",
    "b64_hash",
]


class EventsNotLogged(LedgerError):
    """Some events are not in the checkpoint yet: seal again once the log caught up."""

    def __init__(self, missing: Sequence[str], size: int) -> None:
        self.missing = tuple(missing)
        super().__init__(
            f"{len(self.missing)} event(s) are not in the log's checkpoint of size {size} yet"
            f" (first: {self.missing[0] if self.missing else '-'})"
        )


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """A checkpoint and its signed note, exactly as a verifier receives it."""

    note: str
    checkpoint: Checkpoint

    @property
    def size(self) -> int:
        return self.checkpoint.size


def b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def b64_hash(text: Any, code: ReasonCode, what: str) -> bytes:
    """A 32-byte hash in canonical standard base64 (docs/transparency.md §8), else ``code``."""
    if isinstance(text, str):
        try:
            raw = binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
        except (binascii.Error, UnicodeEncodeError):
            raw = b""
        if len(raw) == HASH_SIZE and b64(raw) == text:
            return raw
    raise ProofError(code, f"{what} is not a 32-byte hash in standard base64")


@dataclass(frozen=True, slots=True)
class EventInclusion:
    """An event's leaf, its log index and the proof that it is in a checkpoint's tree."""

    log_index: int
    leaf: EventLeaf
    proof: tuple[bytes, ...]

    def to_dict(self, encoded: dict[bytes, str] | None = None) -> dict[str, Any]:
        """The inclusion-proof shape of docs/transparency.md §8.

        ``encoded``: base64 of nodes already written, shared across the proofs of
        one tree (the upper nodes recur in every proof) and filled here.
        """
        leaf = self.leaf
        if encoded is None:
            encoded = {}
        proof = [encoded.get(node) for node in self.proof]
        if None in proof:
            for i, node in enumerate(self.proof):
                if proof[i] is None:
                    proof[i] = encoded[node] = b64(node)
        return {
            "log_index": self.log_index,
            "leaf": {
                "partition": leaf.partition,
                "ledger_seq": leaf.ledger_seq,
                "event_id": leaf.event_id,
                "envelope_sha256": leaf.envelope_sha256,
                "chain_hash": leaf.chain_hash,
            },
            "proof_b64": proof,
        }


class InclusionProofSource(Protocol):
    """A signed view of the ledger's log and proofs against it."""

    async def checkpoint(self) -> SignedCheckpoint:
        """The newest signed checkpoint."""
        ...

    async def prove(
        self, event_ids: Sequence[str], checkpoint: SignedCheckpoint
    ) -> dict[str, EventInclusion]:
        """A proof for each event against ``checkpoint``'s tree (by event id).

        Raises :class:`EventsNotLogged` naming the events that tree does not hold.
        """
        ...


class MemoryProofSource:
    """The log as an in-memory Merkle tree, signed by ``signer`` (the ledger key).

    :meth:`extend` takes newly read ``events`` rows (position, partition,
    ledger_seq, event id, envelope SHA-256, chain hash) and appends them in the
    checkpointer's order; a partial view (a gap in a partition) is refused by
    :func:`~ledger.tlog.order_new_leaves` and nothing is appended.
    """

    def __init__(self, signer: NoteSigner) -> None:
        self.signer = signer
        self.tree = MerkleTree()
        self._index: dict[str, tuple[int, EventLeaf]] = {}
        #: last ledger_seq in the tree, per partition
        self.included: dict[int, int] = {}
        self._signed: SignedCheckpoint | None = None

    @property
    def size(self) -> int:
        return self.tree.size

    def extend(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Append the rows not in the tree yet; the number appended."""
        pending = [
            (int(r["position"]), EventLeaf.from_row(r))
            for r in rows
            if int(r["ledger_seq"]) > self.included.get(int(r["kafka_partition"]), 0)
        ]
        leaves = order_new_leaves(pending, self.included)
        hashes = [leaf.hash() for leaf in leaves]
        for leaf, hashed in zip(leaves, hashes, strict=True):
            self._index[leaf.event_id] = (self.tree.append(hashed), leaf)
            self.included[leaf.partition] = leaf.ledger_seq
        return len(leaves)

    def sign(self) -> SignedCheckpoint:
        """A checkpoint of the whole tree, signed now (reused while the tree has not grown)."""
        if self._signed is None or self._signed.size != self.tree.size:
            checkpoint = Checkpoint(self.signer.name, self.tree.size, self.tree.root())
            note = sign_checkpoint(checkpoint, [self.signer]).decode("utf-8")
            self._signed = SignedCheckpoint(note, checkpoint)
        return self._signed

    async def checkpoint(self) -> SignedCheckpoint:
        return self.sign()

    async def prove(
        self, event_ids: Sequence[str], checkpoint: SignedCheckpoint
    ) -> dict[str, EventInclusion]:
        size = checkpoint.size
        missing = [e for e in event_ids if e not in self._index or self._index[e][0] >= size]
        if missing:
            raise EventsNotLogged(missing, size)
        proofs: dict[str, EventInclusion] = {}
        for event_id in event_ids:
            index, leaf = self._index[event_id]
            proofs[event_id] = EventInclusion(
                index, leaf, tuple(self.tree.inclusion_proof(index, size))
            )
        return proofs
