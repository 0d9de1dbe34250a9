"""``claw-ledger checkpoint watch``: a log monitor.

It keeps the last checkpoint it verified in a small state file and, for every
newer checkpoint the ledger serves, checks the signature (the pinned ledger
key, under the pinned origin) and a consistency proof from the size it saw to
the new size, against the root it remembers, not the one the database now
claims. A log that rewrote history cannot produce that proof. Anything that
does not verify is an alert: the monitor stops, names both sizes and roots,
and keeps the state file as it was.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ledger.checkpoint import Checkpoint, NoteVerifier, open_checkpoint
from ledger.encoding import b64u_decode
from ledger.errors import CheckpointError, LedgerError, ProofError, ReasonCode, RejectedError
from ledger.merkle import verify_consistency
from storage.tlog_store import (
    Queryable,
    StoredCheckpoint,
    b64,
    checkpoint_at,
    checkpoints_after,
    consistency_hashes,
)

__all__ = ["LogAlert", "MonitorState", "WatchResult", "check_new_checkpoints", "pin_from"]


@dataclass
class MonitorState:
    """What the monitor trusts and last verified (the ``--state`` file, JSON)."""

    origin: str
    verifier_key: str
    tree_size: int = 0
    root_hash_b64: str | None = None

    @classmethod
    def load(cls, path: Path) -> MonitorState | None:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise LedgerError(f"cannot read the monitor state {path}: {exc}") from exc
        try:
            return cls(**document)
        except TypeError as exc:
            raise LedgerError(f"{path} is not a monitor state file: {exc}") from exc

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    @property
    def verifier(self) -> NoteVerifier:
        return NoteVerifier.from_verifier_key(self.verifier_key)


class LogAlert(RejectedError):
    """A checkpoint that is wrongly signed or does not extend the one seen before."""

    def __init__(
        self, code: ReasonCode, detail: str, seen: MonitorState, offending: StoredCheckpoint
    ) -> None:
        super().__init__(code, detail)
        self.seen = seen
        self.offending = offending

    def report(self) -> dict[str, Any]:
        return {
            "alert": True,
            "reason_code": self.code.value,
            "detail": self.detail,
            "seen": {"tree_size": self.seen.tree_size, "root_hash_b64": self.seen.root_hash_b64},
            "offending": {
                "tree_size": self.offending.tree_size,
                "root_hash_b64": b64(self.offending.root_hash),
                "event_id": self.offending.event_id,
            },
        }


@dataclass(frozen=True)
class WatchResult:
    verified: list[int]
    state: MonitorState


def pin_from(ledger_key: str, origin: str) -> NoteVerifier:
    """A pinned ledger key: its ``did:key`` (with ``origin``) or its note verifier key."""
    if ledger_key.startswith("did:key:"):
        return NoteVerifier.from_did(origin, ledger_key)
    verifier = NoteVerifier.from_verifier_key(ledger_key)
    if verifier.name != origin:
        raise LedgerError(f"the verifier key is for {verifier.name!r}, the origin is {origin!r}")
    return verifier


async def check_new_checkpoints(
    db: Queryable,
    state: MonitorState,
    *,
    on_verified: Callable[[MonitorState], None],
    batch: int = 1000,
) -> WatchResult:
    """Verify every checkpoint newer than ``state`` in size order; ``on_verified`` after each
    (it saves the state). Raises :class:`LogAlert` at the first that does not verify."""
    verified: list[int] = []
    verifier = state.verifier
    if state.root_hash_b64 is not None:
        # the checkpoint seen last must still be what it was: a rewritten row is a fork
        again = await checkpoint_at(db, state.tree_size)
        if again is not None and b64(again.root_hash) != state.root_hash_b64:
            raise LogAlert(
                ReasonCode.CONSISTENCY_PROOF_INVALID,
                f"the checkpoint of size {state.tree_size} now has root {b64(again.root_hash)},"
                f" it had {state.root_hash_b64} when it was seen",
                state,
                again,
            )
    while True:
        newer = await checkpoints_after(db, state.tree_size, batch)
        if not newer:
            return WatchResult(verified, state)
        for stored in newer:
            checkpoint = _open(stored, verifier, state)
            await _check_consistency(db, state, stored, checkpoint)
            state = MonitorState(
                state.origin, state.verifier_key, checkpoint.size, b64(checkpoint.root_hash)
            )
            on_verified(state)
            verified.append(checkpoint.size)


def _open(stored: StoredCheckpoint, verifier: NoteVerifier, state: MonitorState) -> Checkpoint:
    try:
        checkpoint = open_checkpoint(stored.note.encode("utf-8"), [verifier], origin=state.origin)
    except CheckpointError as exc:
        raise LogAlert(
            exc.code, f"checkpoint of size {stored.tree_size}: {exc.detail}", state, stored
        ) from exc
    if (checkpoint.size, checkpoint.root_hash) != (stored.tree_size, stored.root_hash):
        raise LogAlert(
            ReasonCode.CHECKPOINT_MALFORMED,
            f"the row of size {stored.tree_size} holds a note of size {checkpoint.size}"
            f" root {b64(checkpoint.root_hash)}",
            state,
            stored,
        )
    return checkpoint


async def _check_consistency(
    db: Queryable, state: MonitorState, stored: StoredCheckpoint, checkpoint: Checkpoint
) -> None:
    if state.root_hash_b64 is None:
        return  # the first checkpoint seen: nothing to be consistent with
    old_root = _b64decode(state.root_hash_b64)
    try:
        proof = await consistency_hashes(db, state.tree_size, checkpoint.size)
        verify_consistency(state.tree_size, checkpoint.size, old_root, checkpoint.root_hash, proof)
    except (ProofError, LedgerError, ValueError) as exc:
        detail = exc.detail if isinstance(exc, RejectedError) else str(exc)
        raise LogAlert(
            ReasonCode.CONSISTENCY_PROOF_INVALID,
            f"the checkpoint of size {checkpoint.size} (root {b64(checkpoint.root_hash)})"
            f" does not extend the one seen of size {state.tree_size}"
            f" (root {state.root_hash_b64}): {detail}",
            state,
            stored,
        ) from exc


def _b64decode(text: str) -> bytes:
    import binascii

    try:
        return binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except (binascii.Error, ValueError):
        # a state file written by hand with base64url
        return b64u_decode(text)
