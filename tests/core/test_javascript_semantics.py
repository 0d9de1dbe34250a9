"""Payload hashes follow JavaScript's key order, as the clawsig verifier's
``JSON.stringify(payload)`` does: keys that are array indices ("2", "10") come
first, in numeric order, whatever the bytes said (docs/formats.md §2).

The reference values are Node's (``tests/vectors/javascript-index-keys.json``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from ledger.canonical import compact_json, holds_index_keys, parse_json_strict
from ledger.crypto import KeyPair
from ledger.envelope import sign_envelope, verify_envelope
from ledger.errors import EnvelopeError, ReasonCode
from ledger.events import sign_event_bytes
from ledger.javascript import js_property_order
from ledger.verify import Verified, verify_message
from tests.core._helpers import RFC8032_TEST1_SEED, VECTORS

NODE: dict[str, Any] = json.loads((VECTORS / "javascript-index-keys.json").read_text("utf-8"))


def test_compact_json_is_json_stringify_of_the_parse() -> None:
    payload = parse_json_strict(NODE["payload_as_sent"].encode())
    assert compact_json(payload).decode() == NODE["json_stringify_of_its_parse"]
    assert compact_json(payload, plain_numbers=True).decode() == NODE["json_stringify_of_its_parse"]


@pytest.mark.parametrize(
    ("key", "is_index"),
    [
        ("0", True),
        ("7", True),
        ("4294967294", True),  # 2**32 - 2, the largest array index
        ("4294967295", False),
        ("01", False),  # not the canonical spelling of a number
        ("-1", False),
        ("1.5", False),
        ("1e3", False),
        (" 1", False),
        ("\u0661", False),  # ARABIC-INDIC DIGIT ONE: a digit to Python, not to JavaScript
        ("", False),
    ],
)
def test_which_keys_javascript_lists_first(key: str, is_index: bool) -> None:
    value = {"a": 1, key: 2}
    ordered = list(js_property_order(value))
    assert ordered == ([key, "a"] if is_index else ["a", key])
    if is_index:
        assert holds_index_keys(compact_json(value))


def test_an_envelope_hashed_as_json_stringify_hashes_verifies() -> None:
    envelope = verify_envelope(json.loads(NODE["verifies"]))
    assert envelope.payload_hash_b64u == NODE["payload_hash_b64u"]
    assert envelope.payload_json == NODE["json_stringify_of_its_parse"].encode()


def test_an_envelope_hashed_in_the_order_its_bytes_were_written_is_refused() -> None:
    with pytest.raises(EnvelopeError) as refused:
        verify_envelope(json.loads(NODE["refused_hash_of_document_order"]))
    assert refused.value.code == ReasonCode.HASH_MISMATCH


def test_what_this_ledger_signs_verifies_in_javascript() -> None:
    """The same payload signed here, in RFC 8785 order but for the index keys: Node's
    hash of it and, Ed25519 being deterministic, Node's signature. On the wire the
    payload is in JavaScript's order, so a verifier that hashes the bytes as
    written agrees as well."""
    envelope = sign_envelope(
        "index_keys_example",
        json.loads(NODE["payload_as_sent"]),
        KeyPair.from_seed(RFC8032_TEST1_SEED),
        issued_at="2026-12-02T00:00:00.000Z",
    )
    node = json.loads(NODE["jcs_first_envelope"])
    assert envelope.payload_hash_b64u == node["payload_hash_b64u"]
    assert envelope.signature_b64u == node["signature_b64u"]
    wire = envelope.to_bytes()
    assert b'"payload":' + NODE["jcs_first_then_stringify"].encode() + b"," in wire
    assert verify_envelope(json.loads(wire)).payload_hash_b64u == node["payload_hash_b64u"]


def test_a_ledger_event_with_index_keys_signs_and_verifies() -> None:
    urm = {"10": "ten", "2": "two", "a": {"1": True, "0": False}}
    _, raw = sign_event_bytes(
        KeyPair.from_seed(RFC8032_TEST1_SEED),
        "run.manifest_approved",
        "job:index-keys",
        {"job_id": "index-keys", "urm_hash_b64u": "A" * 43, "urm": urm, "approvals": []},
    )
    verified = verify_message(raw)
    assert isinstance(verified, Verified), verified
    assert b'"urm":{"2":"two","10":"ten","a":{"0":false,"1":true}}' in verified.payload_json
    assert verified.event.body["urm"] == urm
