"""Ledger events: building and signing them, and verify_message (steps 1-3 of the
processor's pure pipeline) on each bad input. decide (steps 4-6) is tested in
``test_events_decide.py``."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from ledger.canonical import jcs
from ledger.encoding import sha256_b64u
from ledger.errors import EventError, ReasonCode
from ledger.events import (
    EVENT_ENVELOPE_TYPE,
    LedgerEvent,
    NewEvent,
    build_event,
    parse_event_payload,
    sign_event,
    sign_events_bytes,
)
from ledger.roles import Role
from ledger.types import REGISTRY
from ledger.types.halts import AgentHalted
from ledger.types.keys import KeyRegistered
from ledger.verify import DEFAULT_MAX_MESSAGE_BYTES, Rejected, Verified, verify_message

from ._events_support import (
    H1,
    OPERATOR,
    OUTSIDER,
    ROOT,
    RUNTIME,
    SAMPLES,
    event_raw,
    new_id,
    payload,
    register_raw,
    rejected,
    signed_raw,
    verified,
)
from ._helpers import FIXED_TS, UNKNOWN_VERSIONS_AND_ALGORITHMS, key, to_raw

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


@pytest.mark.parametrize("body", [None, [1], "text", 5], ids=repr)
def test_a_body_that_is_not_an_object_is_a_schema_error(body: Any) -> None:
    """Not a TypeError from deep inside: the SDK's one error tree, one reason code."""
    for make in (
        lambda: build_event("agent.halted", "halt:job:1", body, ROOT),
        lambda: sign_events_bytes(ROOT, [NewEvent("agent.halted", "halt:job:1", body)]),
    ):
        with pytest.raises(EventError) as info:
            make()
        assert info.value.code is ReasonCode.SCHEMA_VALIDATION_FAILED
        assert info.value.detail == f"body: a JSON object is expected, not {type(body).__name__}"


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


def _halts_with(name: str, *values: Any) -> list[dict[str, Any]]:
    """An ``agent.halted`` payload for each of ``values``, its event field ``name`` set to it."""
    return [payload("agent.halted", RUNTIME, **{name: value}) for value in values]


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
        *_halts_with("body", [], "x"),
        *_halts_with(
            "event_id",
            "not-a-uuid",
            "00000000-0000-4000-8000-00000000000A",
            "{00000000-0000-4000-8000-000000000001}",
        ),
        *_halts_with("stream", "halt", "halt: *"),
        *_halts_with("occurred_at", "yesterday", "2026-02-12 00:00:00Z"),
        # the right shape but no real point in time: these once passed the schema
        # and then made the processor fail on the row, again on every restart
        *_halts_with(
            "occurred_at",
            "2026-02-30T00:00:00Z",
            "2026-13-45T99:00:00Z",
            "2026-02-12T00:00:00+99:00",
            "9999-12-31T23:30:00-01:00",
        ),
        *_halts_with("producer", None),
        *_halts_with("extra", "field"),
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
