"""WPC parsing, validation, hashing and envelopes (formats.md §3)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ledger.errors import EnvelopeError, PolicyError, ReasonCode
from ledger.wpc import (
    MAX_WPC_BYTES,
    check_policy_hash,
    parse_wpc_bytes,
    policy_hash_b64u,
    sign_wpc,
    validate_wpc,
    verify_wpc_envelope,
)
from tests.core._helpers import key

from ._support import EXAMPLES, NOW_TS, WPC_EXAMPLE

SEED_000 = {
    "wpc_version": "1",
    "issuer": "security-team",
    "purpose": "permissioned execution approvals for agent jobs",
    "runtime": {"baseline": "OpenClaw", "sandbox_mode": "all", "allow_elevated": False},
    "tools": {
        "allow": ["read", "write", "exec", "http"],
        "deny": ["docker_socket", "host_browser_control"],
    },
    "model_calls": {"route_via": "clawproxy", "allowed_providers": ["OpenRouter via fal"]},
    "approvals": {
        "required_for": [
            {"action": "exec", "when": "workspaceAccess=rw and path_matches=/prod/"},
            {"action": "http", "when": "host_not_in_allowlist"},
        ]
    },
    "token_binding": {"cst_scope_hash_required": True, "cst_policy_hash_pinning": "recommended"},
    "validation": {"fail_closed_on_missing_wpc": True, "fail_closed_on_hash_mismatch": True},
}


def _code(data: bytes | str) -> ReasonCode:
    raw = data.encode() if isinstance(data, str) else data
    with pytest.raises(PolicyError) as info:
        parse_wpc_bytes(raw)
    return info.value.code


def test_seed_000_document_is_valid() -> None:
    assert parse_wpc_bytes(json.dumps(SEED_000).encode()) == SEED_000


def test_seed_002_sections_are_known() -> None:
    document = {
        "wpc_version": "1",
        "policy_name": "audit-safe-replay",
        "model_routing": {"provider": "openrouter_via_fal", "must_use_gateway_receipts": True},
        "tools": {"allow": ["read", "search"], "deny": ["exec", "write"]},
        "cst_requirements": {"job_scoped": True, "scope_hash_required": True},
        "retention": {"proof_bundle_required": True, "store_as_trust_pulse": "optional"},
    }
    assert not validate_wpc(document).halt_mode


def test_seed_004_halt_policy_is_known() -> None:
    document: dict[str, Any] = {
        "wpc_version": "1",
        "wpc": {"name": "emergency-halt", "version": "2026-02-11", "mode": "halt"},
        "enforcement": {
            "tools": {"default": "deny", "allow": []},
            "model_egress": {"default": "deny"},
            "audit": {"require_gateway_receipts": True},
        },
    }
    assert validate_wpc(document).halt_mode
    document["enforcement"]["tools"]["allow"] = ["exec"]
    with pytest.raises(PolicyError) as info:
        validate_wpc(document)
    assert info.value.code == ReasonCode.WPC_INVALID


def test_unknown_sections_and_keys_are_kept_and_hashed() -> None:
    document = dict(WPC_EXAMPLE, custom_section={"x": [1, 2]})
    document["runtime"] = dict(document["runtime"], future_knob="on")
    parsed = parse_wpc_bytes(json.dumps(document).encode())
    assert parsed["custom_section"] == {"x": [1, 2]}
    assert parsed["runtime"]["future_knob"] == "on"
    assert policy_hash_b64u(parsed) != EXAMPLES["wpc_example"]["policy_hash_b64u"]


def test_oversized_wpc() -> None:
    padding = "x" * (MAX_WPC_BYTES + 1)
    assert _code(json.dumps({"wpc_version": "1", "notes": padding})) == ReasonCode.OVERSIZED


def test_json5_syntax_errors() -> None:
    assert _code("{wpc_version: '1',") == ReasonCode.MALFORMED_JSON
    assert _code("{wpc_version: '1' tools: {}}") == ReasonCode.MALFORMED_JSON
    assert _code(b"\xff\xfe{}") == ReasonCode.MALFORMED_JSON
    assert _code("") == ReasonCode.MALFORMED_JSON


def test_duplicate_keys_are_refused() -> None:
    assert _code('{"wpc_version": "1", "wpc_version": "1"}') == ReasonCode.MALFORMED_JSON
    assert _code("{wpc_version: '1', tools: {}, tools: {}}") == ReasonCode.MALFORMED_JSON


@pytest.mark.parametrize(
    "text",
    [
        "[1, 2]",
        '"just a string"',
        "{}",
        '{"wpc_version": "v1"}',
        '{"wpc_version": 1}',
        '{"wpc_version": "1", "tools": {"allow": ["exec"], "deny": ["exec"]}}',
        '{"wpc_version": "1", "tools": {"allow": "read"}}',
        '{"wpc_version": "1", "runtime": {"allow_elevated": "false"}}',
        '{"wpc_version": "1", "runtime": {"sandbox_mode": "sometimes"}}',
        '{"wpc_version": "1", "validation": {"fail_closed_on_hash_mismatch": false}}',
        '{"wpc_version": "1", "mode": "halt", "tools": {"allow": ["read"]}}',
        '{"wpc_version": "1", "mode": "halt", "wpc": {"mode": "normal"}}',
        '{"wpc_version": "1", "policy_hash": "b64u:..."}',
        '{"wpc_version": "1", "retention": {"proof_bundle_days": 0}}',
        '{"wpc_version": "1", "big": 9007199254740993}',
        "{wpc_version: '1', x: NaN}",
        "{wpc_version: '1', x: Infinity}",
    ],
)
def test_malformed_wpc(text: str) -> None:
    assert _code(text) == ReasonCode.WPC_INVALID


def test_check_policy_hash() -> None:
    digest = EXAMPLES["wpc_example"]["policy_hash_b64u"]
    assert check_policy_hash(digest) == digest
    for bad in ("", "b64u:" + digest, digest[:-1], digest + "=", "sha256:" + "0" * 64, None):
        with pytest.raises(PolicyError) as info:
            check_policy_hash(bad)
        assert info.value.code == ReasonCode.MALFORMED_POLICY_HASH


def _envelope() -> dict[str, Any]:
    signed = sign_wpc(WPC_EXAMPLE, key(2), issued_at=NOW_TS)
    return dict(json.loads(signed.to_bytes()))


def test_envelope_round_trip() -> None:
    verified = verify_wpc_envelope(
        _envelope(), expected_hash=EXAMPLES["wpc_example"]["policy_hash_b64u"]
    )
    assert verified.publisher_did == key(2).did
    assert verified.envelope.envelope_type == "wpc"


def test_envelope_hash_not_matching_content() -> None:
    other = policy_hash_b64u(dict(WPC_EXAMPLE, issuer="someone-else"))
    with pytest.raises(PolicyError) as info:
        verify_wpc_envelope(_envelope(), expected_hash=other)
    assert info.value.code == ReasonCode.WPC_HASH_MISMATCH


def test_envelope_with_edited_content_or_signature() -> None:
    edited = _envelope()
    edited["payload"]["tools"]["allow"].append("docker")
    with pytest.raises(EnvelopeError) as info:
        verify_wpc_envelope(edited)
    assert info.value.code == ReasonCode.HASH_MISMATCH
    forged = _envelope()
    forged["signer_did"] = key(9).did
    with pytest.raises(EnvelopeError) as info:
        verify_wpc_envelope(forged)
    assert info.value.code == ReasonCode.SIGNATURE_INVALID


def test_envelope_of_invalid_document_or_other_type() -> None:
    from ledger.envelope import sign_envelope

    bad = json.loads(sign_envelope("wpc", {"wpc_version": "9"}, key(2)).to_bytes())
    with pytest.raises(EnvelopeError) as info:
        verify_wpc_envelope(bad)
    assert info.value.code == ReasonCode.WPC_INVALID
    other = json.loads(sign_envelope("gateway_receipt", WPC_EXAMPLE, key(2)).to_bytes())
    with pytest.raises(EnvelopeError) as info:
        verify_wpc_envelope(other)
    assert info.value.code == ReasonCode.SCHEMA_VALIDATION_FAILED


def test_sign_refuses_invalid_document() -> None:
    with pytest.raises(PolicyError):
        sign_wpc({"wpc_version": "1", "tools": {"allow": ["a"], "deny": ["a"]}}, key(2))


def test_a_signed_wpc_envelope_reads_as_its_document() -> None:
    """What `wpc get HASH > wpc.json` writes can be diffed, hashed and published again."""
    envelope = sign_wpc(SEED_000, key(2, "policy-admin"))
    parsed = parse_wpc_bytes(envelope.to_bytes())
    assert parsed == SEED_000
    assert policy_hash_b64u(parsed) == policy_hash_b64u(SEED_000)
    # an edited envelope is refused as the envelope step that fails, never read
    tampered = json.loads(envelope.to_bytes())
    tampered["payload"]["purpose"] = "something else"
    assert _code(json.dumps(tampered)) == ReasonCode.HASH_MISMATCH
    # a document that only names an envelope type is judged as a document
    assert _code(json.dumps({"envelope_type": "wpc"})) == ReasonCode.WPC_INVALID
