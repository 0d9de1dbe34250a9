"""Proof bundles (clawsig v1, docs/formats.md §6): verify, and build one for a job.

Verification runs the clawsig verifier's numbered steps; the first failure
decides the reason code (raised as :class:`~ledger.errors.BundleError`):

1. envelope fields present                       → ``MALFORMED_ENVELOPE``
2. envelope version, hash and signature algorithm → ``UNKNOWN_*``
3. payload schema (bundle and chain entry shapes, one run id; tool, side-effect
   and human-approval receipts, :mod:`ledger.bundle_receipts`)
                                                  → ``SCHEMA_VALIDATION_FAILED``
4. payload hash (document order)                  → ``HASH_MISMATCH``
5. signer DID and signature                       → ``INVALID_DID_FORMAT`` /
   ``SIGNATURE_INVALID``; the signer is ``agent_did`` → ``PROOF_BUNDLE_AGENT_MISMATCH``
6. each receipt envelope by steps 1–5             → that receipt's code
7. bindings: each chain entry's ``event_hash_b64u`` recomputes and each
   ``prev_hash_b64u`` links (``HASH_MISMATCH``); each receipt is bound to the
   chain's run and to an event in it (``RECEIPT_BINDING_MISMATCH``).

With ``defer_receipt_signatures`` the Ed25519 checks of step 6 are left to the
caller (:func:`check_receipt_signatures`), who may know some of them already
verify: a sealed bundle's receipts are byte for byte those of ledger events
that the ledger verified at ingest and a pinned checkpoint includes. The first
failure is still the one the steps above give in order.

A bundle built here keeps every receipt's own key order (receipts from other
gateways are not in JCS order), so its payload is hashed and signed in
document order, exactly as the clawsig verifier hashes it.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ledger.bundle_receipts import other_receipts_problem
from ledger.canonical import compact_json, field_values
from ledger.crypto import KeyPair
from ledger.encoding import b64u_encode, sha256_b64u
from ledger.envelope import (
    SIGNATURE_DOES_NOT_VERIFY,
    SignedEnvelope,
    format_timestamp,
    payload_hash_b64u,
    signature_verifies,
    signing_bytes,
    verify_envelope,
)
from ledger.errors import BundleError, ReasonCode, RejectedError
from ledger.receipts import check_receipt_binding, verify_receipt_envelope

__all__ = [
    "BUNDLE_ENVELOPE_TYPE",
    "CHAIN_HASH_FIELDS",
    "ReceiptSignature",
    "VerifiedBundle",
    "build_job_bundle",
    "chain_entry",
    "check_receipt_signatures",
    "envelope_bytes_document_order",
    "event_hash_b64u",
    "sign_document_order",
    "verify_proof_bundle",
]

BUNDLE_ENVELOPE_TYPE = "proof_bundle"
BUNDLE_VERSION = "1"
MAX_CHAIN_ENTRIES = 10_000
MAX_RECEIPTS = 10_000

#: The fields of a chain entry that its ``event_hash_b64u`` covers, in this order.
CHAIN_HASH_FIELDS: tuple[str, ...] = (
    "event_id",
    "run_id",
    "event_type",
    "timestamp",
    "payload_hash_b64u",
    "prev_hash_b64u",
)


def event_hash_b64u(entry: Mapping[str, Any]) -> str:
    """b64u(SHA-256(compact JSON of the six chain fields in :data:`CHAIN_HASH_FIELDS` order))."""
    return sha256_b64u(compact_json({name: entry.get(name) for name in CHAIN_HASH_FIELDS}))


def chain_entry(
    *,
    event_id: str,
    run_id: str,
    event_type: str,
    timestamp: str,
    payload_hash_b64u: str,
    prev_hash_b64u: str | None,
) -> dict[str, Any]:
    """A complete chain entry: the :data:`CHAIN_HASH_FIELDS` in their order, then
    ``event_hash_b64u``."""
    values = (event_id, run_id, event_type, timestamp, payload_hash_b64u, prev_hash_b64u)
    entry: dict[str, Any] = dict(zip(CHAIN_HASH_FIELDS, values, strict=True))
    entry["event_hash_b64u"] = event_hash_b64u(entry)
    return entry


# --- verification -----------------------------------------------------------------


def _schema_error(detail: str) -> BundleError:
    return BundleError(ReasonCode.SCHEMA_VALIDATION_FAILED, detail)


def _nonempty_str(value: Any) -> bool:
    return isinstance(value, str) and len(value) > 0


def _bundle_schema(payload: Mapping[str, Any]) -> None:
    if payload.get("bundle_version") != BUNDLE_VERSION:
        raise _schema_error('bundle_version must be "1"')
    if not _nonempty_str(payload.get("bundle_id")):
        raise _schema_error("bundle_id must be a non-empty string")
    agent = payload.get("agent_did")
    if not isinstance(agent, str) or not agent.startswith("did:"):
        raise _schema_error("agent_did must be a DID")
    chain = payload.get("event_chain")
    if not isinstance(chain, list) or not chain:
        raise _schema_error("event_chain must be a non-empty list")
    if len(chain) > MAX_CHAIN_ENTRIES:
        raise _schema_error(f"event_chain has more than {MAX_CHAIN_ENTRIES} entries")
    run_ids: set[str] = set()
    seen_ids: set[str] = set()
    for index, entry in enumerate(chain):
        if not isinstance(entry, Mapping):
            raise _schema_error(f"event_chain[{index}] is not an object")
        for name in (*CHAIN_HASH_FIELDS, "event_hash_b64u"):
            if name not in entry:
                raise _schema_error(f"event_chain[{index}] lacks {name}")
        for name in (
            "event_id",
            "run_id",
            "event_type",
            "timestamp",
            "payload_hash_b64u",
            "event_hash_b64u",
        ):
            if not _nonempty_str(entry[name]):
                raise _schema_error(f"event_chain[{index}].{name} must be a non-empty string")
        prev = entry["prev_hash_b64u"]
        if index == 0 and prev is not None:
            raise _schema_error("event_chain[0].prev_hash_b64u must be null")
        if index > 0 and not _nonempty_str(prev):
            raise _schema_error(f"event_chain[{index}].prev_hash_b64u must be a string")
        if entry["event_id"] in seen_ids:
            raise _schema_error(f"event_id {entry['event_id']} appears twice in event_chain")
        seen_ids.add(entry["event_id"])
        run_ids.add(entry["run_id"])
    if len(run_ids) != 1:
        raise _schema_error(f"event_chain mixes run ids: {sorted(run_ids)}")
    receipts = payload.get("receipts", [])
    if not isinstance(receipts, list) or len(receipts) > MAX_RECEIPTS:
        raise _schema_error("receipts must be a list of gateway receipt envelopes")
    problem = other_receipts_problem(payload)
    if problem is not None:
        raise _schema_error(problem)
    if "urm" in payload:
        urm = payload["urm"]
        if not isinstance(urm, Mapping) or urm.get("urm_version") != "1":
            raise _schema_error('urm must be a URM reference with urm_version "1"')
        for name in ("urm_id", "resource_type", "resource_hash_b64u"):
            if not _nonempty_str(urm.get(name)):
                raise _schema_error(f"urm.{name} must be a non-empty string")


#: a receipt's (signer DID, payload hash, signature): the arguments of
#: :func:`ledger.envelope.signature_verifies`
ReceiptSignature = tuple[str, str, str]


@dataclass(frozen=True)
class VerifiedBundle:
    envelope: SignedEnvelope
    bundle_id: str
    agent_did: str
    run_id: str
    event_count: int
    receipt_count: int
    #: with ``defer_receipt_signatures``, every receipt's signature, in receipt
    #: order, still to be checked (:func:`check_receipt_signatures`); else empty
    unchecked_signatures: tuple[ReceiptSignature, ...] = ()

    def summary(self) -> dict[str, Any]:
        return {
            "status": "PASS",
            "reason_code": ReasonCode.OK.value,
            **field_values(self, skip=("envelope", "unchecked_signatures")),
        }


def _as_bundle_error(exc: RejectedError, where: str = "") -> BundleError:
    prefix = f"{where}: " if where else ""
    return BundleError(exc.code, prefix + exc.detail)


def check_receipt_signatures(
    signatures: Sequence[ReceiptSignature], verified: Collection[ReceiptSignature] = ()
) -> None:
    """Step 6's Ed25519 checks that :func:`verify_proof_bundle` deferred.

    Raises the ``BundleError`` the in-order check gives for the first receipt
    whose signature does not verify. ``verified`` holds signatures known to
    verify (the same key, payload hash and signature bytes), which are not
    checked again.
    """
    for index, signature in enumerate(signatures):
        if signature not in verified and not signature_verifies(*signature):
            raise BundleError(
                ReasonCode.SIGNATURE_INVALID, f"receipts[{index}]: {SIGNATURE_DOES_NOT_VERIFY}"
            )


def verify_proof_bundle(
    document: Any,
    *,
    expected_agent_did: str | None = None,
    plain_numbers: bool = False,
    defer_receipt_signatures: bool = False,
) -> VerifiedBundle:
    """Verify a parsed proof bundle envelope (steps in the module docstring).

    ``plain_numbers``: the caller parsed the bytes and saw only safe integers
    (:func:`ledger.canonical.parse_json_tracking`), so hashing skips the number scan.
    ``defer_receipt_signatures``: every step but the receipts' Ed25519 checks,
    which the result lists in ``unchecked_signatures``; a failure of a later
    step is raised only once those signatures verify, so the first failure is
    the same as without deferral.
    """
    # steps 1-5
    try:
        envelope = verify_envelope(
            document,
            {BUNDLE_ENVELOPE_TYPE: _bundle_schema},
            expected_type=BUNDLE_ENVELOPE_TYPE,
            plain_numbers=plain_numbers,
        )
    except RejectedError as exc:
        raise _as_bundle_error(exc) from exc
    payload = envelope.payload
    agent_did = str(payload["agent_did"])
    if envelope.signer_did != agent_did:
        raise BundleError(
            ReasonCode.PROOF_BUNDLE_AGENT_MISMATCH,
            f"bundle signed by {envelope.signer_did}, agent_did is {agent_did}",
        )
    if expected_agent_did is not None and agent_did != expected_agent_did:
        raise BundleError(
            ReasonCode.PROOF_BUNDLE_AGENT_MISMATCH,
            f"bundle is for {agent_did}, expected {expected_agent_did}",
        )
    # step 6
    receipts = list(payload.get("receipts", []))
    unchecked: list[ReceiptSignature] = []
    for index, receipt in enumerate(receipts):
        try:
            verified = verify_receipt_envelope(
                receipt, plain_numbers=plain_numbers, signature=not defer_receipt_signatures
            )
        except RejectedError as exc:
            raise _as_bundle_error(exc, f"receipts[{index}]") from exc
        if defer_receipt_signatures:
            unchecked.append(
                (verified.signer_did, verified.payload_hash_b64u, verified.signature_b64u)
            )
    try:
        run_id = _check_chain_and_bindings(payload, receipts)
    except BundleError:
        check_receipt_signatures(unchecked)  # a bad signature is the earlier failure
        raise
    return VerifiedBundle(
        envelope=envelope,
        bundle_id=str(payload["bundle_id"]),
        agent_did=agent_did,
        run_id=run_id,
        event_count=len(payload["event_chain"]),
        receipt_count=len(receipts),
        unchecked_signatures=tuple(unchecked),
    )


def _check_chain_and_bindings(payload: Mapping[str, Any], receipts: Sequence[Any]) -> str:
    """Step 7; the run id of the chain."""
    chain = list(payload["event_chain"])
    previous: str | None = None
    for index, entry in enumerate(chain):
        if index > 0 and entry["prev_hash_b64u"] != previous:
            raise BundleError(
                ReasonCode.HASH_MISMATCH, f"event_chain[{index}] does not link to its predecessor"
            )
        computed = event_hash_b64u(entry)
        if computed != entry["event_hash_b64u"]:
            raise BundleError(
                ReasonCode.HASH_MISMATCH,
                f"event_chain[{index}].event_hash_b64u is not the hash of the entry",
            )
        previous = computed
    run_id = str(chain[0]["run_id"])
    hashes = {str(entry["event_hash_b64u"]) for entry in chain}
    for index, receipt in enumerate(receipts):
        try:
            check_receipt_binding(receipt["payload"], run_id=run_id, event_hashes=hashes)
        except RejectedError as exc:
            raise _as_bundle_error(exc, f"receipts[{index}]") from exc
    return run_id


# --- building ---------------------------------------------------------------------


def sign_document_order(
    envelope_type: str, payload: Mapping[str, Any], key: KeyPair, *, issued_at: str | None = None
) -> SignedEnvelope:
    """Sign ``payload`` hashing it in its own key order (for payloads that embed
    envelopes received from elsewhere, whose order must be kept)."""
    digest = payload_hash_b64u(payload)
    return SignedEnvelope(
        envelope_type=envelope_type,
        payload=payload,
        payload_hash_b64u=digest,
        signature_b64u=b64u_encode(key.sign(signing_bytes(digest))),
        signer_did=key.did,
        issued_at=issued_at or format_timestamp(),
    )


def build_job_bundle(
    job: Mapping[str, Any],
    receipts: Sequence[Mapping[str, Any]],
    key: KeyPair,
    *,
    bundle_id: str | None = None,
    issued_at: str | None = None,
    include_urm_reference: bool = False,
) -> SignedEnvelope:
    """A proof bundle for a job, from its ``jobs`` projection row and its receipts.

    ``job["event_chain"]`` is the chain kept by the run rules; ``receipts`` are
    the parsed receipt envelopes in their received key order. The bundle is
    signed by ``key``, which becomes ``agent_did`` (the agent, or the ledger).
    The result passes :func:`verify_proof_bundle`.
    """
    chain = [dict(entry) for entry in job.get("event_chain") or ()]
    if not chain:
        raise BundleError(ReasonCode.SCHEMA_VALIDATION_FAILED, "the job has no events yet")
    payload: dict[str, Any] = {
        "bundle_version": BUNDLE_VERSION,
        "bundle_id": bundle_id or f"bundle_{uuid.uuid4()}",
        "agent_did": key.did,
    }
    if include_urm_reference and job.get("urm_hash_b64u"):
        payload["urm"] = {
            "urm_version": "1",
            "urm_id": str(job["job_id"]),
            "resource_type": "urm",
            "resource_hash_b64u": str(job["urm_hash_b64u"]),
        }
    payload["event_chain"] = chain
    payload["receipts"] = [dict(r) for r in receipts]
    envelope = sign_document_order(BUNDLE_ENVELOPE_TYPE, payload, key, issued_at=issued_at)
    verify_proof_bundle(envelope.to_dict())
    return envelope


def envelope_bytes_document_order(envelope: SignedEnvelope) -> bytes:
    """Compact JSON of an envelope in document order (``to_bytes`` would reorder it)."""
    return compact_json(envelope.to_dict())
