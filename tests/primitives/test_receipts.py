"""Gateway receipts (formats.md §5) and the gateway helper."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ledger.encoding import sha256_b64u
from ledger.errors import EnvelopeError, ReasonCode, ReceiptError
from ledger.receipts import (
    ReceiptBinding,
    check_receipt_binding,
    check_receipt_bytes,
    parse_receipt_bytes,
    verify_receipt_envelope,
)
from producers.gateway import build_gateway_receipt, receipt_event_body
from tests.core._helpers import key, receipt_payload

from ._support import BUNDLE_PASS, NOW_TS

REQUEST = b'{"model":"claude-test","messages":[{"role":"user","content":"hi"}]}'
RESPONSE = b'{"content":[{"type":"text","text":"hello"}]}\n'
EVENT = "mo72_ab1UHvxY2DERZG2Tn12KNl2e_NSUrVDEQ5-Jds"
POLICY = "OMfo1i4Qvrnbfht-L-4Zl2ElG1U5xenjvTXgXgShVJ4"
SCOPE = "7e_jFMJ7ZusdR84fPjfCRzz9_rWXm5kLjZFrxm-JVm0"


def _receipt(**binding: Any) -> dict[str, Any]:
    bound = {"run_id": "run-1", "event_hash_b64u": EVENT, "nonce": "n-1", **binding}
    envelope = build_gateway_receipt(
        request=REQUEST,
        response=RESPONSE,
        provider="anthropic",
        model="claude-test",
        binding=ReceiptBinding.model_validate(bound),
        key=key(4),
        gateway_id="gw-1",
        tokens_input=10,
        tokens_output=20,
        latency_ms=123,
        receipt_id="rcpt_test",
        timestamp=NOW_TS,
        issued_at=NOW_TS,
    )
    return dict(json.loads(envelope.to_bytes()))


def test_receipt_hashes_the_exact_bytes() -> None:
    receipt = _receipt()
    payload = receipt["payload"]
    assert payload["request_hash_b64u"] == sha256_b64u(REQUEST)
    assert payload["response_hash_b64u"] == sha256_b64u(RESPONSE)
    assert payload["receipt_version"] == "1"
    assert verify_receipt_envelope(receipt).signer_did == key(4).did
    check_receipt_bytes(payload, REQUEST, RESPONSE)
    with pytest.raises(ReceiptError) as info:
        check_receipt_bytes(payload, REQUEST, RESPONSE.rstrip())
    assert info.value.code == ReasonCode.HASH_MISMATCH


def test_vector_receipt_verifies() -> None:
    receipt = BUNDLE_PASS["payload"]["receipts"][0]
    raw = json.dumps(receipt).encode()
    assert verify_receipt_envelope(parse_receipt_bytes(raw)).payload["receipt_id"] == (
        "rcpt_conformance_001"
    )


def test_tampered_receipt() -> None:
    receipt = _receipt()
    receipt["payload"]["model"] = "claude-other"
    with pytest.raises(EnvelopeError) as info:
        verify_receipt_envelope(receipt)
    assert info.value.code == ReasonCode.HASH_MISMATCH


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("receipt_version", "2"),
        ("tokens_input", -1),
        ("tokens_input", "10"),
        ("request_hash_b64u", "short"),
        ("timestamp", "yesterday"),
        ("binding", {"run_id": "r"}),
    ],
)
def test_receipt_schema(field: str, value: Any) -> None:
    from ledger.envelope import sign_envelope

    payload = _receipt()["payload"]
    payload[field] = value
    envelope = json.loads(sign_envelope("gateway_receipt", payload, key(4)).to_bytes())
    with pytest.raises(EnvelopeError) as info:
        verify_receipt_envelope(envelope)
    assert info.value.code == ReasonCode.SCHEMA_VALIDATION_FAILED


def test_binding_checks() -> None:
    payload = _receipt(policy_hash=POLICY, token_scope_hash_b64u=SCOPE)["payload"]
    check_receipt_binding(
        payload,
        run_id="run-1",
        event_hashes={EVENT},
        policy_hash=POLICY,
        token_scope_hash_b64u=SCOPE,
    )
    kwargs: dict[str, Any]
    for kwargs in (
        {"run_id": "run-2"},
        {"event_hashes": {"B" * 43}},
        {"policy_hash": SCOPE},
        {"token_scope_hash_b64u": POLICY},
    ):
        with pytest.raises(ReceiptError) as info:
            check_receipt_binding(payload, **kwargs)
        assert info.value.code == ReasonCode.RECEIPT_BINDING_MISMATCH


def test_bad_binding_is_refused_when_building() -> None:
    with pytest.raises(ReceiptError) as info:
        receipt_payload({"run_id": "r", "event_hash_b64u": "not-a-hash", "nonce": "n"})
    assert info.value.code == ReasonCode.SCHEMA_VALIDATION_FAILED


def test_event_body_keeps_exact_text() -> None:
    body = receipt_event_body("job-1", b'{"a":1}')
    assert body == {"job_id": "job-1", "receipt_envelope_json": '{"a":1}'}


def test_receipt_size_and_json() -> None:
    with pytest.raises(ReceiptError) as info:
        parse_receipt_bytes(b"{" + b" " * 70000 + b"}")
    assert info.value.code == ReasonCode.OVERSIZED
    with pytest.raises(ReceiptError) as info:
        parse_receipt_bytes(b'{"a":1,"a":2}')
    assert info.value.code == ReasonCode.MALFORMED_JSON
