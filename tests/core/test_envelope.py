"""The clawsig v1 envelope (formats.md §2): signing, the numbered verify steps and their order."""

from __future__ import annotations

import copy
import hashlib
import json
import random
import string
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.signing import VerifyKey

from ledger.bundles import verify_proof_bundle
from ledger.canonical import compact_json, jcs, parse_json_strict
from ledger.crypto import KeyPair
from ledger.encoding import b64u_decode, b64u_encode, sha256_b64u
from ledger.envelope import (
    ENVELOPE_FIELDS,
    format_timestamp,
    payload_hash_b64u,
    sign_envelope,
    signing_bytes,
    verify_envelope,
)
from ledger.errors import EnvelopeError, ReasonCode
from ledger.events import build_event
from ledger.receipts import verify_receipt_envelope
from ledger.verify import Verified, verify_message

from ._helpers import (
    GOLDEN,
    RFC8032_TEST1_DID,
    RFC8032_TEST1_SEED,
    UNKNOWN_VERSIONS_AND_ALGORITHMS,
    bundle_pass,
    envelope_dict,
    example_key_registered,
    key,
    sign_document_order,
)

GOLDEN_ENVELOPE = GOLDEN / "ledger_event_envelope.rfc8032-test1.key_registered.jcs.json"

PAYLOAD = {"kind": "note", "n": 1, "nested": {"b": [1, 2, 3], "a": "é"}}


def _code(document: Any, schemas: Mapping[str, Callable[..., None]] | None = None) -> ReasonCode:
    with pytest.raises(EnvelopeError) as info:
        verify_envelope(document, schemas)
    return info.value.code


def _good() -> dict[str, Any]:
    return envelope_dict(PAYLOAD, key(1), envelope_type="note")


def _other_signature() -> str:
    signature: str = envelope_dict({"other": True}, key(1), envelope_type="note")["signature_b64u"]
    return signature


# --- the proof-bundle pass vector ----------------------------------------------------------


def test_proof_bundle_pass_vector_envelope_verifies() -> None:
    document = bundle_pass()
    envelope = verify_envelope(document)
    assert envelope.envelope_type == "proof_bundle"
    assert envelope.signer_did == document["payload"]["agent_did"]
    assert envelope.payload_hash_b64u == "HZYtCYB_iGtYBqnwGdf6Dts41qMLYil_AjLKHLJ7Lyk"


def test_proof_bundle_pass_vector_nested_receipt_verifies() -> None:
    document = bundle_pass()
    (receipt,) = document["payload"]["receipts"]
    envelope = verify_receipt_envelope(receipt)
    assert envelope.envelope_type == "gateway_receipt"
    assert envelope.signer_did == "did:key:z6MkfF4ykuxdK3Cea9xDqWgLLgMBvxcypy6Tv1K45Eahxy3m"
    assert verify_envelope(receipt).payload_hash_b64u == receipt["payload_hash_b64u"]


def test_proof_bundle_pass_vector_full_verification() -> None:
    summary = verify_proof_bundle(bundle_pass()).summary()
    assert summary["status"] == "PASS"
    assert summary["reason_code"] == "OK"
    assert summary["run_id"] == "run_conformance_001"
    assert (summary["event_count"], summary["receipt_count"]) == (1, 1)


def test_proof_bundle_pass_vector_is_hashed_in_document_order() -> None:
    document = bundle_pass()
    payload = document["payload"]
    # the vector is not in JCS order, so only the document-order hash matches it
    assert compact_json(payload) != jcs(payload)
    assert payload_hash_b64u(payload) == document["payload_hash_b64u"]
    assert sha256_b64u(jcs(payload)) != document["payload_hash_b64u"]
    # re-sorting the payload (what a jsonb round trip does) breaks verification
    resorted = dict(document, payload=json.loads(jcs(payload)))
    assert _code(resorted) is ReasonCode.HASH_MISMATCH


