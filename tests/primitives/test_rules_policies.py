"""The WPC registry's rules: policy.published, policy.superseded and policy.revoked."""

from __future__ import annotations

import json
from typing import Any

from ledger.envelope import sign_envelope
from ledger.errors import ReasonCode
from ledger.wpc import policy_hash_b64u, sign_wpc

from ._rules_support import OTHER_WPC
from ._support import NOW_TS, WPC_EXAMPLE, Ledger


def _publish_body(
    document: dict[str, Any], signer: Any, digest: str | None = None
) -> dict[str, Any]:
    envelope = sign_wpc(document, signer, issued_at=NOW_TS)
    return {
        "policy_hash_b64u": digest or policy_hash_b64u(document),
        "wpc_envelope_json": envelope.to_bytes().decode(),
    }


def test_publish_twice(ledger: Ledger) -> None:
    digest = ledger.publish_wpc()
    body = _publish_body(WPC_EXAMPLE, ledger.keys.policy_admin)
    refused = ledger.refused(ledger.keys.policy_admin, "policy.published", f"policy:{digest}", body)
    assert refused.code == ReasonCode.WPC_ALREADY_PUBLISHED


def test_hash_collision_of_differing_content(ledger: Ledger) -> None:
    """An event claiming the hash of one document for another is refused."""
    digest = policy_hash_b64u(WPC_EXAMPLE)
    body = _publish_body(OTHER_WPC, ledger.keys.policy_admin, digest=digest)
    refused = ledger.refused(ledger.keys.policy_admin, "policy.published", f"policy:{digest}", body)
    assert refused.code == ReasonCode.WPC_HASH_MISMATCH
    # once the real one is published, different content can never take its hash either
    ledger.publish_wpc()
    refused = ledger.refused(ledger.keys.policy_admin, "policy.published", f"policy:{digest}", body)
    assert refused.code == ReasonCode.WPC_ALREADY_PUBLISHED


def test_publish_on_another_stream(ledger: Ledger) -> None:
    body = _publish_body(WPC_EXAMPLE, ledger.keys.policy_admin)
    refused = ledger.refused(ledger.keys.policy_admin, "policy.published", "policy:other", body)
    assert refused.code == ReasonCode.SCHEMA_VALIDATION_FAILED


def test_wpc_signed_by_a_key_without_the_role(ledger: Ledger) -> None:
    body = _publish_body(WPC_EXAMPLE, ledger.keys.issuer)
    refused = ledger.refused(
        ledger.keys.policy_admin, "policy.published", f"policy:{body['policy_hash_b64u']}", body
    )
    assert refused.code == ReasonCode.ROLE_NOT_ALLOWED
    body = _publish_body(WPC_EXAMPLE, ledger.keys.policy_admin)
    refused = ledger.refused(
        ledger.keys.issuer, "policy.published", f"policy:{body['policy_hash_b64u']}", body
    )
    assert refused.code == ReasonCode.ROLE_NOT_ALLOWED


def test_tampered_or_invalid_wpc_envelopes(ledger: Ledger) -> None:
    digest = policy_hash_b64u(WPC_EXAMPLE)
    stream = f"policy:{digest}"
    body = _publish_body(WPC_EXAMPLE, ledger.keys.policy_admin)
    envelope = json.loads(body["wpc_envelope_json"])
    envelope["signature_b64u"] = "A" * 86
    bad_sig = {**body, "wpc_envelope_json": json.dumps(envelope)}
    assert ledger.refused(ledger.keys.policy_admin, "policy.published", stream, bad_sig).code == (
        ReasonCode.SIGNATURE_INVALID
    )
    envelope = json.loads(body["wpc_envelope_json"])
    envelope["payload"]["issuer"] = "mallory"
    edited = {**body, "wpc_envelope_json": json.dumps(envelope)}
    assert ledger.refused(ledger.keys.policy_admin, "policy.published", stream, edited).code == (
        ReasonCode.HASH_MISMATCH
    )
    garbage = {**body, "wpc_envelope_json": "{not json"}
    assert ledger.refused(ledger.keys.policy_admin, "policy.published", stream, garbage).code == (
        ReasonCode.MALFORMED_JSON
    )
    invalid_doc = {"wpc_version": "1", "tools": {"allow": ["x"], "deny": ["x"]}}
    raw = sign_envelope("wpc", invalid_doc, ledger.keys.policy_admin).to_bytes().decode()
    invalid_digest = policy_hash_b64u(invalid_doc)
    invalid = {"policy_hash_b64u": invalid_digest, "wpc_envelope_json": raw}
    refused = ledger.refused(
        ledger.keys.policy_admin, "policy.published", f"policy:{invalid_digest}", invalid
    )
    assert refused.code == ReasonCode.WPC_INVALID


def test_malformed_policy_hash_in_events(ledger: Ledger) -> None:
    body = _publish_body(WPC_EXAMPLE, ledger.keys.policy_admin, digest="b64u:not-a-hash")
    refused = ledger.refused(
        ledger.keys.policy_admin, "policy.published", "policy:b64u:not-a-hash", body
    )
    assert refused.code == ReasonCode.SCHEMA_VALIDATION_FAILED


def test_supersede_and_revoke(ledger: Ledger) -> None:
    old = ledger.publish_wpc()
    new = ledger.publish_wpc(OTHER_WPC)
    pa = ledger.keys.policy_admin
    body = {"old_policy_hash_b64u": old, "new_policy_hash_b64u": old, "reason": "x"}
    assert ledger.refused(pa, "policy.superseded", f"policy:{old}", body).code == (
        ReasonCode.WPC_INVALID
    )
    unknown = policy_hash_b64u({"wpc_version": "1", "issuer": "nobody"})
    body = {"old_policy_hash_b64u": unknown, "new_policy_hash_b64u": new}
    assert ledger.refused(pa, "policy.superseded", f"policy:{unknown}", body).code == (
        ReasonCode.WPC_UNKNOWN
    )
    body = {"old_policy_hash_b64u": old, "new_policy_hash_b64u": new, "reason": "tighter"}
    ledger.ok(pa, "policy.superseded", f"policy:{old}", body)
    assert ledger.state.policies[old]["status"] == "superseded"
    assert ledger.state.policies[old]["superseded_by"] == new
    assert ledger.state.policies[new]["supersedes"] == [old]
    assert ledger.refused(pa, "policy.superseded", f"policy:{old}", body).code == (
        ReasonCode.WPC_SUPERSEDED
    )
    ledger.ok(pa, "policy.revoked", f"policy:{new}", {"policy_hash_b64u": new, "reason": "bad"})
    assert ledger.state.policies[new]["status"] == "revoked"
    again = {"policy_hash_b64u": new, "reason": "bad"}
    assert ledger.refused(pa, "policy.revoked", f"policy:{new}", again).code == (
        ReasonCode.WPC_REVOKED
    )
    nobody = {"policy_hash_b64u": unknown, "reason": "x"}
    assert ledger.refused(pa, "policy.revoked", f"policy:{unknown}", nobody).code == (
        ReasonCode.WPC_UNKNOWN
    )
