"""Verification of one ingress message, as pure functions.

The processor calls :func:`verify_message` for every record (stateless,
CPU-bound steps), then :func:`decide` in partition order with the ledger state
(stateful steps). Steps, in order; the first failure decides the reason code:

1. size limit                                → ``OVERSIZED``
2. UTF-8 JSON parse                          → ``MALFORMED_JSON``
3. clawsig envelope: fields, versions, algorithms, payload schema (the event
   and its typed body), payload hash, signer DID and signature (docs/formats.md §2)
4. ``event_id`` uniqueness: the same envelope again is a no-op, a different
   one under a used id is ``DUPLICATE_EVENT_CONFLICT``
5. signer registered, not revoked, role allowed for the type
6. the event type's own rule (``ledger/types/``), given the :class:`RuleSettings`

A message is parsed once: the envelope checks, the payload and body schemas
and the payload hash all work on that one parsed value, and the compact
payload bytes that were hashed are the ones stored (``Verified.payload_json``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ledger.canonical import parse_json_tracking
from ledger.encoding import sha256_b64u
from ledger.envelope import SIGNATURE_DOES_NOT_VERIFY, SignedEnvelope, verify_envelope
from ledger.errors import EnvelopeError, EventError, ReasonCode, RejectedError
from ledger.events import EVENT_ENVELOPE_TYPE, EventBody, LedgerEvent, parse_event_payload
from ledger.registry import RuleSettings
from ledger.state import EventContext, LedgerState, ProjectionRow
from ledger.types import REGISTRY

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "Accepted",
    "Duplicate",
    "Rejected",
    "Verified",
    "check_and_apply",
    "check_signer",
    "decide",
    "signature_of",
    "signature_refusal",
    "signer_refusal",
    "verify_message",
]

DEFAULT_MAX_MESSAGE_BYTES = 1_048_576


@dataclass(frozen=True, slots=True)
class Verified:
    """Passed the stateless steps 1–3."""

    envelope: SignedEnvelope
    event: LedgerEvent
    body: EventBody
    envelope_sha256: str
    #: the payload as ``JSON.stringify`` writes it (what its hash covers)
    payload_json: bytes


@dataclass(frozen=True, slots=True)
class Rejected:
    code: ReasonCode
    detail: str
    event_id: str | None = None
    signer_did: str | None = None


@dataclass(frozen=True, slots=True)
class Accepted:
    verified: Verified
    rows: tuple[ProjectionRow, ...]


@dataclass(frozen=True, slots=True)
class Duplicate:
    """The very same envelope was already recorded: nothing to do."""

    event_id: str


def verify_message(
    raw: bytes, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, signature: bool = True
) -> Verified | Rejected:
    """Steps 1–3. Never raises for bad input.

    ``signature=False`` leaves out the Ed25519 check, the one costly step: the
    caller checks it elsewhere (:func:`signature_of` gives what to check,
    :func:`signature_refusal` the refusal when it fails), or trusts the store
    it read the bytes from (``claw-ledger replay --no-signatures``).
    """
    if len(raw) > max_bytes:
        return Rejected(ReasonCode.OVERSIZED, f"message is {len(raw)} bytes, limit {max_bytes}")
    try:
        document, plain_numbers = parse_json_tracking(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        return Rejected(ReasonCode.MALFORMED_JSON, f"not valid UTF-8 JSON: {exc}")
    if b"\\u0000" in raw and _holds_nul(document):
        # NUL cannot be stored in Postgres text/jsonb; no legitimate event needs it
        return Rejected(
            ReasonCode.SCHEMA_VALIDATION_FAILED,
            "strings must not contain U+0000",
            *_hints(document),
        )
    parsed: list[tuple[LedgerEvent, EventBody]] = []

    def event_schema(payload: Mapping[str, Any]) -> None:
        parsed.append(parse_event_payload(payload))

    try:
        envelope = verify_envelope(
            document,
            {EVENT_ENVELOPE_TYPE: event_schema},
            plain_numbers=plain_numbers,
            signature=signature,
        )
        event, body = parsed[0]
    except RejectedError as exc:
        return Rejected(exc.code, exc.detail, *_hints(document))
    except Exception as exc:  # a verifier bug must quarantine, never crash the processor
        return Rejected(
            ReasonCode.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}", *_hints(document)
        )
    # the bytes verify_envelope hashed: stored as they are, never dumped again
    payload_json = envelope.payload_json
    assert payload_json is not None
    return Verified(envelope, event, body, sha256_b64u(raw), payload_json)


def signature_of(verified: Verified) -> tuple[str, str, str]:
    """(signer DID, payload hash, signature) of a message verified without its
    signature: the arguments of :func:`ledger.envelope.signature_verifies`."""
    envelope = verified.envelope
    return envelope.signer_did, envelope.payload_hash_b64u, envelope.signature_b64u


def signature_refusal(verified: Verified) -> Rejected:
    """What :func:`verify_message` returns for these bytes when the signature
    :func:`signature_of` names does not verify."""
    return Rejected(
        ReasonCode.SIGNATURE_INVALID,
        SIGNATURE_DOES_NOT_VERIFY,
        verified.event.event_id,
        verified.envelope.signer_did,
    )


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False


def _hints(document: Any) -> tuple[str | None, str | None]:
    """Best-effort event id and signer for quarantine rows (never trusted)."""
    if not isinstance(document, dict):
        return None, None
    payload = document.get("payload")
    event_id = payload.get("event_id") if isinstance(payload, dict) else None
    signer = document.get("signer_did")
    return (
        event_id if isinstance(event_id, str) and len(event_id) < 200 else None,
        signer if isinstance(signer, str) and len(signer) < 200 else None,
    )


def check_signer(state: LedgerState, ctx: EventContext) -> None:
    """Step 5: signer registered, not revoked, and holding a role allowed for the type."""
    if ctx.event.producer != ctx.signer:
        raise EventError(
            ReasonCode.PRODUCER_MISMATCH,
            f"payload producer {ctx.event.producer} is not the envelope signer {ctx.signer}",
        )
    spec = REGISTRY[ctx.event.event_type]
    if spec.signer_bootstrap is not None and spec.signer_bootstrap(state, ctx):
        return
    refusal = signer_refusal(state, ctx.signer, ctx.event.event_type)
    if refusal is not None:
        raise refusal


def signer_refusal(state: LedgerState, signer: str, event_type: str) -> EventError | None:
    """Why step 5 refuses ``signer`` for ``event_type`` (registered, not revoked, a
    role allowed for the type), or ``None``; the authorize service asks it of its
    own key before it allows a call whose record this step would refuse."""
    record = state.keys.get(signer)
    if record is None:
        return EventError(
            ReasonCode.UNKNOWN_SIGNER,
            f"signer {signer} is not registered on the ledger",
            hint="an admin registers keys with `claw-ledger keys register`",
        )
    if record.revoked:
        return EventError(ReasonCode.SIGNER_REVOKED, f"signer {signer} was revoked")
    spec = REGISTRY[event_type]
    if not spec.roles & record.roles:
        return EventError(
            ReasonCode.ROLE_NOT_ALLOWED,
            f"roles {sorted(r.value for r in record.roles)} may not publish "
            f"{event_type} (needs one of {sorted(r.value for r in spec.roles)})",
        )
    return None


def check_and_apply(
    state: LedgerState, ctx: EventContext, settings: RuleSettings
) -> list[ProjectionRow]:
    """Steps 5 and 6: the signer check and the event type's rule; apply on success."""
    check_signer(state, ctx)
    spec = REGISTRY[ctx.event.event_type]
    spec.check(state, ctx, settings)
    return spec.apply(state, ctx, settings)


