"""What the event tests (``test_events_*.py``) share: fixed keys, a valid body and
stream for every event type (``SAMPLES``), and drivers that sign an event and run it
through the processor's pure pipeline, verify_message then decide."""

from __future__ import annotations

import copy
from typing import Any

from ledger.crypto import KeyPair
from ledger.encoding import sha256_b64u
from ledger.envelope import sign_envelope
from ledger.errors import ReasonCode
from ledger.events import EVENT_ENVELOPE_TYPE, build_event, sign_event
from ledger.registry import RuleSettings
from ledger.state import LedgerState
from ledger.verify import Accepted, Duplicate, Rejected, Verified, decide, verify_message
from tests.primitives._support import sealed_body

from ._helpers import FIXED_TS, key

ROOT = key(1, "root")
ADMIN2 = key(2, "admin2")
RUNTIME = key(5, "runtime")
OPERATOR = key(6, "operator")
OUTSIDER = key(9, "outsider")

H1 = sha256_b64u(b"one")
H2 = sha256_b64u(b"two")

_ids = iter(range(1, 1_000_000))


def new_id() -> str:
    return f"00000000-0000-4000-8000-{next(_ids):012d}"


#: a valid body and stream for every event type
SAMPLES: dict[str, tuple[str, dict[str, Any]]] = {
    "key.registered": (
        f"key:{RUNTIME.did}",
        {"did": RUNTIME.did, "name": "runtime", "roles": ["runtime"]},
    ),
    "key.revoked": (f"key:{RUNTIME.did}", {"did": RUNTIME.did, "reason": "rotated"}),
    "policy.published": (
        f"policy:{H1}",
        {"policy_hash_b64u": H1, "wpc_envelope_json": '{"payload":{}}'},
    ),
    "policy.superseded": (
        f"policy:{H1}",
        {"old_policy_hash_b64u": H1, "new_policy_hash_b64u": H2, "reason": ""},
    ),
    "policy.revoked": (f"policy:{H1}", {"policy_hash_b64u": H1, "reason": "bad"}),
    "token.issued": (
        "token:jti-1",
        {
            "jti": "jti-1",
            "sub": "agent:alpha",
            "aud": ["clawproxy"],
            "scope": ["tools:read"],
            "iat": 1_770_854_400,
            "exp": 1_770_858_000,
            "kid": "21fe31dfa154a261",
            "issuer_did": ROOT.did,
            "token_scope_hash_b64u": H1,
            "token_sha256_b64u": H2,
        },
    ),
    "token.revoked": ("token:jti-1", {"jti": "jti-1", "reason": "leaked"}),
    "receipt.recorded": ("job:j1", {"job_id": "j1", "receipt_envelope_json": "{}"}),
    "run.manifest_approved": (
        "job:j1",
        {"job_id": "j1", "urm_hash_b64u": H1, "urm": {"urm_version": "1"}, "approvals": []},
    ),
    "run.started": ("job:j1", {"job_id": "j1", "urm_hash_b64u": H1, "cst_jti": "jti-1"}),
    "run.completed": ("job:j1", {"job_id": "j1", "outputs": [{"name": "a", "sha256": "00"}]}),
    "agent.halted": ("halt:*", {"target": "*", "reason": "incident"}),
    "agent.resumed": ("halt:*", {"target": "*", "reason": "fixed"}),
    "policy.attested": (
        "openclaw-policy:ws",
        {
            "ok": True,
            "policy_hash": None,
            "workspace_hash": "sha256:00",
            "findings_hash": "sha256:01",
            "attestation_hash": "sha256:02",
            "checked_at": FIXED_TS,
            "policy_path": "policy.json5",
            "findings_count": 0,
        },
    ),
    "policy.drift": (
        "openclaw-policy:ws",
        {
            "previous_attestation_hash": None,
            "attestation_hash": "sha256:02",
            "ok": False,
            "checked_at": FIXED_TS,
            "findings_count": 2,
        },
    ),
    **{
        event_type: (
            "job:j1",
            {
                "decision_id": "0b5d4c7e-6a39-4c55-9a55-7f0d8f1c2b3a",
                "job_id": "j1",
                "action": {"kind": "tool", "tool": "read"},
                "token_jti": "jti-1",
                "token_scope_hash_b64u": H1,
                "policy_hash_b64u": H2,
                "halt_target": None,
                "halt_state": None,
                "reason_code": reason,
                "decided_at": FIXED_TS,
            },
        )
        for event_type, reason in (("call.authorized", "OK"), ("call.denied", "TOOL_NOT_ALLOWED"))
    },
    "bundle.sealed": ("job:job-1", sealed_body("job-1")),
    "pulse.published": ("job:job-1", {"pulse_id": "B" * 43, "record": {"job_id": "job-1"}}),
    "checkpoint.signed": (
        "checkpoint:ledger.example/claw",
        {
            "origin": "ledger.example/claw",
            "tree_size": 1,
            "root_hash_b64": "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
            "note": "ledger.example/claw\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
        },
    ),
    "policy.shadowed": ("shadow:job:j1", {"policy_hash_b64u": H1, "scope": "job:j1"}),
    "policy.shadow_ended": ("shadow:job:j1", {"scope": "job:j1", "reason": "done"}),
    "call.shadowed": (
        "job:j1",
        {
            "decision_id": "0b5d4c7e-6a39-4c55-9a55-7f0d8f1c2b3a",
            "job_id": "j1",
            "action": {"kind": "tool", "tool": "write"},
            "policy_hash_b64u": H2,
            "decision": "allow",
            "reason_code": "OK",
            "shadow_scope": "job:j1",
            "shadow_policy_hash_b64u": H1,
            "shadow_decision": "deny",
            "shadow_reason_code": "TOOL_NOT_ALLOWED",
            "decided_at": FIXED_TS,
        },
    ),
}


