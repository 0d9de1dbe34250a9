"""The primitive rules over LedgerState, each event through the processor's own
pure pipeline (verify_message → decide). Every refusal leaves the state as it was."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from ledger.bundles import build_job_bundle, sign_document_order, verify_proof_bundle
from ledger.crypto import KeyPair
from ledger.envelope import sign_envelope
from ledger.errors import ReasonCode
from ledger.events import build_event, sign_event
from ledger.receipts import sign_receipt
from ledger.registry import RuleSettings
from ledger.types import REGISTRY
from ledger.types.halts import active_halt
from ledger.types.runs import output_flags
from ledger.types.shadows import shadow_event_id
from ledger.urm import sign_approval, urm_hash_b64u
from ledger.verify import Accepted, Rejected
from ledger.wpc import policy_hash_b64u, sign_wpc
from tests.core._helpers import receipt_payload

from ._support import (
    NOW,
    NOW_TS,
    WPC_EXAMPLE,
    Ledger,
    created_columns,
    pulse_body,
    sealed_body,
    ts,
)

OTHER_WPC = dict(WPC_EXAMPLE, issuer="platform-team")


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


def _publish_body(
    document: dict[str, Any], signer: Any, digest: str | None = None
) -> dict[str, Any]:
    envelope = sign_wpc(document, signer, issued_at=NOW_TS)
    return {
        "policy_hash_b64u": digest or policy_hash_b64u(document),
        "wpc_envelope_json": envelope.to_bytes().decode(),
    }


# --- the whole flow ------------------------------------------------------------------


def _receipt_body(
    ledger: Ledger, job_id: str = "job-1", signer: Any = None, **binding: Any
) -> dict[str, Any]:
    job = ledger.state.jobs[job_id]
    bound = {
        "run_id": job["run_id"],
        "event_hash_b64u": job["event_chain"][-1]["event_hash_b64u"],
        "nonce": "nonce-1",
        "policy_hash": job["wpc_hash_b64u"],
        "token_scope_hash_b64u": job["token_scope_hash_b64u"],
    }
    bound.update(binding)
    payload = receipt_payload(bound, timestamp=ts(90))
    envelope = sign_receipt(payload, signer or ledger.keys.gateway, issued_at=ts(90))
    return {"job_id": job_id, "receipt_envelope_json": envelope.to_bytes().decode()}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_full_flow_and_projection_rows(ledger: Ledger) -> None:
    wpc, token = ledger.started_job()
    ledger.ok(
        ledger.keys.gateway, "receipt.recorded", "job:job-1", _receipt_body(ledger), at=ts(90)
    )
    outputs = [
        {"name": "close_report.pdf", "sha256": _sha(b"pdf")},
        {"name": "recon_summary.json", "sha256": "cd" * 32},
    ]
    assert isinstance(_complete(ledger, outputs), Accepted)
    job = ledger.state.jobs["job-1"]
    assert job["status"] == "completed"
    assert job["outputs_match"] is True and job["output_flags"] == []
    assert job["cst_jti"] == token["jti"] and job["sub"] == "agent:alpha"
    assert [e["event_type"] for e in job["event_chain"]] == [
        "run.manifest_approved",
        "run.started",
        "run.completed",
    ]
    assert job["receipt_count"] == 1
    assert ledger.state.policies[wpc]["status"] == "active"
    assert ledger.state.tokens[token["jti"]]["status"] == "active"
    # the last row written for each key is exactly the state record, and JSON round-trips
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for row in ledger.rows:
        latest[(row.table, str(row.values[row.key_column]))] = row.values
        assert json.loads(json.dumps(row.values)) == row.values
    for (table, ident), values in latest.items():
        if table == "receipts":
            continue
        assert getattr(ledger.state, table)[ident] == values


def test_rows_match_the_migration_columns(ledger: Ledger) -> None:
    ledger.started_job()
    ledger.ok(
        ledger.keys.gateway, "receipt.recorded", "job:job-1", _receipt_body(ledger), at=ts(90)
    )
    ledger.ok(ledger.keys.operator, "agent.halted", "halt:*", {"target": "*", "reason": "r"})
    # columns later migrations add to a projection (0004's control_version is not a row value)
    later = (
        Path(__file__).resolve().parents[2] / "migrations" / "0009_kill_switch.sql"
    ).read_text()
    for row in ledger.rows:
        columns = created_columns("0002_claw_primitives.sql", row.table)
        for alter in re.finditer(rf"ALTER TABLE {row.table}\n(.*?);", later, re.S):
            columns |= set(re.findall(r"ADD COLUMN (\w+)", alter.group(1)))
        assert set(row.values) == columns, row.table
        assert row.key_column in columns


def test_each_type_writes_the_tables_its_spec_names(ledger: Ledger) -> None:
    """Every event type accepted once; the tables of its rows are exactly its spec's ``writes``."""
    new_key = KeyPair.from_seed(bytes([42]) * 32)
    admin, operator = ledger.keys.admin, ledger.keys.operator
    register = {"did": new_key.did, "name": "new", "roles": ["runtime"]}
    ledger.ok(admin, "key.registered", f"key:{new_key.did}", register)
    ledger.ok(admin, "key.revoked", f"key:{new_key.did}", {"did": new_key.did, "reason": "r"})
    ledger.started_job()
    ledger.ok(
        ledger.keys.gateway, "receipt.recorded", "job:job-1", _receipt_body(ledger), at=ts(90)
    )
    outputs = [{"name": "recon_summary.json", "sha256": "cd" * 32}]
    assert isinstance(_complete(ledger, outputs), Accepted)
    old = next(iter(ledger.state.policies))
    new = ledger.publish_wpc(OTHER_WPC)
    body = {"old_policy_hash_b64u": old, "new_policy_hash_b64u": new}
    admin_p = ledger.keys.policy_admin
    ledger.ok(admin_p, "policy.superseded", f"policy:{old}", body)
    ledger.ok(admin_p, "policy.revoked", f"policy:{new}", {"policy_hash_b64u": new, "reason": "r"})
    jti = next(iter(ledger.state.tokens))
    ledger.ok(operator, "token.revoked", f"token:{jti}", {"jti": jti, "reason": "r"})
    ledger.issue(job="job-2")  # active: the halt revokes it
    ledger.ok(operator, "agent.halted", "halt:*", {"target": "*", "reason": "r"})
    lift = ledger.publish_wpc({**WPC_EXAMPLE, "purpose": "after the halt"})
    resume = {"target": "*", "reason": "r", "policy_hash_b64u": lift}
    ledger.ok(operator, "agent.resumed", "halt:*", resume)
    attested = {
        "ok": True,
        "policy_hash": None,
        "workspace_hash": "w",
        "findings_hash": "f",
        "attestation_hash": "a",
        "checked_at": NOW_TS,
        "policy_path": "p",
        "findings_count": 0,
    }
    ledger.ok(operator, "policy.attested", "openclaw-policy:ws", attested)
    for event_type, code in (("call.authorized", "OK"), ("call.denied", "AGENT_HALTED")):
        decision_id = str(uuid.uuid4())
        decision = {
            "decision_id": decision_id,
            "job_id": "job-1",
            "action": {"kind": "model", "provider": "anthropic", "model": "claude"},
            "token_jti": jti,
            "token_scope_hash_b64u": None,
            "policy_hash_b64u": old,
            "halt_target": None if code == "OK" else "*",
            "halt_state": None if code == "OK" else "committed",
            "reason_code": code,
            "decided_at": NOW_TS,
        }
        ledger.ok(ledger.keys.authorizer, event_type, "job:job-1", decision, event_id=decision_id)
    sealed = sealed_body("job-1")
    ledger.ok(ledger.keys.ledger, "bundle.sealed", "job:job-1", sealed)
    ledger.ok(ledger.keys.ledger, "pulse.published", "job:job-1", pulse_body("job-1"))
    candidate = ledger.publish_wpc({"wpc_version": "1", "tools": {"allow": ["read"]}})
    shadow = {"policy_hash_b64u": candidate, "scope": "*"}
    ledger.ok(admin_p, "policy.shadowed", "shadow:*", shadow)
    ledger.ok(admin_p, "policy.shadow_ended", "shadow:*", {"scope": "*"})
    shadowed = {
        "decision_id": decision_id,
        "job_id": "job-1",
        "action": {"kind": "tool", "tool": "write"},
        "policy_hash_b64u": old,
        "decision": "deny",
        "reason_code": "AGENT_HALTED",
        "shadow_scope": "*",
        "shadow_policy_hash_b64u": candidate,
        "shadow_decision": "allow",
        "shadow_reason_code": "OK",
        "decided_at": NOW_TS,
    }
    event_id = shadow_event_id(decision_id, candidate)
    ledger.ok(ledger.keys.authorizer, "call.shadowed", "job:job-1", shadowed, event_id=event_id)
    written: dict[str, set[str]] = {}
    for outcome in ledger.accepted:
        event_type = outcome.verified.event.event_type
        tables = {row.table for row in outcome.rows}
        assert tables <= set(REGISTRY[event_type].writes), event_type
        written.setdefault(event_type, set()).update(tables)
    # checkpoint.signed writes no projection (tests/core/test_checkpoint_event.py)
    assert set(written) >= set(REGISTRY.event_types()) - {"policy.drift", "checkpoint.signed"}
    for event_type, tables in written.items():
        assert tables == set(REGISTRY[event_type].writes), event_type


