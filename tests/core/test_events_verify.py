"""Ledger events and the processor's pure pipeline: verify_message (steps 1-3) and decide (4-6)."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest

from ledger.canonical import jcs
from ledger.crypto import KeyPair
from ledger.encoding import sha256_b64u
from ledger.envelope import sign_envelope
from ledger.errors import EventError, ReasonCode
from ledger.events import (
    EVENT_ENVELOPE_TYPE,
    LedgerEvent,
    build_event,
    parse_event_payload,
    sign_event,
)
from ledger.registry import RuleSettings
from ledger.roles import Role, roles_allowed_for
from ledger.state import LedgerState
from ledger.types import REGISTRY, halts
from ledger.types.halts import AgentHalted
from ledger.types.keys import KeyRegistered
from ledger.verify import (
    DEFAULT_MAX_MESSAGE_BYTES,
    Accepted,
    Duplicate,
    Rejected,
    Verified,
    decide,
    verify_message,
)
from tests.primitives._support import sealed_body

from ._helpers import FIXED_TS, UNKNOWN_VERSIONS_AND_ALGORITHMS, key, to_raw

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


# --- build / sign -----------------------------------------------------------------------


def test_samples_cover_every_event_type() -> None:
    assert set(SAMPLES) == set(REGISTRY.event_types())


@pytest.mark.parametrize("event_type", sorted(REGISTRY.event_types()))
def test_build_sign_verify_round_trip_for_every_type(event_type: str) -> None:
    stream, body = SAMPLES[event_type]
    event = build_event(event_type, stream, body, RUNTIME, occurred_at=FIXED_TS)
    envelope = sign_event(event, RUNTIME)
    assert envelope.envelope_type == EVENT_ENVELOPE_TYPE
    assert envelope.payload["event_type"] == event_type
    result = verified(envelope.to_bytes())
    assert result.event == event
    assert result.envelope.signer_did == RUNTIME.did
    assert type(result.body) is REGISTRY[event_type].body
    assert result.envelope_sha256 == sha256_b64u(envelope.to_bytes())


def test_build_event_defaults_and_typed_body() -> None:
    event = build_event(
        "key.registered",
        f"key:{RUNTIME.did}",
        KeyRegistered(did=RUNTIME.did, name="rt", roles=(Role.RUNTIME, Role.APPROVER)),
        ROOT,
    )
    assert event.producer == ROOT.did
    LedgerEvent.model_validate(event.to_payload())  # the defaults are valid themselves
    assert len(event.event_id) == 36 and event.event_id[14] == "4"  # uuid4
    assert event.occurred_at.endswith("Z")
    body = event.typed_body()
    assert isinstance(body, KeyRegistered)
    assert body.roles == (Role.RUNTIME, Role.APPROVER)
    assert event.body == {"did": RUNTIME.did, "name": "rt", "roles": ["runtime", "approver"]}


def test_build_event_refuses_bad_input() -> None:
    with pytest.raises(EventError) as info:
        build_event("key.deleted", "key:x", {}, ROOT)
    assert info.value.code is ReasonCode.UNKNOWN_EVENT_TYPE
    with pytest.raises(EventError) as info:
        build_event("agent.halted", "halt:*", {"target": "*"}, ROOT)
    assert info.value.code is ReasonCode.SCHEMA_VALIDATION_FAILED
    assert "reason" in info.value.detail


def test_sign_event_refuses_other_key_than_producer() -> None:
    event = build_event("agent.halted", "halt:*", SAMPLES["agent.halted"][1], OPERATOR)
    with pytest.raises(EventError) as info:
        sign_event(event, ROOT)
    assert info.value.code is ReasonCode.PRODUCER_MISMATCH


def test_property_random_events_sign_and_verify() -> None:
    rng = random.Random(7)
    alphabet = "abcdefghijklmnopqrstuvwxyzé€😀 -_'\"\\/\n\t"
    for _ in range(100):
        signer = key(rng.randrange(1, 30))
        reason = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 60)))
        target = rng.choice(["*", "sub:agent-" + str(rng.randrange(99)), "job:" + new_id()])
        raw = event_raw(
            "agent.halted", f"halt:{target}", {"target": target, "reason": reason}, signer
        )
        result = verified(raw)
        assert isinstance(result.body, AgentHalted)
        assert result.body.reason == reason
        assert result.envelope.signer_did == signer.did


def test_property_any_byte_flip_never_verifies_other_content() -> None:
    """A flipped byte is refused, or (outside the signature) leaves the signed content intact."""
    raw = register_raw(ROOT, RUNTIME, ["runtime"], event_id=new_id())
    original = verified(raw)
    rng = random.Random(99)
    still_ok = 0
    for index in range(len(raw)):
        mutated = bytearray(raw)
        mutated[index] ^= 1 << rng.randrange(7)
        result = verify_message(bytes(mutated))
        if isinstance(result, Verified):
            still_ok += 1
            assert result.event == original.event
            assert result.envelope.payload_hash_b64u == original.envelope.payload_hash_b64u
            assert result.envelope.signer_did == original.envelope.signer_did
        else:
            assert isinstance(result, Rejected)
            assert result.code is not ReasonCode.INTERNAL_ERROR, (index, result)
    assert still_ok < 40  # only the unsigned issued_at (and base64 slack) can change


# --- verify_message: each bad input -------------------------------------------------------


def test_verify_message_accepts_a_good_event() -> None:
    raw = signed_raw(payload("agent.halted", OPERATOR), OPERATOR)
    result = verified(raw)
    assert result.event.event_type == "agent.halted"


def test_oversized() -> None:
    raw = signed_raw(payload("agent.halted", OPERATOR), OPERATOR)
    assert rejected(raw, max_bytes=len(raw) - 1).code is ReasonCode.OVERSIZED
    assert isinstance(verify_message(raw, max_bytes=len(raw)), Verified)
    garbage = b"x" * (DEFAULT_MAX_MESSAGE_BYTES + 1)
    assert rejected(garbage).code is ReasonCode.OVERSIZED  # size is checked before parsing


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"not json",
        b'{"a":1,}',
        b"{'a':1}",
        b'{"payload":{},"payload":{}}',  # duplicate keys
        b'{"a":NaN}',
        b'{"a":"\x00"}',  # raw control character in a string
        b"[" * 100_000 + b"]" * 100_000,  # nesting deeper than the parser's recursion limit
    ],
)
def test_malformed_json(raw: bytes) -> None:
    assert rejected(raw).code is ReasonCode.MALFORMED_JSON


@pytest.mark.parametrize(
    "raw", [b'{"a":"\xff"}', b"\xfe\xff{}", b'{"envelope_version":"1\xc3"}', "{}".encode("utf-16")]
)
def test_non_utf8_bytes(raw: bytes) -> None:
    assert rejected(raw).code is ReasonCode.MALFORMED_JSON


@pytest.mark.parametrize("raw", [b"[]", b"[{}]", b'"envelope"', b"42", b"null", b"{}"])
def test_json_that_is_not_an_envelope_object(raw: bytes) -> None:
    assert rejected(raw).code is ReasonCode.MALFORMED_ENVELOPE


@pytest.mark.parametrize(
    "field",
    [
        "envelope_version",
        "payload",
        "payload_hash_b64u",
        "signature_b64u",
        "signer_did",
        "issued_at",
    ],
)
def test_missing_envelope_field(field: str) -> None:
    document = json.loads(signed_raw(payload("agent.halted", OPERATOR), OPERATOR))
    event_id = document["payload"]["event_id"]
    del document[field]
    result = rejected(to_raw(document))
    assert result.code is ReasonCode.MALFORMED_ENVELOPE
    assert field in result.detail
    # best-effort hints for the quarantine row
    if field not in ("payload", "signer_did"):
        assert result.event_id == event_id
        assert result.signer_did == OPERATOR.did


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        *UNKNOWN_VERSIONS_AND_ALGORITHMS,
        ("envelope_type", "gateway_receipt", ReasonCode.UNKNOWN_ENVELOPE_TYPE),
        ("envelope_type", "proof_bundle", ReasonCode.UNKNOWN_ENVELOPE_TYPE),
        ("envelope_type", "Ledger_Event", ReasonCode.UNKNOWN_ENVELOPE_TYPE),
    ],
)
def test_unknown_envelope_values(field: str, value: str, code: ReasonCode) -> None:
    document = json.loads(signed_raw(payload("agent.halted", OPERATOR), OPERATOR))
    document[field] = value
    assert rejected(to_raw(document)).code is code


def test_unknown_envelope_type_even_when_properly_signed() -> None:
    raw = signed_raw(payload("agent.halted", OPERATOR), OPERATOR, envelope_type="gateway_receipt")
    assert rejected(raw).code is ReasonCode.UNKNOWN_ENVELOPE_TYPE


@pytest.mark.parametrize(
    "event_type", ["key.deleted", "", "KEY.REGISTERED", 5, None, "bundle.opened"]
)
def test_unknown_event_type(event_type: Any) -> None:
    document = payload("agent.halted", OPERATOR, event_type=event_type)
    assert rejected(signed_raw(document, OPERATOR)).code is ReasonCode.UNKNOWN_EVENT_TYPE


def test_missing_event_type_is_unknown_event_type() -> None:
    document = payload("agent.halted", OPERATOR)
    del document["event_type"]
    assert rejected(signed_raw(document, OPERATOR)).code is ReasonCode.UNKNOWN_EVENT_TYPE


def _with_body(event_type: str, **changes: Any) -> dict[str, Any]:
    document = payload(event_type, RUNTIME)
    document["body"].update(changes)
    return document


def _without(event_type: str, name: str) -> dict[str, Any]:
    document = payload(event_type, RUNTIME)
    del document["body"][name]
    return document


@pytest.mark.parametrize(
    "document",
    [
        # body does not match its schema
        _without("agent.halted", "reason"),
        _with_body("agent.halted", reason=""),
        _with_body("agent.halted", target="everyone"),
        _with_body("agent.halted", extra="field"),
        _with_body("key.registered", roles=[]),
        _with_body("key.registered", roles=["root"]),
        _with_body("key.registered", name=5),
        _with_body("policy.revoked", policy_hash_b64u="sha256:abc"),
        _with_body("policy.revoked", policy_hash_b64u=H1 + "="),
        _with_body("token.issued", kid="21FE31DFA154A261"),
        _with_body("run.completed", outputs=[{"name": "a"}]),
        _with_body("run.completed", outputs=[{"name": "a", "sha256": "00", "size": 1}]),
        # no type coercion in strict mode
        _with_body("policy.attested", findings_count="1"),
        _with_body("policy.attested", findings_count=1.5),
        _with_body("policy.attested", findings_count=True),
        _with_body("policy.attested", ok="true"),
        _with_body("policy.attested", ok=1),
        _with_body("token.issued", iat="1770854400"),
        _with_body("token.issued", scope="tools:read"),
        _with_body("token.issued", aud=5),
        _with_body("agent.halted", reason=7),
        # the event around the body
        payload("agent.halted", RUNTIME, body=[]),
        payload("agent.halted", RUNTIME, body="x"),
        payload("agent.halted", RUNTIME, event_id="not-a-uuid"),
        payload("agent.halted", RUNTIME, event_id="00000000-0000-4000-8000-00000000000A"),
        payload("agent.halted", RUNTIME, event_id="{00000000-0000-4000-8000-000000000001}"),
        payload("agent.halted", RUNTIME, stream="halt"),
        payload("agent.halted", RUNTIME, stream="halt: *"),
        payload("agent.halted", RUNTIME, occurred_at="yesterday"),
        payload("agent.halted", RUNTIME, occurred_at="2026-02-12 00:00:00Z"),
        # the right shape but no real point in time: these once passed the schema
        # and then made the processor fail on the row, again on every restart
        payload("agent.halted", RUNTIME, occurred_at="2026-02-30T00:00:00Z"),
        payload("agent.halted", RUNTIME, occurred_at="2026-13-45T99:00:00Z"),
        payload("agent.halted", RUNTIME, occurred_at="2026-02-12T00:00:00+99:00"),
        payload("agent.halted", RUNTIME, occurred_at="9999-12-31T23:30:00-01:00"),
        payload("agent.halted", RUNTIME, producer=None),
        payload("agent.halted", RUNTIME, extra="field"),
    ],
)
def test_schema_validation_failed(document: dict[str, Any]) -> None:
    assert rejected(signed_raw(document, RUNTIME)).code is ReasonCode.SCHEMA_VALIDATION_FAILED


def test_missing_event_field_is_schema_failure() -> None:
    for name in ("event_id", "stream", "occurred_at", "producer", "body"):
        document = payload("agent.halted", RUNTIME)
        del document[name]
        assert rejected(signed_raw(document, RUNTIME)).code is ReasonCode.SCHEMA_VALIDATION_FAILED


@pytest.mark.parametrize(
    ("event_type", "stream"),
    [
        ("key.registered", "job:1"),
        ("agent.halted", "job:1"),
        ("run.started", "halt:*"),
        ("token.issued", "tokens:jti-1"),
        ("policy.attested", "openclaw:ws"),
    ],
)
def test_stream_kind_mismatch(event_type: str, stream: str) -> None:
    result = rejected(signed_raw(payload(event_type, RUNTIME, stream=stream), RUNTIME))
    assert result.code is ReasonCode.SCHEMA_VALIDATION_FAILED
    assert "stream" in result.detail


def test_payload_hash_mismatch() -> None:
    document = json.loads(signed_raw(payload("agent.halted", OPERATOR), OPERATOR))
    document["payload"]["body"]["reason"] = "something else"
    assert rejected(to_raw(document)).code is ReasonCode.HASH_MISMATCH


def test_schema_failure_decides_before_hash_mismatch() -> None:
    document = json.loads(signed_raw(payload("agent.halted", OPERATOR), OPERATOR))
    document["payload"]["event_type"] = "agent.unknown"
    assert rejected(to_raw(document)).code is ReasonCode.UNKNOWN_EVENT_TYPE
    document["payload"]["event_type"] = "run.started"  # known type, wrong body
    assert rejected(to_raw(document)).code is ReasonCode.SCHEMA_VALIDATION_FAILED


def test_retyped_event_with_matching_body_is_hash_mismatch() -> None:
    document = json.loads(signed_raw(payload("agent.halted", OPERATOR), OPERATOR))
    document["payload"]["event_type"] = "agent.resumed"  # same body shape
    assert rejected(to_raw(document)).code is ReasonCode.HASH_MISMATCH


def test_bad_signature() -> None:
    document = json.loads(signed_raw(payload("agent.halted", OPERATOR), OPERATOR))
    other = json.loads(signed_raw(payload("agent.halted", OPERATOR), OPERATOR))
    document["signature_b64u"] = other["signature_b64u"]
    assert rejected(to_raw(document)).code is ReasonCode.SIGNATURE_INVALID


def test_signature_by_different_key_than_signer_did() -> None:
    # the payload even names the claimed signer as producer: only the signature is wrong
    document = json.loads(signed_raw(payload("agent.halted", ROOT), OUTSIDER))
    document["signer_did"] = ROOT.did
    result = rejected(to_raw(document))
    assert result.code is ReasonCode.SIGNATURE_INVALID
    assert result.signer_did == ROOT.did


def test_invalid_signer_did() -> None:
    document = json.loads(signed_raw(payload("agent.halted", OPERATOR), OPERATOR))
    document["signer_did"] = "did:key:z6MkNOTAKEY"
    assert rejected(to_raw(document)).code is ReasonCode.INVALID_DID_FORMAT


@pytest.mark.parametrize("where", ["body", "stream_key", "envelope"])
def test_strings_containing_nul_are_refused(where: str) -> None:
    document = payload("agent.halted", OPERATOR)
    if where == "body":
        document["body"]["reason"] = "before\u0000after"
        raw = signed_raw(document, OPERATOR)
    elif where == "stream_key":
        document["body"]["reason\u0000"] = "x"
        raw = signed_raw(document, OPERATOR)
    else:
        envelope = json.loads(signed_raw(document, OPERATOR))
        envelope["issued_at"] = FIXED_TS + "\u0000"
        raw = jcs(envelope)
    assert b"\\u0000" in raw
    result = rejected(raw)
    assert result.code is ReasonCode.SCHEMA_VALIDATION_FAILED
    assert "U+0000" in result.detail
    assert result.event_id == document["event_id"]


def test_literal_backslash_u0000_text_is_not_a_nul() -> None:
    document = payload("agent.halted", OPERATOR)
    document["body"]["reason"] = "regex \\u0000 is documented here"
    assert "\u0000" not in document["body"]["reason"]
    verified(signed_raw(document, OPERATOR))


@pytest.mark.parametrize(
    "changes",
    [
        {"occurred_at": FIXED_TS + "\n"},
        {"stream": "halt:*\n"},
        {
            "event_type": "policy.revoked",
            "stream": f"policy:{H1}",
            "body": {"policy_hash_b64u": H1 + "\n", "reason": "x"},
        },
    ],
)
def test_trailing_newline_is_refused(changes: dict[str, Any]) -> None:
    document = payload("agent.halted", RUNTIME, **changes)
    assert rejected(signed_raw(document, RUNTIME)).code is ReasonCode.SCHEMA_VALIDATION_FAILED


def test_parse_event_payload_directly() -> None:
    event, body = parse_event_payload(payload("agent.halted", OPERATOR))
    assert isinstance(body, AgentHalted)
    assert event.stream == "halt:*"


# --- roles table ------------------------------------------------------------------------------


def test_roles_table_least_privilege() -> None:
    assert roles_allowed_for("key.registered") == {Role.ADMIN}
    assert roles_allowed_for("agent.halted") == {Role.OPERATOR}
    assert roles_allowed_for("token.revoked") == {Role.ISSUER, Role.OPERATOR}
    assert roles_allowed_for("nope") == frozenset()
    assert REGISTRY.types_allowed_for(Role.APPROVER) == frozenset()
    assert REGISTRY.types_allowed_for(Role.ADMIN) == {"key.registered", "key.revoked"}
    every = set().union(*(REGISTRY.types_allowed_for(role) for role in Role))
    assert set(REGISTRY.event_types()) <= every  # some role may publish every event type


# --- decide -----------------------------------------------------------------------------------


def test_trust_root_bootstrap_accepted_once() -> None:
    state = LedgerState(trust_root=ROOT.did)
    result = accept(state, register_raw(ROOT, ROOT, ["admin"]))
    record = state.keys[ROOT.did]
    assert record.roles == {Role.ADMIN}
    assert record.registered_by == ROOT.did
    assert not record.revoked
    (row,) = result.rows
    assert (row.table, row.key_column) == ("keys", "did")
    assert row.values["did"] == ROOT.did and row.values["roles"] == ["admin"]
    # a second self-registration (new event id) is refused
    assert refused(state, register_raw(ROOT, ROOT, ["admin"])) is ReasonCode.KEY_ALREADY_REGISTERED
    assert state.keys[ROOT.did].registered_event_id == result.verified.event.event_id


def test_trust_root_bootstrap_by_another_key_refused() -> None:
    state = LedgerState(trust_root=ROOT.did)
    # another key registering itself
    assert refused(state, register_raw(OUTSIDER, OUTSIDER, ["admin"])) is ReasonCode.UNKNOWN_SIGNER
    # another key registering the trust root
    assert refused(state, register_raw(OUTSIDER, ROOT, ["admin"])) is ReasonCode.UNKNOWN_SIGNER
    # the trust root registering some other key before itself
    assert refused(state, register_raw(ROOT, RUNTIME, ["runtime"])) is ReasonCode.UNKNOWN_SIGNER
    assert state.keys == {}


def test_no_trust_root_configured_means_no_bootstrap() -> None:
    state = LedgerState(trust_root=None)
    assert refused(state, register_raw(ROOT, ROOT, ["admin"])) is ReasonCode.UNKNOWN_SIGNER
    assert state.keys == {}


def test_trust_root_must_hold_admin() -> None:
    state = LedgerState(trust_root=ROOT.did)
    assert refused(state, register_raw(ROOT, ROOT, ["runtime"])) is ReasonCode.ROLE_NOT_ALLOWED
    assert state.keys == {}
    accept(state, register_raw(ROOT, ROOT, ["admin", "operator"]))


def test_admin_registers_keys_and_roles_apply() -> None:
    state = bootstrapped()
    assert state.keys[RUNTIME.did].roles == {Role.RUNTIME}
    assert state.keys[RUNTIME.did].registered_by == ROOT.did
    accept(state, register_raw(ADMIN2, key(20, "new"), ["gateway"]))
    assert state.keys[key(20).did].registered_by == ADMIN2.did


def test_unknown_signer() -> None:
    state = bootstrapped()
    raw = event_raw("agent.halted", "halt:*", {"target": "*", "reason": "x"}, OUTSIDER)
    result = run(state, raw)
    assert isinstance(result, Rejected)
    assert result.code is ReasonCode.UNKNOWN_SIGNER
    assert result.signer_did == OUTSIDER.did
    assert result.event_id == verified(raw).event.event_id


def test_role_not_allowed() -> None:
    state = bootstrapped()
    assert (
        refused(state, register_raw(RUNTIME, key(21), ["runtime"])) is ReasonCode.ROLE_NOT_ALLOWED
    )
    halt = event_raw("agent.halted", "halt:*", {"target": "*", "reason": "x"}, ROOT)
    assert refused(state, halt) is ReasonCode.ROLE_NOT_ALLOWED  # admin manages keys only
    assert key(21).did not in state.keys


def test_producer_not_signer() -> None:
    state = bootstrapped()
    event = build_event(
        "key.registered",
        f"key:{key(22).did}",
        {"did": key(22).did, "name": "x", "roles": ["runtime"]},
        ROOT,
    )
    raw = sign_envelope(EVENT_ENVELOPE_TYPE, event.to_payload(), ADMIN2).to_bytes()
    assert verified(raw).envelope.signer_did == ADMIN2.did  # the envelope itself is fine
    assert refused(state, raw) is ReasonCode.PRODUCER_MISMATCH
    # also decided before the signer registry: an unregistered signer claiming the root
    raw = sign_envelope(EVENT_ENVELOPE_TYPE, event.to_payload(), OUTSIDER).to_bytes()
    assert refused(state, raw) is ReasonCode.PRODUCER_MISMATCH
    assert key(22).did not in state.keys


def test_exact_duplicate_is_a_no_op() -> None:
    state = bootstrapped()
    raw = register_raw(ROOT, key(23), ["runtime"])
    first = accept(state, raw)
    keys_before = dict(state.keys)
    again = run(state, raw, first.verified.envelope.payload_hash_b64u)
    assert again == Duplicate(first.verified.event.event_id)
    assert state.keys == keys_before
    # without the recorded hash it would have been a re-registration
    assert refused(state, raw) is ReasonCode.KEY_ALREADY_REGISTERED


def test_same_event_id_different_content_is_conflict() -> None:
    state = bootstrapped()
    event_id = new_id()
    first = accept(state, register_raw(ROOT, key(24, "a"), ["runtime"], event_id=event_id))
    other = register_raw(ROOT, key(25, "b"), ["runtime"], event_id=event_id)
    result = run(state, other, first.verified.envelope.payload_hash_b64u)
    assert isinstance(result, Rejected)
    assert result.code is ReasonCode.DUPLICATE_EVENT_CONFLICT
    assert result.event_id == event_id
    assert result.signer_did == ROOT.did
    assert key(25).did not in state.keys


def test_duplicate_check_comes_before_signer_check() -> None:
    state = bootstrapped()
    raw = event_raw("agent.halted", "halt:*", {"target": "*", "reason": "x"}, OUTSIDER)
    v = verified(raw)
    settings = RuleSettings()
    assert decide(state, v, v.envelope.payload_hash_b64u, settings) == Duplicate(v.event.event_id)
    conflict = decide(state, v, H1, settings)
    assert isinstance(conflict, Rejected)
    assert conflict.code is ReasonCode.DUPLICATE_EVENT_CONFLICT


def test_revocation_refuses_later_events() -> None:
    state = bootstrapped()
    accept(state, register_raw(ADMIN2, key(26), ["runtime"]))  # ADMIN2 works before
    accept(state, revoke_raw(ROOT, ADMIN2))
    assert state.keys[ADMIN2.did].revoked
    assert state.keys[ADMIN2.did].revoked_reason == "compromised"
    assert refused(state, register_raw(ADMIN2, key(27), ["runtime"])) is ReasonCode.SIGNER_REVOKED
    assert key(27).did not in state.keys
    # revoked twice, re-registered, or an unknown key revoked
    assert refused(state, revoke_raw(ROOT, ADMIN2)) is ReasonCode.SIGNER_REVOKED
    assert (
        refused(state, register_raw(ROOT, ADMIN2, ["admin"])) is ReasonCode.KEY_ALREADY_REGISTERED
    )
    assert refused(state, revoke_raw(ROOT, key(28))) is ReasonCode.UNKNOWN_SIGNER


def test_trust_root_cannot_be_revoked() -> None:
    state = bootstrapped()
    assert refused(state, revoke_raw(ADMIN2, ROOT)) is ReasonCode.ROLE_NOT_ALLOWED
    assert not state.keys[ROOT.did].revoked


def test_key_event_stream_must_name_the_key() -> None:
    state = bootstrapped()
    body = {"did": key(29).did, "name": "x", "roles": ["runtime"]}
    raw = event_raw("key.registered", f"key:{key(30).did}", body, ROOT)
    assert refused(state, raw) is ReasonCode.SCHEMA_VALIDATION_FAILED


def test_registering_an_invalid_did() -> None:
    state = bootstrapped()
    did = "did:key:z6MkNOTAKEY"
    raw = event_raw(
        "key.registered", f"key:{did}", {"did": did, "name": "x", "roles": ["runtime"]}, ROOT
    )
    assert refused(state, raw) is ReasonCode.INVALID_DID_FORMAT


def test_same_key_cannot_be_registered_under_a_second_did() -> None:
    state = bootstrapped()
    did = RUNTIME.did + "\n"
    # the event schema (the same parse the processor runs) refuses the stream already
    with pytest.raises(EventError) as info:
        event_raw(
            "key.registered", f"key:{did}", {"did": did, "name": "x", "roles": ["admin"]}, ROOT
        )
    assert info.value.code is ReasonCode.SCHEMA_VALIDATION_FAILED
    assert RUNTIME.did in state.keys


def test_rule_bug_quarantines_instead_of_raising(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(ctx: Any, expected: str) -> None:
        raise KeyError("bug")

    # a helper the agent.halted rule calls, so that the rule itself fails
    monkeypatch.setattr(halts, "require_stream", boom)
    state = bootstrapped()
    raw = event_raw("agent.halted", "halt:*", {"target": "*", "reason": "x"}, OPERATOR)
    result = run(state, raw)
    assert isinstance(result, Rejected)
    assert result.code is ReasonCode.INTERNAL_ERROR
    assert "KeyError" in result.detail