def payload(event_type: str, producer: KeyPair, /, **changes: Any) -> dict[str, Any]:
    stream, body = SAMPLES[event_type]
    document = {
        "event_type": event_type,
        "event_id": new_id(),
        "stream": stream,
        "occurred_at": FIXED_TS,
        "producer": producer.did,
        "body": copy.deepcopy(body),
    }
    document.update(changes)
    return document


def signed_raw(
    document: dict[str, Any], signer: KeyPair, envelope_type: str = EVENT_ENVELOPE_TYPE
) -> bytes:
    """Sign any payload (even an invalid one) as producers would, and give the wire bytes."""
    return sign_envelope(envelope_type, document, signer, issued_at=FIXED_TS).to_bytes()


def rejected(raw: bytes, **kwargs: Any) -> Rejected:
    result = verify_message(raw, **kwargs)
    assert isinstance(result, Rejected), result
    return result


def verified(raw: bytes) -> Verified:
    result = verify_message(raw)
    assert isinstance(result, Verified), result
    return result


def event_raw(
    event_type: str,
    stream: str,
    body: dict[str, Any],
    signer: KeyPair,
    *,
    event_id: str | None = None,
) -> bytes:
    event = build_event(
        event_type, stream, body, signer, event_id=event_id or new_id(), occurred_at=FIXED_TS
    )
    return sign_event(event, signer).to_bytes()


def register_raw(
    signer: KeyPair, subject: KeyPair, roles: list[str], *, event_id: str | None = None
) -> bytes:
    body = {"did": subject.did, "name": subject.name or "k", "roles": roles}
    return event_raw("key.registered", f"key:{subject.did}", body, signer, event_id=event_id)


def revoke_raw(signer: KeyPair, subject: KeyPair) -> bytes:
    body = {"did": subject.did, "reason": "compromised"}
    return event_raw("key.revoked", f"key:{subject.did}", body, signer)


def run(
    state: LedgerState, raw: bytes, recorded: str | None = None
) -> Accepted | Duplicate | Rejected:
    return decide(state, verified(raw), recorded, RuleSettings())


def accept(state: LedgerState, raw: bytes) -> Accepted:
    result = run(state, raw)
    assert isinstance(result, Accepted), result
    return result


def refused(state: LedgerState, raw: bytes) -> ReasonCode:
    result = run(state, raw)
    assert isinstance(result, Rejected), result
    return result.code


def bootstrapped() -> LedgerState:
    """Trust root registered, plus ADMIN2 (admin), RUNTIME (runtime), OPERATOR (operator)."""
    state = LedgerState(trust_root=ROOT.did)
    accept(state, register_raw(ROOT, ROOT, ["admin"]))
    accept(state, register_raw(ROOT, ADMIN2, ["admin"]))
    accept(state, register_raw(ROOT, RUNTIME, ["runtime"]))
    accept(state, register_raw(ROOT, OPERATOR, ["operator"]))
    return state