def test_chain_payload_hash_is_the_envelope_payload_hash(ledger: Ledger) -> None:
    _, token, _ = ledger.approved_job()
    job = ledger.state.jobs["job-1"]
    event = build_event(
        "run.started",
        "job:job-1",
        {"job_id": "job-1", "urm_hash_b64u": job["urm_hash_b64u"], "cst_jti": token["jti"]},
        ledger.keys.runtime,
        occurred_at=ts(60),
    )
    envelope = sign_event(event, ledger.keys.runtime)
    from ledger.verify import decide, verify_message

    verified = verify_message(envelope.to_bytes())
    decide(ledger.state, verified, None, ledger.settings)  # type: ignore[arg-type]
    entry = ledger.state.jobs["job-1"]["event_chain"][-1]
    assert entry["payload_hash_b64u"] == envelope.payload_hash_b64u
    assert (
        entry["prev_hash_b64u"] == ledger.state.jobs["job-1"]["event_chain"][0]["event_hash_b64u"]
    )


def test_bundle_from_the_job_row_verifies(ledger: Ledger) -> None:
    ledger.started_job()
    body = _receipt_body(ledger)
    ledger.ok(ledger.keys.gateway, "receipt.recorded", "job:job-1", body, at=ts(90))
    receipt = json.loads(body["receipt_envelope_json"])
    bundle = build_job_bundle(ledger.state.jobs["job-1"], [receipt], ledger.keys.runtime)
    summary = verify_proof_bundle(json.loads(json.dumps(bundle.to_dict()))).summary()
    assert summary["run_id"] == "job-1" and summary["event_count"] == 2