def decide(
    state: LedgerState,
    verified: Verified,
    recorded_payload_hash: str | None,
    settings: RuleSettings,
) -> Accepted | Duplicate | Rejected:
    """Steps 4–6 for one verified message, in ledger order; mutates ``state`` on accept.

    ``recorded_payload_hash`` is the payload hash already stored under this
    event id (in the ledger or earlier in the same batch), or ``None``.
    ``settings`` are handed to the event type's rule.
    """
    event = verified.event
    if recorded_payload_hash is not None:
        if recorded_payload_hash == verified.envelope.payload_hash_b64u:
            return Duplicate(event.event_id)
        return Rejected(
            ReasonCode.DUPLICATE_EVENT_CONFLICT,
            f"event_id {event.event_id} is already recorded with different content",
            event.event_id,
            verified.envelope.signer_did,
        )
    ctx = EventContext(event=event, body=verified.body, signer=verified.envelope.signer_did)
    try:
        rows = check_and_apply(state, ctx, settings)
    except EnvelopeError as exc:
        return Rejected(exc.code, exc.detail, event.event_id, ctx.signer)
    except RejectedError as exc:
        return Rejected(exc.code, exc.detail, event.event_id, ctx.signer)
    except Exception as exc:
        return Rejected(
            ReasonCode.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}", event.event_id, ctx.signer
        )
    return Accepted(verified, tuple(rows))
