"""The signing side's fast canonical encoder, pinned byte for byte to ``rfc8785``.

:func:`ledger.canonical.jcs_ordered` takes the standard library's C encoder for
plain values and hands everything else to the reference canonicaliser; these
properties hold it to the reference on generated values, and the signing path
to the verifier on generated events.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import rfc8785
from hypothesis import example, given
from hypothesis import strategies as st

from ledger import canonical
from ledger.canonical import (
    MAX_SAFE_INTEGER,
    compact_json,
    jcs,
    jcs_ordered,
    plain_jcs,
    plain_jcs_bytes,
)
from ledger.crypto import KeyPair
from ledger.encoding import sha256_b64u
from ledger.envelope import sign_envelope, verify_envelope
from ledger.events import build_event, sign_event
from ledger.javascript import js_property_order
from ledger.verify import Verified, verify_message
from tests.core._canonical_support import (
    PROPERTY,
    any_ints,
    json_values,
    key_order,
    odd_values,
    outcome,
    plain_objects,
    plain_values,
    safe_ints,
    verifiable_text,
    wire_payload,
    with_surrogates,
)


def fast_bytes(value: Any) -> bytes:
    return jcs_ordered(value)[1]


# --- plain values take the fast path and match the reference ------------------------


@PROPERTY
@given(plain_values)
@example({"\ue000": 1, "\U0001f600": 2, "a": 3})
@example({"\uffff": [], "\U00010000": {}, "\u2028\u2029\x7f": "\x00\x1f\b"})
@example([MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER, 0, True, False, None])
def test_plain_values_encode_to_the_reference_bytes(value: Any) -> None:
    ordered, data = jcs_ordered(value)
    assert data == rfc8785.dumps(value)
    javascript = js_property_order(ordered)
    if key_order(javascript) == key_order(ordered):
        # the ordered copy's document order is the canonical order: the verifier's
        # JSON.stringify hash of it is the hash of the canonical bytes
        assert compact_json(ordered) == data
    else:
        # an array-index key: JSON.stringify lists it first, whatever the order given
        assert compact_json(ordered) == compact_json(javascript)
        assert key_order(json.loads(compact_json(ordered))) == key_order(javascript)
    assert json.loads(data) == ordered


@PROPERTY
@given(plain_objects)
def test_plain_values_never_reach_the_reference_canonicaliser(
    value: dict[str, Any],
) -> None:
    original = canonical.jcs
    calls: list[Any] = []

    def spy(value: Any) -> bytes:
        calls.append(value)
        return original(value)

    canonical.jcs = spy
    try:
        jcs_ordered(value)
    finally:
        canonical.jcs = original
    assert calls == []


def test_astral_keys_sort_before_private_use_keys_by_utf16_code_units() -> None:
    # code points put U+E000 first; UTF-16 code units put the surrogate pair D83D first
    value = {"\ue000": 1, "\U0001f600": 2, "z": 3}
    ordered, data = jcs_ordered(value)
    assert list(ordered) == ["z", "\U0001f600", "\ue000"]
    assert data == '{"z":3,"\U0001f600":2,"\ue000":1}'.encode()
    assert data == rfc8785.dumps(value)


def test_escapes_match_ecmascript() -> None:
    value = {"s": '\x00\x08\t\n\x0c\r\x1f"\\/\x7f\u2028\u2029'}
    assert fast_bytes(value) == b'{"s":"\\u0000\\b\\t\\n\\f\\r\\u001f\\"\\\\/\x7f' + (
        "\u2028\u2029".encode() + b'"}'
    )
    assert fast_bytes(value) == rfc8785.dumps(value)


flat_objects = st.dictionaries(
    with_surrogates,
    st.one_of(st.none(), st.booleans(), any_ints, with_surrogates, st.floats(), st.just([])),
    max_size=8,
)


@PROPERTY
@given(st.one_of(flat_objects, odd_values, plain_values))
@example({"\ue000": 1, "\U0001f600": 2})
@example({"n": MAX_SAFE_INTEGER + 1, "s": "x"})
@example({"b": True, "n": -MAX_SAFE_INTEGER, "z": None})
@example({"s": "\udc00"})
def test_bytes_only_form_is_the_fast_form_or_nothing(value: Any) -> None:
    fast = plain_jcs(value)
    data = plain_jcs_bytes(value)
    assert data == (None if fast is None else fast[1])
    if data is not None:
        assert data == rfc8785.dumps(value)


# --- anything else: the reference decides, identically --------------------------------


@PROPERTY
@given(odd_values)
@example(MAX_SAFE_INTEGER + 1)
@example(-MAX_SAFE_INTEGER - 1)
@example({"k": [2**53]})
@example({"\ud800": 1, "a": 2})
@example({"a": "\udfff"})
@example({1: "int key"})
@example({"f": 1.0, "g": 1e21, "h": 5e-7, "i": -0.0})
@example((1, [2, (3,)]))
def test_other_values_behave_exactly_as_the_reference(value: Any) -> None:
    assert outcome(fast_bytes, value) == outcome(rfc8785.dumps, value)


@pytest.mark.parametrize(
    "value",
    [
        {"n": MAX_SAFE_INTEGER + 1},
        {"n": -(2**53)},
        {"s": "\ud83d"},
        {"\udc00": "lone key"},
        {1: "x"},
        {"f": float("nan")},
    ],
)
def test_values_the_reference_refuses_are_refused(value: Any) -> None:
    kind, raised = outcome(fast_bytes, value)
    assert kind == "raised"
    assert (kind, raised) == outcome(rfc8785.dumps, value)


def test_floats_fall_back_to_the_reference_form() -> None:
    value = {"a": 1e21, "b": 1.5, "c": 1e-7, "d": 2.0}
    ordered, data = jcs_ordered(value)
    assert data == b'{"a":1e+21,"b":1.5,"c":1e-7,"d":2}' == jcs(value)
    assert compact_json(ordered) == data


def test_deep_nesting_behaves_as_the_reference() -> None:
    value: Any = "leaf"
    for _ in range(5000):
        value = [value]
    assert outcome(fast_bytes, value) == outcome(rfc8785.dumps, value)


# --- what the SDK signs, the verifier accepts ---------------------------------------

KEY = KeyPair.from_seed(bytes(range(32)), "runtime")
verifiable_values = json_values(safe_ints, verifiable_text)


@st.composite
def events(draw: st.DrawFn) -> tuple[str, str, dict[str, Any]]:
    if draw(st.booleans()):
        job = draw(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1))
        body: dict[str, Any] = {
            "job_id": job,
            "urm_hash_b64u": "A" * 43,
            "urm": draw(st.dictionaries(verifiable_text, verifiable_values, max_size=6)),
            "approvals": draw(
                st.lists(st.dictionaries(verifiable_text, verifiable_values, max_size=3))
            ),
        }
        return "run.manifest_approved", f"job:{job}", body
    body = {
        "ok": draw(st.booleans()),
        "policy_hash": draw(st.none() | verifiable_text),
        "workspace_hash": draw(verifiable_text),
        "findings_hash": draw(verifiable_text),
        "attestation_hash": draw(verifiable_text),
        "checked_at": draw(verifiable_text),
        "policy_path": draw(verifiable_text),
        "findings_count": draw(safe_ints),
    }
    return "policy.attested", "openclaw-policy:ws-1", body


@PROPERTY
@given(events())
def test_signed_events_verify_and_their_hash_is_the_jcs_hash(
    drawn: tuple[str, str, dict[str, Any]],
) -> None:
    event_type, stream, body = drawn
    event = build_event(event_type, stream, body, KEY)
    envelope = sign_event(event, KEY)
    raw = envelope.to_bytes()
    verified = verify_message(raw)
    assert isinstance(verified, Verified), verified
    canonical = json.loads(rfc8785.dumps(event.to_payload()))
    if key_order(js_property_order(canonical)) == key_order(canonical):
        # the wire bytes are the reference canonical form of the whole envelope
        assert raw == rfc8785.dumps(json.loads(raw))
        reference_hash = sha256_b64u(rfc8785.dumps(event.to_payload()))
    else:
        # an array-index key: the payload is written and hashed in JSON.stringify's order
        assert key_order(json.loads(wire_payload(raw))) == key_order(js_property_order(canonical))
        reference_hash = sha256_b64u(wire_payload(raw))
    assert verified.envelope.payload_hash_b64u == reference_hash == envelope.payload_hash_b64u
    assert verified.event == event
    assert envelope.payload_jcs is not None  # the fast path signed it


@PROPERTY
@given(
    st.dictionaries(
        verifiable_text,
        json_values(safe_ints, verifiable_text, st.floats(allow_nan=False, allow_infinity=False)),
        max_size=6,
    )
)
def test_envelopes_with_floats_still_verify(payload: dict[str, Any]) -> None:
    try:
        envelope = sign_envelope("wpc", payload, KEY, issued_at="2026-02-12T00:00:00.000Z")
    except ValueError:
        # a float that canonicalises to an integer beyond 2**53 would verify as
        # another number: refused at signing, as it always was
        with pytest.raises(ValueError):
            compact_json(json.loads(jcs(payload)))
        return
    raw = envelope.to_bytes()
    verified = verify_envelope(json.loads(raw))
    canonical = json.loads(jcs(payload))
    if key_order(js_property_order(canonical)) == key_order(canonical):
        assert raw == rfc8785.dumps(json.loads(raw))
        assert verified.payload_hash_b64u == sha256_b64u(jcs(payload))
    else:
        assert key_order(json.loads(wire_payload(raw))) == key_order(js_property_order(canonical))
        assert verified.payload_hash_b64u == sha256_b64u(wire_payload(raw))


def test_a_float_javascript_cannot_hold_is_refused_at_signing() -> None:
    with pytest.raises(ValueError, match="safe range"):
        sign_envelope("wpc", {"n": 2.0**53}, KEY)
