"""Tool, side-effect and human-approval receipts in a clawsig bundle: checked at the
schema step against the Claw Bureau shapes (ledger/bundle_receipts.py), before the
payload hash, as the clawsig verifier checks them."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from ledger.bundles import sign_document_order
from ledger.offline_verify import BUNDLE_STEPS, verify_bytes
from tests.core import _bundles as b

from ._helpers import FIXED_TS, to_raw

TOOL_V1: dict[str, Any] = {
    "receipt_version": "1",
    "receipt_id": "tr-1",
    "tool_name": "bash",
    "args_hash_b64u": "YXJncy1oYXNo",
    "result_hash_b64u": "cmVzdWx0LWhhc2g",
    "result_status": "success",
    "hash_algorithm": "SHA-256",
    "agent_did": b.AGENT.did,
    "timestamp": FIXED_TS,
    "latency_ms": 42,
    "binding": {"run_id": b.RUN_ID},
}
TOOL_V2: dict[str, Any] = {
    **TOOL_V1,
    "receipt_version": "2",
    "args_salt_b64u": "c2FsdC1hcmdz",
    "result_salt_b64u": "c2FsdC1yZXN1bHQ",
}
TOOL_ENVELOPE_V2: dict[str, Any] = {
    "envelope_version": "2",
    "envelope_type": "tool_receipt",
    "payload": dict(TOOL_V2),
    "payload_hash_b64u": "cGF5bG9hZC1oYXNo",
    "hash_algorithm": "SHA-256",
    "signature_b64u": "c2lnbmF0dXJlLWJ5dGVz",
    "algorithm": "Ed25519",
    "signer_did": b.AGENT.did,
    "issued_at": FIXED_TS,
    "co_signatures": [{"signer_did": b.OUTSIDER.did, "role": "auditor"}],
}
SIDE_EFFECT: dict[str, Any] = {
    "receipt_version": "1",
    "receipt_id": "ser-1",
    "effect_class": "filesystem_write",
    "target_digest": "sha256:abc",
    "hash_algorithm": "SHA-256",
    "bytes_written": 1024,
    "agent_did": b.AGENT.did,
    "timestamp": FIXED_TS,
    # members the schema does not name are allowed in these two kinds
    "vendor_note": "kept",
}
HUMAN_APPROVAL: dict[str, Any] = {
    "receipt_version": "1",
    "receipt_id": "har-1",
    "approval_type": "explicit_approve",
    "approver_subject": "user@example.com",
    "capability_minted": True,
    "agent_did": b.AGENT.did,
    "timestamp": FIXED_TS,
}
GOOD: dict[str, list[dict[str, Any]]] = {
    "tool_receipts": [TOOL_V1, TOOL_V2, TOOL_ENVELOPE_V2],
    "side_effect_receipts": [SIDE_EFFECT],
    "human_approval_receipts": [HUMAN_APPROVAL],
}


def _bundle(
    edit: Callable[[dict[str, Any]], None] = lambda _: None, *, rehash: bool = True
) -> bytes:
    """The good bundle with the other receipts, ``edit`` applied; signed after the edit,
    or (``rehash=False``) before it, so that its payload hash is stale."""
    payload = copy.deepcopy(b.good_bundle()["payload"])
    payload.update(copy.deepcopy(GOOD))
    if not rehash:
        signed = sign_document_order("proof_bundle", payload, b.AGENT, issued_at=FIXED_TS)
        document = copy.deepcopy(signed.to_dict())
        edit(document["payload"])
        return to_raw(document)
    edit(payload)
    return to_raw(
        sign_document_order("proof_bundle", payload, b.AGENT, issued_at=FIXED_TS).to_dict()
    )


def test_a_bundle_with_every_kind_of_other_receipt_passes() -> None:
    result = verify_bytes(_bundle())
    assert result.valid, result.failure


def _set(member: str, index: int, **changes: Any) -> Callable[[dict[str, Any]], None]:
    def edit(payload: dict[str, Any]) -> None:
        entry = payload[member][index]
        for name, value in changes.items():
            if value is _DROP:
                del entry[name]
            else:
                entry[name] = value

    return edit


_DROP = object()


@pytest.mark.parametrize(
    ("edit", "detail"),
    [
        (
            _set("tool_receipts", 0, receipt_version="3"),
            "tool_receipts[0] receipt_version must be '1'",
        ),
        (_set("tool_receipts", 0, tool_name=_DROP), "tool_receipts[0] lacks tool_name"),
        (
            _set("tool_receipts", 0, surprise=1),
            "tool_receipts[0] has unknown member(s) surprise",
        ),
        (
            _set("tool_receipts", 1, receipt_version="2", args_salt_b64u=_DROP),
            "tool_receipts[1] lacks args_salt_b64u",
        ),
        (
            _set("tool_receipts", 0, latency_ms=-1),
            "tool_receipts[0] latency_ms must be a number, zero or more",
        ),
        (
            _set("tool_receipts", 2, co_signatures="none"),
            "tool_receipts[2] co_signatures must be a list of at most 16 objects",
        ),
        (
            lambda p: p["tool_receipts"][2]["payload"].pop("tool_name"),
            "tool_receipts[2] payload lacks tool_name",
        ),
        (
            _set("side_effect_receipts", 0, effect_class="database_write"),
            "side_effect_receipts[0] effect_class must be one of"
            " ['network_egress', 'filesystem_write', 'external_api_write']",
        ),
        (
            _set("side_effect_receipts", 0, receipt_id=_DROP),
            "side_effect_receipts[0] lacks receipt_id",
        ),
        (
            _set("human_approval_receipts", 0, approval_type="rubber_stamp"),
            "human_approval_receipts[0] approval_type must be one of"
            " ['explicit_approve', 'explicit_deny', 'auto_approve', 'timeout_deny']",
        ),
        (
            _set("human_approval_receipts", 0, timestamp="yesterday"),
            "human_approval_receipts[0] timestamp must be an RFC 3339 date-time",
        ),
        (
            lambda p: p.update(side_effect_receipts={"not": "a list"}),
            "side_effect_receipts must be a list of at most 1000 receipts",
        ),
    ],
)
@pytest.mark.parametrize("rehash", [True, False], ids=["re-signed", "stale-hash"])
def test_a_malformed_receipt_fails_at_the_schema_step(
    edit: Callable[[dict[str, Any]], None], detail: str, rehash: bool
) -> None:
    """Re-signed or not: the schema step comes before the payload hash."""
    result = verify_bytes(_bundle(edit, rehash=rehash))
    failure = result.failure
    assert failure is not None and failure is result.checks[-1]
    assert (failure.step, failure.name, failure.code) == (
        3,
        BUNDLE_STEPS[2],
        "SCHEMA_VALIDATION_FAILED",
    )
    assert failure.detail == detail