# --- WPC registry -----------------------------------------------------------------------


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


# --- tokens ---------------------------------------------------------------------------


def _issue_refused(ledger: Ledger, body: dict[str, Any], signer: Any = None) -> ReasonCode:
    refused = ledger.refused(
        signer or ledger.keys.issuer, "token.issued", f"token:{body['jti']}", body
    )
    return refused.code


def test_token_pins(ledger: Ledger) -> None:
    unknown = policy_hash_b64u(OTHER_WPC)
    assert _issue_refused(ledger, ledger.token(policy=unknown)[1]) == ReasonCode.WPC_UNKNOWN
    wpc = ledger.publish_wpc()
    ledger.issue(policy=wpc)
    ledger.ok(
        ledger.keys.policy_admin,
        "policy.revoked",
        f"policy:{wpc}",
        {"policy_hash_b64u": wpc, "reason": "allows exec"},
    )
    assert _issue_refused(ledger, ledger.token(policy=wpc)[1]) == ReasonCode.WPC_REVOKED
    body = ledger.token()[1]
    body["policy_hash_b64u"] = "not-a-policy-hash"
    assert _issue_refused(ledger, body) == ReasonCode.MALFORMED_POLICY_HASH


def test_token_pin_to_superseded_wpc(ledger: Ledger) -> None:
    old, new = ledger.publish_wpc(), ledger.publish_wpc(OTHER_WPC)
    ledger.ok(
        ledger.keys.policy_admin,
        "policy.superseded",
        f"policy:{old}",
        {"old_policy_hash_b64u": old, "new_policy_hash_b64u": new},
    )
    assert _issue_refused(ledger, ledger.token(policy=old)[1]) == ReasonCode.WPC_SUPERSEDED
    ledger.issue(policy=new)