def test_proof_bundle_pass_vector_tampered_receipt_fails() -> None:
    document = bundle_pass()
    receipt = document["payload"]["receipts"][0]
    receipt["payload"]["tokens_output"] = 21
    assert _code(receipt) is ReasonCode.HASH_MISMATCH


# --- golden envelope -------------------------------------------------------------------------


def _golden_envelope_bytes() -> bytes:
    pair = KeyPair.from_seed(RFC8032_TEST1_SEED, "root")
    return example_key_registered(1, pair, "root", ["admin"], pair).to_bytes()


def test_golden_envelope_bytes_are_stable() -> None:
    assert _golden_envelope_bytes() == GOLDEN_ENVELOPE.read_bytes()


def test_golden_envelope_checked_independently() -> None:
    raw = GOLDEN_ENVELOPE.read_bytes()
    document = json.loads(raw)
    assert list(document) == sorted(document)  # JCS order on the wire
    assert document["signer_did"] == RFC8032_TEST1_DID
    # hash over the exact payload bytes as they appear on the wire
    start = raw.index(b'"payload":') + len(b'"payload":')
    end = raw.index(b',"payload_hash_b64u"')
    payload_bytes = raw[start:end]
    digest = b64u_encode(hashlib.sha256(payload_bytes).digest())
    assert digest == document["payload_hash_b64u"]
    # signature over the UTF-8 of the hash string, by the RFC 8032 test 1 public key
    public = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    VerifyKey(public).verify(digest.encode("utf-8"), b64u_decode(document["signature_b64u"]))
    result = verify_message(raw)
    assert isinstance(result, Verified)
    assert result.envelope_sha256 == sha256_b64u(raw)


# --- signing ---------------------------------------------------------------------------------


def test_sign_envelope_fields_and_jcs_payload_order() -> None:
    envelope = sign_envelope("note", {"z": 1, "a": {"y": 2, "b": 3}}, key(1), issued_at="t")
    document = envelope.to_dict()
    assert tuple(document) == ENVELOPE_FIELDS
    assert list(envelope.payload) == ["a", "z"]
    assert list(envelope.payload["a"]) == ["b", "y"]
    assert document["envelope_version"] == "1"
    assert document["hash_algorithm"] == "SHA-256"
    assert document["algorithm"] == "Ed25519"
    assert document["issued_at"] == "t"
    assert envelope.payload_hash_b64u == sha256_b64u(b'{"a":{"b":3,"y":2},"z":1}')
    assert signing_bytes(envelope.payload_hash_b64u) == envelope.payload_hash_b64u.encode()
    assert key(1).sign(signing_bytes(envelope.payload_hash_b64u)) == b64u_decode(
        envelope.signature_b64u
    )


def test_sign_envelope_default_issued_at_is_rfc3339_ms() -> None:
    issued = sign_envelope("note", {}, key(1)).issued_at
    assert len(issued) == 24 and issued.endswith("Z") and issued[19] == "."


def test_format_timestamp() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    moment = datetime(2026, 2, 12, 1, 2, 3, 456789, tzinfo=UTC)
    assert format_timestamp(moment) == "2026-02-12T01:02:03.456Z"
    local = moment.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert format_timestamp(local) == "2026-02-12T01:02:03.456Z"


def test_signed_envelope_round_trip_through_wire_bytes() -> None:
    envelope = sign_envelope("note", PAYLOAD, key(2), issued_at="2026-02-12T00:00:00.000Z")
    again = verify_envelope(parse_json_strict(envelope.to_bytes()))
    assert again == envelope


