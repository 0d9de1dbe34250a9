"""The transparency log's public record: ``checkpoint.signed``.

The checkpointer (ADR 0017) signs each checkpoint of the log with the
ledger's own registered key (role ``ledger``) and publishes it as this event,
so the log's history of tree heads is itself on the ledger, signed twice: the
envelope by the signer, the note by the same key under the log's origin. The
rule checks that the note is a checkpoint of that origin signed by the
event's signer, and that the body repeats its size and root. It writes no
projection: the checkpointer keeps the tree in its own tables.
"""

from __future__ import annotations

import binascii

from pydantic import Field

from ledger.checkpoint import MAX_NOTE_BYTES, NoteVerifier, open_checkpoint
from ledger.encoding import MAX_POSITION
from ledger.errors import CheckpointError, ReasonCode
from ledger.registry import EventBody, EventTypeSpec, RuleSettings
from ledger.state import EventContext, LedgerState
from ledger.types._common import body_of, no_apply, require_stream, spec

__all__ = ["SPECS", "CheckpointSigned", "checkpoint_stream"]

#: a note key name: no whitespace, no '+' (c2sp.org/signed-note)
ORIGIN_PATTERN = r"^[^\s+]{1,300}$"


def checkpoint_stream(origin: str) -> str:
    """The stream every checkpoint of the log ``origin`` is filed under."""
    return f"checkpoint:{origin}"


class CheckpointSigned(EventBody):
    """A signed checkpoint of the ledger's transparency log."""

    origin: str = Field(pattern=ORIGIN_PATTERN, description="the log's name")
    tree_size: int = Field(ge=1, le=MAX_POSITION)
    root_hash_b64: str = Field(pattern=r"^[A-Za-z0-9+/]{43}=$", description="standard base64")
    note: str = Field(min_length=1, max_length=MAX_NOTE_BYTES, description="the signed note")


def _check_signed(state: LedgerState, ctx: EventContext, settings: RuleSettings, /) -> None:
    body = body_of(ctx, CheckpointSigned)
    require_stream(ctx, checkpoint_stream(body.origin))
    verifier = NoteVerifier.from_did(body.origin, ctx.signer)
    checkpoint = open_checkpoint(body.note.encode("utf-8"), [verifier], origin=body.origin)
    root = binascii.a2b_base64(body.root_hash_b64)
    if (checkpoint.size, checkpoint.root_hash) != (body.tree_size, root):
        note_root = binascii.b2a_base64(checkpoint.root_hash, newline=False).decode()
        raise CheckpointError(
            ReasonCode.CHECKPOINT_MALFORMED,
            f"the body says size {body.tree_size} root {body.root_hash_b64}, the note"
            f" says size {checkpoint.size} root {note_root}",
        )


#: event type, body, stream, roles, projections written; check, apply, timeline summary
# fmt: off
SPECS: tuple[EventTypeSpec, ...] = (
    spec("checkpoint.signed", CheckpointSigned, "checkpoint:<origin>", "ledger", "",
         _check_signed, no_apply, "origin tree_size root_hash_b64"),
)
# fmt: on