def test_token_lifetimes(ledger: Ledger) -> None:
    body = ledger.token()[1]
    body["exp"] = body["iat"]
    assert _issue_refused(ledger, body) == ReasonCode.TOKEN_BAD_LIFETIME
    body["exp"] = body["iat"] - 10
    assert _issue_refused(ledger, body) == ReasonCode.TOKEN_BAD_LIFETIME
    body["exp"] = body["iat"] + 24 * 3600 + 1
    assert _issue_refused(ledger, body) == ReasonCode.TOKEN_TTL_EXCEEDED
    ledger.settings = RuleSettings(max_token_ttl_seconds=600)
    assert _issue_refused(ledger, ledger.token(ttl=900)[1]) == ReasonCode.TOKEN_TTL_EXCEEDED
    ledger.issue(ttl=600)
    expired = ledger.token(now=NOW - 1000, ttl=600)[1]
    assert _issue_refused(ledger, expired) == ReasonCode.TOKEN_EXPIRED
    future = ledger.token(now=NOW + 3600, ttl=600)[1]
    assert _issue_refused(ledger, future) == ReasonCode.TOKEN_BAD_LIFETIME


def test_token_scope(ledger: Ledger) -> None:
    body = ledger.token()[1]
    body["scope"] = []
    assert _issue_refused(ledger, body) == ReasonCode.TOKEN_EMPTY_SCOPE
    body["scope"] = ["  "]
    assert _issue_refused(ledger, body) == ReasonCode.TOKEN_EMPTY_SCOPE
    body = ledger.token()[1]
    body["scope"] = ["proxy:call:anthropic", "tools:read", "tools:write"]
    assert _issue_refused(ledger, body) == ReasonCode.TOKEN_SCOPE_HASH_MISMATCH


def test_token_identity_checks(ledger: Ledger) -> None:
    body = ledger.issue()
    assert _issue_refused(ledger, body) == ReasonCode.TOKEN_ALREADY_ISSUED
    other = ledger.token()[1]
    other["issuer_did"] = ledger.keys.operator.did
    assert _issue_refused(ledger, other) == ReasonCode.PRODUCER_MISMATCH
    other = ledger.token()[1]
    other["kid"] = "0123456789abcdef"
    assert _issue_refused(ledger, other) == ReasonCode.TOKEN_MALFORMED
    other = ledger.token()[1]
    other["issuer_did"] = ledger.keys.gateway.did
    assert _issue_refused(ledger, other, ledger.keys.gateway) == ReasonCode.ROLE_NOT_ALLOWED


