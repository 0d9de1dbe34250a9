"""Sealed proof bundles (ADR 0019, docs/formats.md §6.1): build one, and verify its seal.

A sealed bundle is a clawsig v1 ``proof_bundle`` (docs/formats.md §6) whose
payload carries one more member, ``seal``: the run's ledger events as their
exact envelope bytes, each with its log leaf and an inclusion proof against
one signed checkpoint of the ledger's log, and what those events say (URM,
signed WPC, token hashes, authorize decisions, halt windows, outputs). The
ledger signs the whole payload with its own key. Anyone holding the file and
the ledger's ``did:key`` checks it offline with :func:`ledger.seal_verify.verify_seal`,
after the clawsig steps of :func:`ledger.bundles.verify_proof_bundle`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ledger.bundles import BUNDLE_ENVELOPE_TYPE, BUNDLE_VERSION
from ledger.canonical import (
    compact_json,
    parse_json_stored,
    parse_json_tracking,
)
from ledger.crypto import KeyPair
from ledger.encoding import b64u_encode, sha256_b64u
from ledger.envelope import SignedEnvelope, signing_bytes
from ledger.errors import BundleError, ReasonCode
from ledger.gc_pause import collector_paused
from ledger.log_proofs import EventInclusion, SignedCheckpoint
from ledger.run_facts import RunFacts, run_facts

__all__ = [
    "SEAL_VERSION",
    "LoggedEvent",
    "SealedBundle",
    "build_sealed_bundle",
    "bundle_hash_b64u",
    "is_sealed",
    "seal_facts",
]

SEAL_VERSION = "1"
_BUNDLE_NAMESPACE = uuid.UUID("6d1d3c55-2a55-4c2a-9a9b-0c1a2b3c4d5e")


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """An accepted event's exact envelope text and its proof of inclusion."""

    envelope: str
    inclusion: EventInclusion


@dataclass(frozen=True, slots=True)
class SealedBundle:
    envelope: SignedEnvelope
    #: the bundle's exact bytes (compact JSON, document order): what is stored and exported
    raw: bytes
    facts: RunFacts

    @property
    def bundle_hash_b64u(self) -> str:
        return sha256_b64u(self.raw)


def bundle_hash_b64u(raw: bytes) -> str:
    """A bundle's identity: b64u(SHA-256(its exact bytes))."""
    return sha256_b64u(raw)


def is_sealed(payload: Mapping[str, Any]) -> bool:
    return "seal" in payload


def seal_facts(job_id: str, logged: Sequence[LoggedEvent]) -> RunFacts:
    """What the logged events say (:func:`ledger.run_facts.run_facts`)."""
    plain = True
    payloads = []
    for event in logged:
        document, seen_plain = parse_json_stored(event.envelope)
        plain = plain and seen_plain
        payloads.append(document["payload"])
    facts = run_facts(job_id, payloads)
    facts.plain_numbers = facts.plain_numbers and plain
    return facts


def _sign(
    payload: Mapping[str, Any], key: KeyPair, issued_at: str, plain_numbers: bool
) -> tuple[SignedEnvelope, bytes]:
    """Sign ``payload`` in document order and write the envelope's bytes, serialising
    the (large) payload once: the same bytes as
    :func:`ledger.bundles.envelope_bytes_document_order`."""
    payload_bytes = compact_json(payload, plain_numbers=plain_numbers)
    digest = sha256_b64u(payload_bytes)
    envelope = SignedEnvelope(
        envelope_type=BUNDLE_ENVELOPE_TYPE,
        payload=payload,
        payload_hash_b64u=digest,
        signature_b64u=b64u_encode(key.sign(signing_bytes(digest))),
        signer_did=key.did,
        issued_at=issued_at,
    )
    fields = envelope.to_dict()
    head = {name: fields[name] for name in ("envelope_version", "envelope_type")}
    tail = {name: value for name, value in fields.items() if name not in head and name != "payload"}
    raw = b"".join(
        (
            compact_json(head)[:-1],
            b',"payload":',
            payload_bytes,
            b",",
            compact_json(tail)[1:],
        )
    )
    return envelope, raw


@collector_paused()
def build_sealed_bundle(
    job_id: str,
    logged: Sequence[LoggedEvent],
    checkpoint: SignedCheckpoint,
    key: KeyPair,
    *,
    trigger: str,
    sealed_at: str,
) -> SealedBundle:
    """Seal a run: ``logged`` are its events (any order), each proven against ``checkpoint``.

    The signed WPC comes from the run's ``policy.published`` event. Raises
    :class:`BundleError` (``JOB_UNKNOWN``, ``WPC_UNKNOWN``) when the events
    lack the run's manifest or policy.
    """
    ordered = sorted(logged, key=lambda e: e.inclusion.log_index)
    facts = seal_facts(job_id, ordered)
    if facts.manifest is None or not facts.chain:
        raise BundleError(
            ReasonCode.JOB_UNKNOWN, f"no run.manifest_approved of job {job_id} among its events"
        )
    if facts.policy_published is None:
        raise BundleError(
            ReasonCode.WPC_UNKNOWN, f"no policy.published of job {job_id}'s WPC among its events"
        )
    encoded: dict[bytes, str] = {}
    wpc_text = str(facts.policy_published["body"]["wpc_envelope_json"])
    wpc_envelope, wpc_plain = parse_json_tracking(wpc_text.encode("utf-8"))
    manifest_body = facts.manifest["body"]
    bundle_id = uuid.uuid5(_BUNDLE_NAMESPACE, f"{job_id}\n{trigger}\n{checkpoint.size}")
    payload: dict[str, Any] = {
        "bundle_version": BUNDLE_VERSION,
        "bundle_id": f"bundle_{bundle_id}",
        "agent_did": key.did,
        "urm": {
            "urm_version": "1",
            "urm_id": job_id,
            "resource_type": "urm",
            "resource_hash_b64u": manifest_body["urm_hash_b64u"],
        },
        "event_chain": facts.chain,
        "receipts": [receipt for _, receipt in facts.receipts],
        "seal": {
            "seal_version": SEAL_VERSION,
            "job_id": job_id,
            "run_status": facts.status(),
            "trigger": trigger,
            "sealed_at": sealed_at,
            "ledger_did": key.did,
            "agent_did": facts.agent_did,
            "urm": manifest_body["urm"],
            "wpc_envelope": wpc_envelope,
            "token": facts.token_summary(),
            "decisions": facts.decisions,
            "halts": facts.halts,
            "outputs": facts.outputs,
            "counts": facts.counts(),
            "checkpoint": checkpoint.note,
            "events": [{"envelope": e.envelope, **e.inclusion.to_dict(encoded)} for e in ordered],
        },
    }
    plain = facts.plain_numbers and wpc_plain
    envelope, raw = _sign(payload, key, sealed_at, plain)
    return SealedBundle(envelope, raw, facts)