def test_property_random_payloads_sign_and_verify() -> None:
    rng = random.Random(2026)

    def value(depth: int) -> Any:
        choice = rng.randrange(7 if depth < 3 else 4)
        if choice == 0:
            return rng.randint(-(2**53) + 1, 2**53 - 1)
        if choice == 1:
            return "".join(rng.choice(string.printable + "éü€😀") for _ in range(rng.randrange(12)))
        if choice == 2:
            return rng.choice([True, False, None])
        if choice == 3:
            return rng.randint(-1000, 1000) / 8  # exactly representable floats
        if choice == 4:
            return [value(depth + 1) for _ in range(rng.randrange(4))]
        return {
            "".join(rng.choice(string.ascii_letters + "é😀") for _ in range(rng.randrange(1, 6))): (
                value(depth + 1)
            )
            for _ in range(rng.randrange(5))
        }

    for i in range(150):
        payload = {f"k{j}": value(0) for j in range(rng.randrange(1, 6))}
        signer = key(1 + i % 7)
        envelope = sign_envelope("note", payload, signer, issued_at="t")
        verified = verify_envelope(parse_json_strict(envelope.to_bytes()))
        assert verified.signer_did == signer.did
        assert verified.payload == payload
        # what a JSON.stringify verifier computes agrees with JCS for our own payloads
        assert payload_hash_b64u(envelope.payload) == sha256_b64u(jcs(payload))


def test_property_flipping_any_signature_byte_is_signature_invalid() -> None:
    document = _good()
    signature = b64u_decode(document["signature_b64u"])
    rng = random.Random(64)
    for index in range(64):
        flipped = bytearray(signature)
        flipped[index] ^= 1 << rng.randrange(8)
        broken = dict(document, signature_b64u=b64u_encode(bytes(flipped)))
        assert _code(broken) is ReasonCode.SIGNATURE_INVALID, index


def test_property_changing_any_payload_value_is_hash_mismatch() -> None:
    document = envelope_dict({f"f{i}": i for i in range(20)}, key(3), envelope_type="note")
    for name in document["payload"]:
        broken = copy.deepcopy(document)
        broken["payload"][name] += 1
        assert _code(broken) is ReasonCode.HASH_MISMATCH


# --- each step alone -------------------------------------------------------------------------


def test_good_envelope_verifies() -> None:
    envelope = verify_envelope(_good())
    assert envelope.signer_did == key(1).did
    assert envelope.payload == PAYLOAD


@pytest.mark.parametrize("field", ENVELOPE_FIELDS)
def test_step1_each_missing_field_is_malformed(field: str) -> None:
    document = _good()
    del document[field]
    assert _code(document) is ReasonCode.MALFORMED_ENVELOPE


@pytest.mark.parametrize("field", [f for f in ENVELOPE_FIELDS if f != "payload"])
@pytest.mark.parametrize("bad", [None, 1, ["1"], {"v": "1"}])
def test_step1_non_string_field_is_malformed(field: str, bad: Any) -> None:
    document = _good()
    document[field] = bad
    assert _code(document) is ReasonCode.MALFORMED_ENVELOPE


@pytest.mark.parametrize("payload", [None, "text", [1, 2], 3])
def test_step1_payload_not_object_is_malformed(payload: Any) -> None:
    assert _code(dict(_good(), payload=payload)) is ReasonCode.MALFORMED_ENVELOPE


@pytest.mark.parametrize("document", [None, [], "envelope", 1])
def test_step1_document_not_object_is_malformed(document: Any) -> None:
    assert _code(document) is ReasonCode.MALFORMED_ENVELOPE


@pytest.mark.parametrize(("field", "value", "code"), UNKNOWN_VERSIONS_AND_ALGORITHMS)
def test_step2_unknown_versions_and_algorithms(field: str, value: str, code: ReasonCode) -> None:
    assert _code(dict(_good(), **{field: value})) is code


def _refuse_all(payload: Mapping[str, Any]) -> None:
    raise ValueError("schema says no")


def _accept_all(payload: Mapping[str, Any]) -> None:
    return None