def test_token_revocation(ledger: Ledger) -> None:
    body = ledger.issue()
    stream = f"token:{body['jti']}"
    revoke = {"jti": body["jti"], "reason": "leaked"}
    assert ledger.refused(ledger.keys.gateway, "token.revoked", stream, revoke).code == (
        ReasonCode.ROLE_NOT_ALLOWED
    )
    ledger.ok(ledger.keys.operator, "token.revoked", stream, revoke)
    assert ledger.state.tokens[body["jti"]]["status"] == "revoked"
    assert ledger.state.tokens[body["jti"]]["revoked_by"] == ledger.keys.operator.did
    assert ledger.refused(ledger.keys.issuer, "token.revoked", stream, revoke).code == (
        ReasonCode.TOKEN_REVOKED
    )
    unknown = {"jti": "cst_nothing", "reason": "x"}
    assert ledger.refused(
        ledger.keys.issuer, "token.revoked", "token:cst_nothing", unknown
    ).code == (ReasonCode.TOKEN_UNKNOWN)


# --- URM submission ---------------------------------------------------------------------


def _submit(ledger: Ledger, body: dict[str, Any], signer: Any = None) -> ReasonCode:
    refused = ledger.refused(
        signer or ledger.keys.runtime, "run.manifest_approved", f"job:{body['job_id']}", body
    )
    return refused.code


def _urm_body(ledger: Ledger, wpc: str, approvers: Any = None, **over: Any) -> dict[str, Any]:
    urm = ledger.urm("job-1", wpc, "7e_jFMJ7ZusdR84fPjfCRzz9_rWXm5kLjZFrxm-JVm0", **over)
    return ledger.approve_body(urm, approvers)


def test_urm_without_approvals(ledger: Ledger) -> None:
    body = _urm_body(ledger, ledger.publish_wpc(), approvers=[])
    assert _submit(ledger, body) == ReasonCode.URM_NO_APPROVALS
    assert "job-1" not in ledger.state.jobs


def test_self_approval(ledger: Ledger) -> None:
    requester = ledger.keys.runtime_approver
    body = _urm_body(ledger, ledger.publish_wpc(), approvers=[requester])
    assert _submit(ledger, body, requester) == ReasonCode.URM_SELF_APPROVAL
    body = _urm_body(ledger, next(iter(ledger.state.policies)), approvers=[ledger.keys.approver])
    ledger.ok(requester, "run.manifest_approved", "job:job-1", body)


def test_approver_without_the_role(ledger: Ledger) -> None:
    wpc = ledger.publish_wpc()
    assert _submit(ledger, _urm_body(ledger, wpc, approvers=[ledger.keys.outsider])) == (
        ReasonCode.URM_APPROVER_NOT_ALLOWED
    )
    assert _submit(ledger, _urm_body(ledger, wpc, approvers=[ledger.keys.issuer])) == (
        ReasonCode.URM_APPROVER_NOT_ALLOWED
    )


def test_forged_approval(ledger: Ledger) -> None:
    body = _urm_body(ledger, ledger.publish_wpc())
    body["approvals"][0]["approved_at"] = ts(5)
    assert _submit(ledger, body) == ReasonCode.URM_APPROVAL_INVALID


def test_urm_names_unknown_or_revoked_wpc(ledger: Ledger) -> None:
    assert _submit(ledger, _urm_body(ledger, policy_hash_b64u(OTHER_WPC))) == ReasonCode.WPC_UNKNOWN
    wpc = ledger.publish_wpc()
    ledger.ok(
        ledger.keys.policy_admin,
        "policy.revoked",
        f"policy:{wpc}",
        {"policy_hash_b64u": wpc, "reason": "x"},
    )
    assert _submit(ledger, _urm_body(ledger, wpc)) == ReasonCode.WPC_REVOKED


