"""Offline verification of a file a reviewer holds, with no ledger and no server.

In the manner of sigstore-python's verifier: bytes and the pins the reviewer
trusts go in, a frozen :class:`VerificationResult` comes out. The input kind is
detected from the bytes; each kind runs numbered steps in a fixed order, and
the first failing step decides the reason code. Steps after a failure are not
run (their outcome would mean nothing).

* **proof bundle** (docs/formats.md §6): the clawsig verifier's steps, by
  :func:`ledger.bundles.verify_proof_bundle`, then one step of this ledger:
  every model call of the chain (``llm_call``) has a receipt bound to it
  (``RECEIPT_MISSING``);
* **a signed envelope** (docs/formats.md §2) of type ``ledger_event`` (the ingress
  steps of :func:`ledger.verify.verify_message`, then the producer), ``wpc``,
  ``gateway_receipt``; any other type fails at the schema step;
* **a C2SP signed checkpoint** (docs/transparency.md), alone or in a proof
  file with inclusion and consistency proofs (:mod:`ledger.offline_checkpoints`).
  Its signer must be the ledger key the reviewer pins: without a pin the
  check fails (fail closed).

The verdict's types live in :mod:`ledger.verification_report`.

What needs the ledger's state (registered keys and roles, revocations,
duplicates, the rules of each event type) is not checked here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeVar

from ledger.bundles import check_receipt_signatures, verify_proof_bundle
from ledger.canonical import parse_json_tracking
from ledger.checkpoint import Checkpoint, parse_note
from ledger.envelope import ENVELOPE_FIELDS, verify_envelope
from ledger.errors import ReasonCode, RejectedError
from ledger.gc_pause import collector_paused
from ledger.offline_checkpoints import parse_ledger_key, verify_checkpoint, verify_proof_file
from ledger.receipts import verify_receipt_envelope
from ledger.seal_verify import (
    ProofsElsewhere,
    SealCheck,
    SealOutcome,
    inclusion_answer,
    verify_seal,
)
from ledger.sealed_bundles import is_sealed
from ledger.verification_report import Check, InputKind, Steps, VerificationResult
from ledger.verify import Rejected, verify_message
from ledger.wpc import verify_wpc_envelope

__all__ = [
    "BUNDLE_STEPS",
    "ENVELOPE_STEPS",
    "MODEL_CALL_EVENT_TYPES",
    "Check",
    "InputKind",
    "VerificationResult",
    "detect_kind",
    "parse_ledger_key",
    "verify_bytes",
    "verify_document",
]


#: chain entry types that record a model call, each of which must have a gateway receipt
MODEL_CALL_EVENT_TYPES: frozenset[str] = frozenset({"llm_call"})

#: docs/formats.md §2 steps 1-5, for every envelope type
ENVELOPE_STEPS: tuple[str, ...] = (
    "envelope fields",
    "versions and algorithms",
    "payload schema",
    "payload hash",
    "signer and signature",
)
#: docs/formats.md §6, in the clawsig verifier's order, then the receipt coverage of model calls
BUNDLE_STEPS: tuple[str, ...] = (
    *ENVELOPE_STEPS,
    "signer is the bundle's agent_did",
    "receipt envelopes",
    "event chain links and entry hashes",
    "receipt bindings to the chain",
    "model calls have receipts",
)
_EVENT_STEPS = (*ENVELOPE_STEPS, "producer is the signer")

#: a signature line starts so; a note mangled by an editor (CRLF) still counts as one
_NOTE_SIGNATURE_MARK = "\n\u2014 "
_ENVELOPE_KINDS = frozenset(
    {InputKind.PROOF_BUNDLE, InputKind.LEDGER_EVENT, InputKind.WPC, InputKind.GATEWAY_RECEIPT}
)


# --- which step a reason code belongs to -------------------------------------------------

_ENVELOPE_STEP_OF: dict[str, int] = {
    ReasonCode.OVERSIZED: 1,
    ReasonCode.MALFORMED_JSON: 1,
    ReasonCode.MALFORMED_ENVELOPE: 1,
    ReasonCode.UNKNOWN_ENVELOPE_VERSION: 2,
    ReasonCode.UNKNOWN_HASH_ALGORITHM: 2,
    ReasonCode.UNKNOWN_ALGORITHM: 2,
    ReasonCode.HASH_MISMATCH: 4,
    ReasonCode.INVALID_DID_FORMAT: 5,
    ReasonCode.SIGNATURE_INVALID: 5,
}


def _fields_ok(document: Any) -> bool:
    """Step 1 of docs/formats.md §2 passes (a later MALFORMED_ENVELOPE is step 4's)."""
    if not isinstance(document, Mapping) or not set(ENVELOPE_FIELDS) <= document.keys():
        return False
    if not isinstance(document["payload"], Mapping):
        return False
    return all(type(document[name]) is str for name in ENVELOPE_FIELDS if name != "payload")


def _envelope_step(document: Any, code: str) -> int:
    if code == ReasonCode.MALFORMED_ENVELOPE and _fields_ok(document):
        return 4
    # anything else comes from the payload schema of the type (UNKNOWN_EVENT_TYPE, WPC_INVALID, …)
    return _ENVELOPE_STEP_OF.get(code, 3)


def _bundle_step(document: Any, exc: RejectedError) -> int:
    # docs/formats.md §6 prefixes receipt failures "receipts[i]" and chain failures "event_chain[i]"
    if exc.code == ReasonCode.PROOF_BUNDLE_AGENT_MISMATCH:
        return 6
    if exc.detail.startswith("receipts["):
        return 9 if exc.code == ReasonCode.RECEIPT_BINDING_MISMATCH else 7
    if exc.detail.startswith("event_chain[") and exc.code == ReasonCode.HASH_MISMATCH:
        return 8
    return _envelope_step(document, exc.code)


# --- envelopes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Expected:
    """What a bundle is held to: the ledger key that signs checkpoints and seals,
    the log's origin, the bundle's agent, and whether the run's agent may seal."""

    ledger_key: str | None = None
    origin: str | None = None
    agent: str | None = None
    accept_agent_seal: bool = False


def _verify_bundle(
    document: Any,
    expected: _Expected,
    plain_numbers: bool = False,
    proofs: ProofsElsewhere | None = None,
) -> VerificationResult:
    steps = Steps(InputKind.PROOF_BUNDLE)
    # a sealed bundle's receipts are those of events the ledger verified at ingest:
    # their signatures wait for the seal, and those its inclusion proofs cover are not checked again
    defer = expected.ledger_key is not None and _is_sealed_document(document)
    try:
        verified = verify_proof_bundle(
            document,
            expected_agent_did=expected.agent,
            plain_numbers=plain_numbers,
            defer_receipt_signatures=defer,
        )
    except RejectedError as exc:
        steps.table(BUNDLE_STEPS, _bundle_step(document, exc), exc)
        return steps.result()
    payload = verified.envelope.payload
    bound = {str(r["payload"]["binding"]["event_hash_b64u"]) for r in payload.get("receipts", [])}
    calls = [
        (index, entry)
        for index, entry in enumerate(payload["event_chain"])
        if entry["event_type"] in MODEL_CALL_EVENT_TYPES
    ]
    missing = [(index, entry) for index, entry in calls if entry["event_hash_b64u"] not in bound]
    seal: SealOutcome | None = None
    if not missing and is_sealed(payload):
        seal = _seal_checks(payload, expected, proofs)
    try:
        known = () if seal is None or seal.facts is None else seal.facts.receipt_signatures()
        check_receipt_signatures(verified.unchecked_signatures, known)
    except RejectedError as exc:
        steps.table(BUNDLE_STEPS, _bundle_step(document, exc), exc)
        return steps.result()
    steps.table(BUNDLE_STEPS[:-1], None)
    if missing:
        index, entry = missing[0]
        steps.fail(
            BUNDLE_STEPS[-1],
            ReasonCode.RECEIPT_MISSING,
            f"event_chain[{index}] ({entry['event_type']} {entry['event_id']}) has no gateway"
            f" receipt bound to it; {len(missing)} of {len(calls)} model calls lack one",
        )
        return steps.result()
    found = f"model calls: {len(calls)}, each with a receipt" if calls else "no model call"
    steps.ok(BUNDLE_STEPS[-1], found)
    summary = verified.summary()
    facts = {k: v for k, v in summary.items() if k not in ("status", "reason_code")}
    if seal is not None:
        return _report_seal(steps, payload, facts, seal)
    return steps.result(facts)


def _is_sealed_document(document: Any) -> bool:
    payload = document.get("payload") if isinstance(document, Mapping) else None
    return isinstance(payload, Mapping) and is_sealed(payload)


def _seal_checks(
    payload: Mapping[str, Any],
    expected: _Expected,
    proofs: ProofsElsewhere | None = None,
) -> SealOutcome:
    """The steps of a sealed bundle (docs/formats.md §6.1), after the clawsig ones."""
    public_key: bytes | None = None
    key_name: str | None = None
    if expected.ledger_key is not None:
        try:
            public_key, key_name = parse_ledger_key(expected.ledger_key)
        except ValueError as exc:
            check = SealCheck("ledger key pinned", ReasonCode.INVALID_DID_FORMAT.value, str(exc))
            return SealOutcome([check], None, None)
    return verify_seal(
        payload,
        ledger_public_key=public_key,
        key_name=key_name,
        origin=expected.origin,
        proofs=proofs,
        accept_agent_seal=expected.accept_agent_seal,
    )


def _report_seal(
    steps: Steps,
    payload: Mapping[str, Any],
    facts: dict[str, Any],
    seal: SealOutcome,
) -> VerificationResult:
    checks, run, sealed_by = seal
    for check in checks:
        if check.ok:
            steps.ok(check.name, check.detail)
        else:
            steps.fail(check.name, check.code, check.detail)
    if run is None:
        return steps.result()
    sealed = payload["seal"]
    facts.update(
        sealed=True,
        job_id=sealed["job_id"],
        run_status=sealed["run_status"],
        policy_hash_b64u=run.urm["policy"]["wpc_hash_b64u"] if run.urm else None,
        counts=sealed["counts"],
        sealed_by=sealed_by,
        checkpoint_size=Checkpoint.parse(parse_note(sealed["checkpoint"].encode()).text).size,
    )
    return steps.result(facts)


def _verify_event(raw: bytes, document: Any) -> VerificationResult:
    steps = Steps(InputKind.LEDGER_EVENT)
    verdict = verify_message(raw)
    if isinstance(verdict, Rejected):
        steps.table(_EVENT_STEPS, _envelope_step(document, verdict.code), verdict)
        return steps.result()
    steps.table(ENVELOPE_STEPS, None)
    event, envelope = verdict.event, verdict.envelope
    if event.producer != envelope.signer_did:
        steps.fail(
            _EVENT_STEPS[-1],
            ReasonCode.PRODUCER_MISMATCH,
            f"producer {event.producer} is not the signer {envelope.signer_did}",
        )
    else:
        steps.ok(_EVENT_STEPS[-1])
    return steps.result(
        {
            "event_id": event.event_id,
            "event_type": event.event_type,
            "stream": event.stream,
            "occurred_at": event.occurred_at,
            "signer_did": envelope.signer_did,
            "payload_hash_b64u": envelope.payload_hash_b64u,
            # of these exact bytes: the envelope_sha256 of a log leaf (transparency.md §1)
            "envelope_sha256": verdict.envelope_sha256,
        }
    )


def _verify_simple(
    kind: InputKind, document: Any, verify: Callable[[Any], Mapping[str, Any]]
) -> VerificationResult:
    steps = Steps(kind)
    try:
        facts = verify(document)
    except RejectedError as exc:
        steps.table(ENVELOPE_STEPS, _envelope_step(document, exc.code), exc)
        return steps.result()
    steps.table(ENVELOPE_STEPS, None)
    return steps.result(facts)


def _wpc_facts(document: Any) -> Mapping[str, Any]:
    verified = verify_wpc_envelope(document)
    return {
        "policy_hash_b64u": verified.policy_hash_b64u,
        "signer_did": verified.publisher_did,
    }


def _receipt_facts(document: Any) -> Mapping[str, Any]:
    envelope = verify_receipt_envelope(document)
    payload = envelope.payload
    return {
        "receipt_id": payload["receipt_id"],
        "gateway_id": payload["gateway_id"],
        "model": payload["model"],
        "run_id": payload["binding"]["run_id"],
        "event_hash_b64u": payload["binding"]["event_hash_b64u"],
        "signer_did": envelope.signer_did,
    }


def _unknown_envelope(document: Any) -> Mapping[str, Any]:
    verify_envelope(document, {})  # no schema: every type is refused, after steps 1-2
    return {}


# --- entry points ----------------------------------------------------------------------------

_T = TypeVar("_T")
_T_co = TypeVar("_T_co", covariant=True)


class Pending(Protocol[_T_co]):
    """Work started elsewhere: its result (``None`` if it could not be done
    there), or stop it."""

    def result(self) -> _T_co | None: ...

    def cancel(self) -> None: ...


class Background(Protocol):
    """Starts pure work somewhere else (another process) and hands back a :class:`Pending`."""

    def __call__(self, work: Callable[[], _T]) -> Pending[_T]: ...


#: smaller bundles are checked in one process: a second one costs more than it saves
BACKGROUND_FROM_BYTES = 8 * 2**20
_SEAL_MARK = b'"seal":'


def _is_note(raw: bytes) -> bool:
    try:
        return _NOTE_SIGNATURE_MARK in raw.decode("utf-8")
    except UnicodeDecodeError:
        return False


def _parse(raw: bytes) -> tuple[InputKind, Any, bool]:
    try:
        document, plain = parse_json_tracking(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return (InputKind.CHECKPOINT if _is_note(raw) else InputKind.UNREADABLE), None, False
    return detect_kind(document), document, plain


def detect_kind(document: Any) -> InputKind:
    """The kind of a parsed JSON document: an envelope by its type, or a proof file."""
    if isinstance(document, Mapping):
        if "checkpoint" in document and "envelope_type" not in document:
            return InputKind.CHECKPOINT
        envelope_type = document.get("envelope_type")
        # any JSON value may stand there: an object or a list is no kind's name
        if isinstance(envelope_type, str) and envelope_type in _ENVELOPE_KINDS:
            return InputKind(envelope_type)
    return InputKind.ENVELOPE


def verify_document(
    raw: bytes,
    document: Any,
    kind: InputKind,
    *,
    ledger_key: str | None = None,
    origin: str | None = None,
    agent: str | None = None,
    plain_numbers: bool = False,
    proofs: ProofsElsewhere | None = None,
    accept_agent_seal: bool = False,
) -> VerificationResult:
    """Verify ``document`` (parsed from ``raw``, key order kept) as ``kind``.

    ``plain_numbers``: the parse saw only safe integers (a faster payload hash).
    ``proofs``: a sealed bundle's inclusion proofs, checked elsewhere
    (see :func:`verify_bytes`). ``accept_agent_seal``: see :func:`verify_bytes`.
    """
    if kind is InputKind.PROOF_BUNDLE:
        expected = _Expected(ledger_key, origin, agent, accept_agent_seal)
        return _verify_bundle(document, expected, plain_numbers, proofs)
    if kind is InputKind.LEDGER_EVENT:
        return _verify_event(raw, document)
    if kind is InputKind.WPC:
        return _verify_simple(kind, document, _wpc_facts)
    if kind is InputKind.GATEWAY_RECEIPT:
        return _verify_simple(kind, document, _receipt_facts)
    if kind is InputKind.CHECKPOINT:
        if document is None:
            return verify_checkpoint(raw, None, ledger_key, origin)
        return verify_proof_file(document, ledger_key, origin)
    if kind is InputKind.UNREADABLE:
        steps = Steps(kind)
        steps.fail("read input", ReasonCode.MALFORMED_JSON, "neither JSON nor a signed note")
        return steps.result()
    return _verify_simple(InputKind.ENVELOPE, document, _unknown_envelope)


def verify_bytes(
    raw: bytes,
    *,
    ledger_key: str | None = None,
    origin: str | None = None,
    agent: str | None = None,
    background: Background | None = None,
    accept_agent_seal: bool = False,
) -> VerificationResult:
    """Detect what ``raw`` is and verify it; never raises for bad input.

    ``ledger_key`` pins the checkpoint signer (a ``did:key`` or a note
    verifier key), ``origin`` the checkpoint's log, ``agent`` a bundle's
    ``agent_did``. ``background`` (``claw_ledger.background.forked``: another
    process) checks a large sealed bundle's inclusion proofs while this one
    parses and checks the rest; the verdict is the same either way.

    A sealed bundle must be sealed by the pinned ledger key: the run's agent is
    the party the bundle is about, and its seal cannot vouch that no event of
    the run (a denial, a halt, a receipt) was left out. ``accept_agent_seal``
    accepts the run's agent's seal too, for what the bundle holds; the facts
    then say ``sealed_by: agent``.
    """
    pending = None
    if background is not None and len(raw) >= BACKGROUND_FROM_BYTES and _SEAL_MARK in raw:
        pending = background(partial(inclusion_answer, raw))
    try:
        with collector_paused():  # a bundle parses into millions of objects, all kept to the end
            kind, document, plain = _parse(raw)
            try:
                return verify_document(
                    raw,
                    document,
                    kind,
                    ledger_key=ledger_key,
                    origin=origin,
                    agent=agent,
                    plain_numbers=plain,
                    proofs=None if pending is None else pending.result,
                    accept_agent_seal=accept_agent_seal,
                )
            except Exception as exc:  # hostile input must give a verdict, never a traceback
                steps = Steps(kind)
                detail = f"{type(exc).__name__}: {exc}"
                steps.fail("verification", ReasonCode.INTERNAL_ERROR, detail)
                return steps.result()
    finally:
        if pending is not None:
            pending.cancel()  # not asked for (an earlier step failed): stop it
