"""The reference values of tests/vectors are reproduced (docs/formats.md)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from ledger.bundles import (
    build_job_bundle,
    chain_entry,
    event_hash_b64u,
    sign_document_order,
    verify_proof_bundle,
)
from ledger.canonical import jcs
from ledger.crypto import KeyPair
from ledger.errors import BundleError, ReasonCode
from ledger.receipts import sign_receipt
from ledger.tokens import token_scope_hash_b64u
from ledger.wpc import parse_wpc_bytes, policy_hash_b64u
from tests.core._helpers import key, receipt_payload

from ._support import BUNDLE_PASS, EXAMPLES, RFC8032_SEED


def test_rfc8032_key_did_and_signature() -> None:
    vector = EXAMPLES["rfc8032_test1"]
    kp = KeyPair.from_seed(RFC8032_SEED)
    assert kp.public_key.hex() == vector["public_hex"]
    assert kp.did == vector["did_key"]
    assert kp.sign(b"").hex() == vector["signature_of_empty_message_hex"]


def test_wpc_example_jcs_and_hash() -> None:
    vector = EXAMPLES["wpc_example"]
    assert jcs(vector["payload"]).decode() == vector["jcs"]
    assert policy_hash_b64u(vector["payload"]) == vector["policy_hash_b64u"]
    # the same document as JSON5 (comments, unquoted keys, trailing commas) hashes the same
    json5_text = (
        "// security team baseline\n{wpc_version: '1', issuer: 'security-team',"
        " runtime: {baseline: 'OpenClaw', sandbox_mode: 'all', allow_elevated: false,},"
        " tools: {allow: ['read', 'write', 'exec', 'http'],"
        " deny: ['docker_socket', 'host_browser_control']},"
        " validation: {fail_closed_on_missing_wpc: true, fail_closed_on_hash_mismatch: true},}"
    )
    assert policy_hash_b64u(parse_wpc_bytes(json5_text.encode())) == vector["policy_hash_b64u"]


def test_scope_example_hash() -> None:
    vector = EXAMPLES["scope_example"]
    assert token_scope_hash_b64u(vector["input"]) == vector["token_scope_hash_b64u"]
    # normalisation: order, duplicates, whitespace, aud as list do not change it
    messy = {
        "sub": "  agent:alpha ",
        "aud": ["clawproxy", " clawproxy", ""],
        "scope": ["tools:read", "proxy:call:anthropic", "tools:read", " "],
        "iat": 1,
        "exp": 2,
        "jti": "x",
        "nonce": "n",
    }
    assert token_scope_hash_b64u(messy) == vector["token_scope_hash_b64u"]


def test_proof_bundle_pass_vector_verifies() -> None:
    summary = verify_proof_bundle(BUNDLE_PASS).summary()
    assert summary["status"] == "PASS"
    assert summary["run_id"] == "run_conformance_001"
    assert summary["receipt_count"] == 1


def test_chain_hash_of_vector_entry() -> None:
    entry = BUNDLE_PASS["payload"]["event_chain"][0]
    assert event_hash_b64u(entry) == entry["event_hash_b64u"]


def _tampered(path: list[Any], value: Any) -> dict[str, Any]:
    document = copy.deepcopy(BUNDLE_PASS)
    target: Any = document
    for step in path[:-1]:
        target = target[step]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return document


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "code"),
    [
        (["signer_did"], _DELETE, ReasonCode.MALFORMED_ENVELOPE),
        (["envelope_version"], "2", ReasonCode.UNKNOWN_ENVELOPE_VERSION),
        (["hash_algorithm"], "SHA-1", ReasonCode.UNKNOWN_HASH_ALGORITHM),
        (["algorithm"], "RS256", ReasonCode.UNKNOWN_ALGORITHM),
        (["payload", "event_chain"], [], ReasonCode.SCHEMA_VALIDATION_FAILED),
        (["payload", "bundle_version"], "2", ReasonCode.SCHEMA_VALIDATION_FAILED),
        (["payload", "bundle_id"], "bundle_other", ReasonCode.HASH_MISMATCH),
        (["payload_hash_b64u"], "A" * 43, ReasonCode.HASH_MISMATCH),
        (["signature_b64u"], "A" * 86, ReasonCode.SIGNATURE_INVALID),
        (["signer_did"], "did:key:zNotAKey", ReasonCode.INVALID_DID_FORMAT),
    ],
)
def test_tampered_bundle_fails_with_its_code(path: list[Any], value: Any, code: ReasonCode) -> None:
    with pytest.raises(BundleError) as info:
        verify_proof_bundle(_tampered(path, value))
    assert info.value.code == code


def _resigned(payload: dict[str, Any], signer: KeyPair) -> dict[str, Any]:
    return sign_document_order("proof_bundle", payload, signer).to_dict()


def _refusal(payload: dict[str, Any], signer: KeyPair) -> ReasonCode:
    """The code a bundle of ``payload``, signed by ``signer``, is refused with."""
    with pytest.raises(BundleError) as info:
        verify_proof_bundle(_resigned(payload, signer))
    return info.value.code


def _bundle(
    bundle_id: str, agent: KeyPair, chain: list[dict[str, Any]], *receipts: dict[str, Any]
) -> dict[str, Any]:
    return {
        "bundle_version": "1",
        "bundle_id": bundle_id,
        "agent_did": agent.did,
        "event_chain": chain,
        "receipts": list(receipts),
    }


def test_bundle_signed_by_another_key_is_agent_mismatch() -> None:
    payload = copy.deepcopy(BUNDLE_PASS["payload"])
    with pytest.raises(BundleError) as info:
        verify_proof_bundle(_resigned(payload, key(42)))
    assert info.value.code == ReasonCode.PROOF_BUNDLE_AGENT_MISMATCH


def test_expected_agent_is_checked() -> None:
    with pytest.raises(BundleError) as info:
        verify_proof_bundle(BUNDLE_PASS, expected_agent_did=key(1).did)
    assert info.value.code == ReasonCode.PROOF_BUNDLE_AGENT_MISMATCH


def test_tampered_nested_receipt_fails_with_receipt_code() -> None:
    agent = key(43)
    payload = copy.deepcopy(BUNDLE_PASS["payload"])
    payload["agent_did"] = agent.did
    payload["receipts"][0]["payload"]["tokens_output"] = 21
    with pytest.raises(BundleError) as info:
        verify_proof_bundle(_resigned(payload, agent))
    assert info.value.code == ReasonCode.HASH_MISMATCH
    assert "receipts[0]" in info.value.detail


def _chain(run_id: str, n: int) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for i in range(n):
        entries.append(
            chain_entry(
                event_id=f"evt_{i}",
                run_id=run_id,
                event_type="llm_call",
                timestamp="2026-02-12T00:00:00.000Z",
                payload_hash_b64u="A" * 43,
                prev_hash_b64u=entries[-1]["event_hash_b64u"] if entries else None,
            )
        )
    return entries


def _receipt(run_id: str, event_hash: str, gateway: KeyPair) -> dict[str, Any]:
    payload = receipt_payload({"run_id": run_id, "event_hash_b64u": event_hash, "nonce": "n"})
    return dict(json.loads(sign_receipt(payload, gateway).to_bytes()))


def test_receipt_bound_elsewhere_is_binding_mismatch() -> None:
    agent, gateway = key(44), key(45)
    chain = _chain("run_a", 2)
    payload = _bundle("b1", agent, chain, _receipt("run_a", "B" * 43, gateway))
    assert _refusal(payload, agent) == ReasonCode.RECEIPT_BINDING_MISMATCH
    payload["receipts"] = [_receipt("run_b", chain[1]["event_hash_b64u"], gateway)]
    assert _refusal(payload, agent) == ReasonCode.RECEIPT_BINDING_MISMATCH
    payload["receipts"] = [_receipt("run_a", chain[1]["event_hash_b64u"], gateway)]
    assert verify_proof_bundle(_resigned(payload, agent)).event_count == 2


def test_broken_chain_link_and_entry_hash() -> None:
    agent = key(46)
    chain = _chain("run_a", 3)
    chain[2]["prev_hash_b64u"] = chain[0]["event_hash_b64u"]
    payload = _bundle("b2", agent, chain)
    assert _refusal(payload, agent) == ReasonCode.HASH_MISMATCH
    chain = _chain("run_a", 2)
    chain[1]["event_type"] = "edited"
    payload["event_chain"] = chain
    assert _refusal(payload, agent) == ReasonCode.HASH_MISMATCH


def test_mixed_run_ids_are_a_schema_error() -> None:
    agent = key(47)
    chain = _chain("run_a", 2)
    chain[1]["run_id"] = "run_b"
    payload = _bundle("b3", agent, chain)
    assert _refusal(payload, agent) == ReasonCode.SCHEMA_VALIDATION_FAILED


def test_job_bundle_keeps_external_receipt_order() -> None:
    """A bundle built here embeds the vector's receipt (not in JCS order) and still verifies."""
    agent = key(48)
    vector_entry = BUNDLE_PASS["payload"]["event_chain"][0]
    job = {"job_id": "run_conformance_001", "event_chain": [vector_entry], "urm_hash_b64u": None}
    receipt = BUNDLE_PASS["payload"]["receipts"][0]
    envelope = build_job_bundle(job, [receipt], agent, bundle_id="bundle_x")
    text = json.dumps(envelope.to_dict())
    assert verify_proof_bundle(json.loads(text)).receipt_count == 1
    assert list(json.loads(text)["payload"]["receipts"][0]["payload"]) == list(receipt["payload"])


def test_job_bundle_needs_events() -> None:
    with pytest.raises(BundleError):
        build_job_bundle({"job_id": "j", "event_chain": []}, [], key(49))