def test_urm_hash_and_job_consistency(ledger: Ledger) -> None:
    wpc = ledger.publish_wpc()
    body = _urm_body(ledger, wpc)
    body["urm_hash_b64u"] = policy_hash_b64u(WPC_EXAMPLE)
    assert _submit(ledger, body) == ReasonCode.URM_INVALID
    body = _urm_body(ledger, wpc)
    body["job_id"] = "job-2"
    assert _submit(ledger, body) == ReasonCode.URM_INVALID
    body = _urm_body(ledger, wpc, urm_version="7")
    assert _submit(ledger, body) == ReasonCode.URM_INVALID
    ledger.ok(ledger.keys.runtime, "run.manifest_approved", "job:job-1", _urm_body(ledger, wpc))
    assert _submit(ledger, _urm_body(ledger, wpc)) == ReasonCode.JOB_ALREADY_APPROVED
    assert _submit(ledger, _urm_body(ledger, wpc), ledger.keys.issuer) == (
        ReasonCode.ROLE_NOT_ALLOWED
    )


# --- run.started ------------------------------------------------------------------------


def _start(ledger: Ledger, job_id: str, jti: str, *, urm: str | None = None) -> dict[str, Any]:
    job = ledger.state.jobs.get(job_id)
    return {
        "job_id": job_id,
        "urm_hash_b64u": urm or (job["urm_hash_b64u"] if job else policy_hash_b64u(WPC_EXAMPLE)),
        "cst_jti": jti,
    }


def _start_refused(ledger: Ledger, body: dict[str, Any], at: str = NOW_TS) -> ReasonCode:
    return ledger.refused(
        ledger.keys.runtime, "run.started", f"job:{body['job_id']}", body, at=at
    ).code


def test_start_unknown_job(ledger: Ledger) -> None:
    body = ledger.issue(job="job-9")
    assert _start_refused(ledger, _start(ledger, "job-9", body["jti"])) == ReasonCode.JOB_UNKNOWN


def test_token_for_another_job(ledger: Ledger) -> None:
    wpc, _, _ = ledger.approved_job("job-1")
    other = ledger.issue(job="job-2", policy=wpc)
    assert _start_refused(ledger, _start(ledger, "job-1", other["jti"])) == (
        ReasonCode.JOB_BINDING_MISMATCH
    )
    unbound = ledger.issue(job=None, policy=wpc)
    assert _start_refused(ledger, _start(ledger, "job-1", unbound["jti"])) == (
        ReasonCode.JOB_BINDING_MISMATCH
    )


def test_start_with_unknown_revoked_or_expired_token(ledger: Ledger) -> None:
    _, token, _ = ledger.approved_job()
    assert (
        _start_refused(ledger, _start(ledger, "job-1", "cst_missing")) == ReasonCode.TOKEN_UNKNOWN
    )
    assert _start_refused(ledger, _start(ledger, "job-1", token["jti"]), at=ts(900)) == (
        ReasonCode.TOKEN_EXPIRED
    )
    ledger.ok(
        ledger.keys.issuer,
        "token.revoked",
        f"token:{token['jti']}",
        {"jti": token["jti"], "reason": "rotated"},
    )
    assert _start_refused(ledger, _start(ledger, "job-1", token["jti"])) == ReasonCode.TOKEN_REVOKED


def test_start_policy_pin_mismatch(ledger: Ledger) -> None:
    ledger.approved_job()
    other = ledger.publish_wpc(OTHER_WPC)
    pinned_elsewhere = ledger.issue(policy=other)
    assert _start_refused(ledger, _start(ledger, "job-1", pinned_elsewhere["jti"])) == (
        ReasonCode.POLICY_PIN_MISMATCH
    )
    unpinned = ledger.issue(policy=None)
    assert _start_refused(ledger, _start(ledger, "job-1", unpinned["jti"])) == (
        ReasonCode.POLICY_PIN_MISMATCH
    )


def test_start_scope_hash_mismatch(ledger: Ledger) -> None:
    wpc, _, _ = ledger.approved_job()
    other = ledger.issue(policy=wpc, sub="agent:beta")
    assert _start_refused(ledger, _start(ledger, "job-1", other["jti"])) == (
        ReasonCode.TOKEN_SCOPE_HASH_MISMATCH
    )


