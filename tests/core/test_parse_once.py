"""A message is parsed once: bodies are validated from the parsed JSON (with the
semantics of strict JSON validation), and the payload bytes that were hashed are
the ones kept for storage."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

import ledger.envelope
from ledger.canonical import compact_json, parse_json_strict
from ledger.encoding import b64u_encode, sha256_b64u
from ledger.errors import EventError, ReasonCode
from ledger.events import EVENT_ENVELOPE_TYPE, parse_event_payload
from ledger.registry import EventBody
from ledger.types import REGISTRY
from ledger.verify import Rejected, Verified, verify_message

from ._events_support import SAMPLES
from ._helpers import FIXED_TS, key

SIGNER = key(5, "runtime")
H = sha256_b64u(b"urm")

# --- bodies: strict JSON semantics without a JSON round trip -------------------------------

#: JSON values that probe every coercion strict JSON validation refuses (or allows)
PROBES: list[Any] = [
    None,
    True,
    0,
    1,
    -1,
    1.0,
    2.5,
    2**64,
    "",
    "1",
    "admin",
    "x" * 3000,
    "a\u2028b",
    [],
    ["admin"],
    ["a", "b"],
    [1],
    [None],
    [{"name": "a", "sha256": "00"}],
    [{"name": "a", "sha256": "00", "x": 1}],
    [{"name": 1, "sha256": "00"}],
    {},
    {"urm_version": "1"},
]


def _outcome(validate: Any) -> tuple[str, Any]:
    try:
        body = validate()
    except ValueError:  # pydantic's ValidationError
        return ("refused", None)
    assert isinstance(body, EventBody)
    return ("accepted", body.model_dump(mode="json"))


def _cases() -> list[tuple[str, dict[str, Any]]]:
    cases = []
    for event_type in REGISTRY.event_types():
        base = SAMPLES[event_type][1]
        cases.append((event_type, base))
        cases.append((event_type, {**base, "unexpected": 1}))
        for name in REGISTRY[event_type].body.model_fields:
            cases.append((event_type, {k: v for k, v in base.items() if k != name}))
            cases.extend((event_type, {**base, name: probe}) for probe in PROBES)
    return cases


def test_parsed_json_is_validated_as_strict_json_validation_would() -> None:
    accepted = 0
    for event_type, body in _cases():
        model = REGISTRY[event_type].body
        text = json.dumps(body)
        oracle = _outcome(lambda m=model, t=text: m.model_validate_json(t))
        parsed = parse_json_strict(text.encode())
        subject = _outcome(lambda m=model, p=parsed: m.model_validate(p))
        assert subject == oracle, (event_type, body)
        accepted += oracle[0] == "accepted"
    assert accepted > 100  # the probes are accepted often enough to compare values too


def test_arrays_fill_tuples_and_strings_fill_enums() -> None:
    payload: dict[str, Any] = {
        "event_type": "key.registered",
        "event_id": "00000000-0000-4000-8000-000000000001",
        "stream": f"key:{SIGNER.did}",
        "occurred_at": FIXED_TS,
        "producer": SIGNER.did,
        "body": {"did": SIGNER.did, "name": "rt", "roles": ["runtime", "approver"]},
    }
    event, body = parse_event_payload(payload)
    assert body.roles == ("runtime", "approver")  # type: ignore[attr-defined]
    assert type(body.roles) is tuple  # type: ignore[attr-defined]
    assert event.body == payload["body"]
    for bad in (["root"], "runtime", [["runtime"]], []):
        broken = copy.deepcopy(payload)
        broken["body"]["roles"] = bad
        with pytest.raises(EventError) as info:
            parse_event_payload(broken)
        assert info.value.code is ReasonCode.SCHEMA_VALIDATION_FAILED


# --- the payload bytes: hashed once, kept as hashed ---------------------------------------


def _payload_text(urm_text: str) -> str:
    """A ``run.manifest_approved`` payload as JSON text, not in JCS order, with this URM."""
    return (
        '{"producer":"' + SIGNER.did + '","event_type":"run.manifest_approved","stream":"job:j1",'
        '"event_id":"00000000-0000-4000-8000-000000000002","occurred_at":"' + FIXED_TS + '",'
        '"body":{"urm":' + urm_text + ',"job_id":"j1","urm_hash_b64u":"' + H + '",'
        '"approvals":[]}}'
    )


def _raw(received: str, hashed: str) -> bytes:
    """Wire bytes carrying the URM as ``received``, signed over the payload with ``hashed``.

    The hash is computed here from the literal text, not by the code under test.
    """
    digest = sha256_b64u(_payload_text(hashed).encode())
    signature = b64u_encode(SIGNER.sign(digest.encode()))
    return (
        '{"envelope_version":"1","envelope_type":"ledger_event","payload":'
        + _payload_text(received)
        + ',"payload_hash_b64u":"'
        + digest
        + '","hash_algorithm":"SHA-256",'
        '"signature_b64u":"' + signature + '","algorithm":"Ed25519",'
        '"signer_did":"' + SIGNER.did + '","issued_at":"' + FIXED_TS + '"}'
    ).encode()


#: JSON text of a URM as received → what JSON.stringify prints for it
STRINGIFY_CASES = [
    ('{"z":1,"a":2}', '{"z":1,"a":2}'),
    ('{"n":1e21,"m":1E-7,"k":0.1,"j":100.0,"i":-0.0,"h":5e-324}',
     '{"n":1e+21,"m":1e-7,"k":0.1,"j":100,"i":0,"h":5e-324}'),
    ('{"i":9007199254740991,"j":-9007199254740991}',
     '{"i":9007199254740991,"j":-9007199254740991}'),
    ('{"s":"\\u00e9\\u20ac\\ud83d\\ude00","e":"é"}', '{"s":"é€😀","e":"é"}'),
    ('{"q":"\\"\\\\\\/\\b\\f\\n\\r\\t","c":"\\u0001\\u001f\\u007f"}',
     '{"q":"\\"\\\\/\\b\\f\\n\\r\\t","c":"\\u0001\\u001f\x7f"}'),
    ('{"l":"\\u2028\\u2029","t":"</script>"}', '{"l":"\u2028\u2029","t":"</script>"}'),
    ('{"nested":{"b":[1,{"y":true,"x":null}],"a":[]}}',
     '{"nested":{"b":[1,{"y":true,"x":null}],"a":[]}}'),
]  # fmt: skip


@pytest.mark.parametrize(("received", "stringified"), STRINGIFY_CASES)
def test_stored_payload_bytes_are_json_stringify_in_document_order(
    received: str, stringified: str
) -> None:
    result = verify_message(_raw(received, stringified))
    assert isinstance(result, Verified), result
    assert result.payload_json == _payload_text(stringified).encode()
    assert sha256_b64u(result.payload_json) == result.envelope.payload_hash_b64u
    assert result.event.body["urm"] == parse_json_strict(received.encode())
    # hashed over the text as received (or in another form) it does not verify
    if received != stringified:
        refused = verify_message(_raw(received, received))
        assert isinstance(refused, Rejected) and refused.code is ReasonCode.HASH_MISMATCH


def test_unsafe_integer_is_refused_at_the_hash_step() -> None:
    # the body schema takes any URM; JavaScript cannot hold 2**53 + 2 exactly
    text = '{"i":9007199254740993}'
    result = verify_message(_raw(text, text))
    assert isinstance(result, Rejected)
    assert result.code is ReasonCode.MALFORMED_ENVELOPE


def test_payload_is_serialised_once_and_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    produced: list[bytes] = []

    def counting(value: Any, *, plain_numbers: bool = False) -> bytes:
        produced.append(compact_json(value, plain_numbers=plain_numbers))
        return produced[-1]

    monkeypatch.setattr(ledger.envelope, "compact_json", counting)
    monkeypatch.setattr(
        EventBody, "model_validate_json", classmethod(lambda *a, **k: pytest.fail("re-parsed"))
    )
    text = '{"z":1,"a":[0.5]}'
    result = verify_message(_raw(text, text))
    assert isinstance(result, Verified), result
    assert len(produced) == 1
    assert result.payload_json is produced[0]
    assert result.envelope.envelope_type == EVENT_ENVELOPE_TYPE