def test_step3_schema_failure() -> None:
    assert _code(_good(), {"note": _refuse_all}) is ReasonCode.SCHEMA_VALIDATION_FAILED
    assert verify_envelope(_good(), {"note": _accept_all}).envelope_type == "note"


def test_step3_unknown_envelope_type_when_schemas_given() -> None:
    assert _code(_good(), {"other": _accept_all}) is ReasonCode.UNKNOWN_ENVELOPE_TYPE


def test_step3_expected_type_mismatch() -> None:
    with pytest.raises(EnvelopeError) as info:
        verify_envelope(_good(), expected_type="gateway_receipt")
    assert info.value.code is ReasonCode.SCHEMA_VALIDATION_FAILED


def test_step4_hash_mismatch() -> None:
    document = _good()
    document["payload"]["n"] = 2
    assert _code(document) is ReasonCode.HASH_MISMATCH
    document = _good()
    document["payload_hash_b64u"] = sha256_b64u(b"something else")
    assert _code(document) is ReasonCode.HASH_MISMATCH


@pytest.mark.parametrize(
    "signature",
    ["", "AAAA", "not base64!", "A" * 86, "=" * 86],
)
def test_step5_bad_signature_values(signature: str) -> None:
    assert _code(dict(_good(), signature_b64u=signature)) is ReasonCode.SIGNATURE_INVALID


def test_step5_signature_from_another_payload() -> None:
    assert _code(dict(_good(), signature_b64u=_other_signature())) is ReasonCode.SIGNATURE_INVALID


def test_step5_signed_by_other_key_than_signer_did() -> None:
    document = _good()
    document["signer_did"] = key(2).did
    assert _code(document) is ReasonCode.SIGNATURE_INVALID


def test_step5_bad_signer_did() -> None:
    assert _code(dict(_good(), signer_did="did:web:x")) is ReasonCode.INVALID_DID_FORMAT


# --- first failure wins ----------------------------------------------------------------------


def test_missing_field_and_bad_hash_is_malformed() -> None:
    document = _good()
    del document["issued_at"]
    document["payload"]["n"] = 99
    assert _code(document) is ReasonCode.MALFORMED_ENVELOPE


def test_missing_field_and_unknown_version_is_malformed() -> None:
    document = dict(_good(), envelope_version="9")
    del document["algorithm"]
    assert _code(document) is ReasonCode.MALFORMED_ENVELOPE


#: a signature over another payload, set where a case says ``OTHER``
OTHER = "<another payload's signature>"
REFUSE, ACCEPT = {"note": _refuse_all}, {"note": _accept_all}


@pytest.mark.parametrize(
    ("changes", "tampered", "schemas", "code"),
    [
        # field changes, payload changed after signing, schemas, the first failure
        ({"envelope_version": "2", "signature_b64u": OTHER}, False, None,
         ReasonCode.UNKNOWN_ENVELOPE_VERSION),
        ({"envelope_version": "2", "hash_algorithm": "MD5", "algorithm": "RSA"}, True, None,
         ReasonCode.UNKNOWN_ENVELOPE_VERSION),
        ({"hash_algorithm": "MD5", "algorithm": "RSA"}, False, None,
         ReasonCode.UNKNOWN_HASH_ALGORITHM),
        ({"algorithm": "RSA"}, True, REFUSE, ReasonCode.UNKNOWN_ALGORITHM),
        ({"algorithm": "RSA", "signer_did": "did:web:x"}, False, None,
         ReasonCode.UNKNOWN_ALGORITHM),
        ({}, True, REFUSE, ReasonCode.SCHEMA_VALIDATION_FAILED),
        ({}, True, ACCEPT, ReasonCode.HASH_MISMATCH),
        ({}, True, {"other": _accept_all}, ReasonCode.UNKNOWN_ENVELOPE_TYPE),
        ({"signature_b64u": OTHER}, True, None, ReasonCode.HASH_MISMATCH),
        ({"signer_did": "did:key:zBAD"}, True, None, ReasonCode.HASH_MISMATCH),
        ({"signer_did": "did:key:zBAD", "signature_b64u": "AAAA"}, False, None,
         ReasonCode.INVALID_DID_FORMAT),
    ],
)  # fmt: skip
def test_the_first_failing_step_names_the_code(
    changes: dict[str, str],
    tampered: bool,
    schemas: Mapping[str, Callable[..., None]] | None,
    code: ReasonCode,
) -> None:
    document = _good()
    document.update({k: _other_signature() if v == OTHER else v for k, v in changes.items()})
    if tampered:
        document["payload"]["n"] = 5
    assert _code(document, schemas) is code


