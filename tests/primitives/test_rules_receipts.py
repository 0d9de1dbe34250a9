"""The receipt rule: receipt.recorded, bound to its job's run, event chain, policy and
token."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ledger.bundles import sign_document_order
from ledger.errors import ReasonCode

from ._rules_support import _receipt_body
from ._support import Ledger, ts


def _receipt_refused(ledger: Ledger, body: dict[str, Any], signer: Any = None) -> ReasonCode:
    return ledger.refused(
        signer or ledger.keys.gateway, "receipt.recorded", f"job:{body['job_id']}", body, at=ts(90)
    ).code


def test_receipt_before_start_or_for_unknown_job(ledger: Ledger) -> None:
    ledger.approved_job()
    job = ledger.state.jobs["job-1"]
    job["token_scope_hash_b64u"] = None  # not started: no token yet
    body = _receipt_body(ledger)
    assert _receipt_refused(ledger, body) == ReasonCode.RUN_NOT_STARTED
    body = dict(body, job_id="job-9")
    assert _receipt_refused(ledger, body) == ReasonCode.JOB_UNKNOWN


@pytest.mark.parametrize(
    "binding",
    [
        {"run_id": "job-2"},
        {"event_hash_b64u": "B" * 43},
        {"policy_hash": "7e_jFMJ7ZusdR84fPjfCRzz9_rWXm5kLjZFrxm-JVm0"},
        {"token_scope_hash_b64u": "OMfo1i4Qvrnbfht-L-4Zl2ElG1U5xenjvTXgXgShVJ4"},
    ],
)
def test_receipt_binding_mismatch(ledger: Ledger, binding: dict[str, Any]) -> None:
    ledger.started_job()
    assert _receipt_refused(ledger, _receipt_body(ledger, **binding)) == (
        ReasonCode.RECEIPT_BINDING_MISMATCH
    )


def test_receipt_signers(ledger: Ledger) -> None:
    ledger.started_job()
    by_runtime = _receipt_body(ledger, signer=ledger.keys.runtime)
    assert _receipt_refused(ledger, by_runtime) == ReasonCode.ROLE_NOT_ALLOWED
    by_outsider = _receipt_body(ledger, signer=ledger.keys.outsider)
    assert _receipt_refused(ledger, by_outsider) == ReasonCode.UNKNOWN_SIGNER
    good = _receipt_body(ledger)
    assert _receipt_refused(ledger, good, ledger.keys.runtime) == ReasonCode.ROLE_NOT_ALLOWED


def test_receipt_tampered_and_duplicate(ledger: Ledger) -> None:
    ledger.started_job()
    body = _receipt_body(ledger)
    envelope = json.loads(body["receipt_envelope_json"])
    envelope["payload"]["tokens_output"] = 1
    tampered = dict(body, receipt_envelope_json=json.dumps(envelope))
    assert _receipt_refused(ledger, tampered) == ReasonCode.HASH_MISMATCH
    ledger.ok(ledger.keys.gateway, "receipt.recorded", "job:job-1", body, at=ts(90))
    assert _receipt_refused(ledger, body) == ReasonCode.RECEIPT_ALREADY_RECORDED


def test_receipt_after_token_revoked(ledger: Ledger) -> None:
    _, token = ledger.started_job()
    ledger.ok(
        ledger.keys.operator,
        "token.revoked",
        f"token:{token['jti']}",
        {"jti": token["jti"], "reason": "leak"},
    )
    assert _receipt_refused(ledger, _receipt_body(ledger)) == ReasonCode.TOKEN_REVOKED


def test_external_receipt_in_its_own_key_order(ledger: Ledger) -> None:
    """A receipt whose payload is not in JCS order (like clawproxy's) is kept byte-exact."""
    ledger.started_job()
    job = ledger.state.jobs["job-1"]
    source = json.loads(_receipt_body(ledger)["receipt_envelope_json"])["payload"]
    order = [
        "receipt_version",
        "receipt_id",
        "gateway_id",
        "provider",
        "model",
        "request_hash_b64u",
        "response_hash_b64u",
        "tokens_input",
        "tokens_output",
        "latency_ms",
        "timestamp",
        "binding",
    ]
    payload = {name: source[name] for name in order}
    payload["binding"] = {
        "run_id": job["run_id"],
        "event_hash_b64u": job["event_chain"][-1]["event_hash_b64u"],
        "nonce": "n-ext",
    }
    envelope = sign_document_order("gateway_receipt", payload, ledger.keys.gateway)
    text = json.dumps(envelope.to_dict(), separators=(",", ":"))
    body = {"job_id": "job-1", "receipt_envelope_json": text}
    ledger.ok(ledger.keys.gateway, "receipt.recorded", "job:job-1", body, at=ts(90))
    row = [r for r in ledger.rows if r.table == "receipts"][-1]
    assert row.values["receipt_envelope_raw"] == text