def test_start_names_another_urm(ledger: Ledger) -> None:
    _, token, _ = ledger.approved_job()
    body = _start(ledger, "job-1", token["jti"], urm=policy_hash_b64u(OTHER_WPC))
    assert _start_refused(ledger, body) == ReasonCode.JOB_BINDING_MISMATCH


def test_start_after_wpc_revoked(ledger: Ledger) -> None:
    wpc, token, _ = ledger.approved_job()
    ledger.ok(
        ledger.keys.policy_admin,
        "policy.revoked",
        f"policy:{wpc}",
        {"policy_hash_b64u": wpc, "reason": "x"},
    )
    assert _start_refused(ledger, _start(ledger, "job-1", token["jti"])) == ReasonCode.WPC_REVOKED


def test_start_twice(ledger: Ledger) -> None:
    _, token = ledger.started_job()
    assert _start_refused(ledger, _start(ledger, "job-1", token["jti"]), at=ts(70)) == (
        ReasonCode.RUN_ALREADY_STARTED
    )


# --- halts ------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["*", "job:job-1", "sub:agent:alpha"])
def test_halted_agent(ledger: Ledger, target: str) -> None:
    _, token, _ = ledger.approved_job()
    op = ledger.keys.operator
    ledger.ok(op, "agent.halted", f"halt:{target}", {"target": target, "reason": "incident"})
    assert _start_refused(ledger, _start(ledger, "job-1", token["jti"])) == ReasonCode.AGENT_HALTED
    assert _issue_refused(ledger, ledger.token(job="job-1")[1]) == ReasonCode.AGENT_HALTED
    # the halt revoked the job's token; the lift re-authorises under the job's WPC
    assert ledger.state.tokens[token["jti"]]["status"] == "revoked"
    wpc = ledger.state.jobs["job-1"]["wpc_hash_b64u"]
    lift = {"target": target, "reason": "clear", "policy_hash_b64u": wpc}
    ledger.ok(op, "agent.resumed", f"halt:{target}", lift)
    assert _start_refused(ledger, _start(ledger, "job-1", token["jti"])) == (
        ReasonCode.TOKEN_REVOKED
    )
    fresh = ledger.issue(job="job-1", policy=wpc)
    ledger.ok(
        ledger.keys.runtime, "run.started", "job:job-1", _start(ledger, "job-1", fresh["jti"])
    )
    ledger.ok(op, "agent.halted", f"halt:{target}", {"target": target, "reason": "again"})
    refused = ledger.refused(
        ledger.keys.gateway, "receipt.recorded", "job:job-1", _receipt_body(ledger), at=ts(90)
    )
    assert refused.code == ReasonCode.AGENT_HALTED


def test_halt_bookkeeping(ledger: Ledger) -> None:
    op = ledger.keys.operator
    halt = {"target": "job:job-1", "reason": "x"}
    ledger.ok(op, "agent.halted", "halt:job:job-1", halt)
    # halting again is never refused: the newest reason is kept
    ledger.ok(op, "agent.halted", "halt:job:job-1", {"target": "job:job-1", "reason": "worse"})
    assert ledger.state.halts["job:job-1"]["reason"] == "worse"
    assert ledger.state.halts["job:job-1"]["active"] is True
    assert ledger.refused(op, "agent.resumed", "halt:*", {"target": "*", "reason": "x"}).code == (
        ReasonCode.HALT_NOT_ACTIVE
    )
    assert ledger.refused(
        op, "agent.halted", "halt:other", {"target": "*", "reason": "x"}
    ).code == (ReasonCode.SCHEMA_VALIDATION_FAILED)
    assert (
        ledger.refused(
            ledger.keys.runtime, "agent.halted", "halt:*", {"target": "*", "reason": "x"}
        ).code
        == ReasonCode.ROLE_NOT_ALLOWED
    )
    # resuming '*' does not lift a specific halt
    ledger.ok(op, "agent.halted", "halt:*", {"target": "*", "reason": "all"})
    wpc = ledger.publish_wpc()
    lift = {"target": "*", "reason": "all clear", "policy_hash_b64u": wpc}
    ledger.ok(op, "agent.resumed", "halt:*", lift)
    assert active_halt(ledger.state, job_id="job-1") is not None
    assert active_halt(ledger.state, job_id="job-2") is None