# --- what the hash and the signature cover ---------------------------------------------------


def test_payload_hash_is_over_document_order() -> None:
    payload = {"zeta": 1, "alpha": {"y": 2, "b": 3}}
    document = sign_document_order(payload, key(4), envelope_type="note")
    verified = verify_envelope(document)
    assert list(verified.payload) == ["zeta", "alpha"]
    assert verified.payload_hash_b64u == sha256_b64u(b'{"zeta":1,"alpha":{"y":2,"b":3}}')
    # the same content in another key order, with the original hash and signature
    reordered = dict(document, payload={"alpha": {"b": 3, "y": 2}, "zeta": 1})
    assert reordered["payload"] == document["payload"]
    assert _code(reordered) is ReasonCode.HASH_MISMATCH
    inner = dict(document, payload={"zeta": 1, "alpha": {"b": 3, "y": 2}})
    assert _code(inner) is ReasonCode.HASH_MISMATCH


def test_document_order_survives_parse_of_wire_bytes() -> None:
    document = sign_document_order({"zeta": 1, "alpha": 2}, key(4), envelope_type="note")
    raw = compact_json(document)
    assert (
        verify_envelope(parse_json_strict(raw)).payload_hash_b64u == (document["payload_hash_b64u"])
    )


def test_envelope_type_and_issued_at_are_outside_the_signature() -> None:
    document = _good()
    relabelled = dict(document, envelope_type="something_else", issued_at="1999-01-01T00:00:00Z")
    verified = verify_envelope(relabelled)
    assert verified.envelope_type == "something_else"
    assert verified.issued_at == "1999-01-01T00:00:00Z"


def test_event_type_inside_the_payload_is_covered() -> None:
    signer = key(5)
    event = build_event(
        "agent.halted",
        "halt:*",
        {"target": "*", "reason": "incident"},
        signer,
        event_id="00000000-0000-4000-8000-000000000002",
        occurred_at="2026-02-12T00:00:00.000Z",
    )
    document = envelope_dict(event.to_payload(), signer)
    assert verify_envelope(document).payload["event_type"] == "agent.halted"
    document["payload"]["event_type"] = "agent.resumed"  # same body shape, other meaning
    assert _code(document) is ReasonCode.HASH_MISMATCH


@pytest.mark.parametrize("number", [0.00001, 1e-7, 1.5e-5])
def test_own_envelope_hash_matches_json_stringify_for_small_floats(number: float) -> None:
    envelope = sign_envelope("note", {"threshold": number}, key(1), issued_at="t")
    # for a JCS-ordered payload JSON.stringify gives exactly the JCS bytes
    assert envelope.payload_hash_b64u == sha256_b64u(jcs(envelope.payload))


@given(
    st.one_of(
        st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False),
        # the edges: a fraction a hair under the next second, and exact seconds
        st.integers(0, 4_102_444_800).map(lambda s: s + 0.9999996),
        st.integers(0, 4_102_444_800).map(float),
    )
)
def test_format_epoch_is_format_timestamp_of_the_datetime(seconds: float) -> None:
    from datetime import UTC, datetime

    from ledger.envelope import format_epoch

    assert format_epoch(seconds) == format_timestamp(datetime.fromtimestamp(seconds, UTC))