# --- receipts ---------------------------------------------------------------------------


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


# --- run.completed ----------------------------------------------------------------------


def _complete(
    ledger: Ledger, outputs: list[dict[str, str]], job_id: str = "job-1"
) -> Accepted | Rejected:
    return ledger.submit(
        ledger.keys.runtime,
        "run.completed",
        f"job:{job_id}",
        {"job_id": job_id, "outputs": outputs},
        at=ts(120),
    )


def test_outputs_list_with_bad_hashes(ledger: Ledger) -> None:
    ledger.started_job()
    for bad in ("CD" * 32, "cd" * 31, "sha256:" + "cd" * 32, "", "zz" * 32):
        body = {"job_id": "job-1", "outputs": [{"name": "recon_summary.json", "sha256": bad}]}
        refused = ledger.refused(ledger.keys.runtime, "run.completed", "job:job-1", body)
        assert refused.code == ReasonCode.OUTPUT_HASH_INVALID
    twice = [{"name": "a", "sha256": "cd" * 32}, {"name": "a", "sha256": "ab" * 32}]
    refused = ledger.refused(
        ledger.keys.runtime, "run.completed", "job:job-1", {"job_id": "job-1", "outputs": twice}
    )
    assert refused.code == ReasonCode.OUTPUT_HASH_INVALID


def test_output_hash_flags(ledger: Ledger) -> None:
    ledger.started_job()
    outcome = _complete(
        ledger,
        [
            {"name": "recon_summary.json", "sha256": "ee" * 32},
            {"name": "debug.log", "sha256": "ab" * 32},
        ],
    )
    assert outcome.rows
    job = ledger.state.jobs["job-1"]
    assert job["outputs_match"] is False
    flags = {(f["name"], f["flag"]) for f in job["output_flags"]}
    assert flags == {
        ("recon_summary.json", "hash_mismatch"),
        ("close_report.pdf", "missing"),
        ("debug.log", "unexpected"),
    }


def test_complete_out_of_order(ledger: Ledger) -> None:
    body = {"job_id": "job-1", "outputs": []}
    assert ledger.refused(ledger.keys.runtime, "run.completed", "job:job-1", body).code == (
        ReasonCode.JOB_UNKNOWN
    )
    ledger.approved_job()
    assert ledger.refused(ledger.keys.runtime, "run.completed", "job:job-1", body).code == (
        ReasonCode.RUN_NOT_STARTED
    )


def test_output_flags_function() -> None:
    expected: list[dict[str, Any]] = [
        {"name": "a", "sha256": None},
        {"name": "b", "sha256": "11" * 32},
    ]
    assert (
        output_flags(
            expected, [{"name": "a", "sha256": "00" * 32}, {"name": "b", "sha256": "11" * 32}]
        )
        == []
    )


def test_approval_by_revoked_approver(ledger: Ledger) -> None:
    wpc = ledger.publish_wpc()
    ledger.state.keys[ledger.keys.approver.did].revoked = True
    urm = ledger.urm("job-1", wpc, "7e_jFMJ7ZusdR84fPjfCRzz9_rWXm5kLjZFrxm-JVm0")
    digest = urm_hash_b64u(urm)
    body = {
        "job_id": "job-1",
        "urm_hash_b64u": digest,
        "urm": urm,
        "approvals": [sign_approval(digest, ledger.keys.approver)],
    }
    assert _submit(ledger, body) == ReasonCode.URM_APPROVER_NOT_ALLOWED
