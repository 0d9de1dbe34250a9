"""The primitive rules over LedgerState, each event through the processor's own
pure pipeline (verify_message → decide): the whole flow and the projection rows it
writes. Each family of rules has its own ``test_rules_<family>.py``; in all of them
every refusal leaves the state as it was."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from pathlib import Path
from typing import Any

from ledger.bundles import build_job_bundle, verify_proof_bundle
from ledger.crypto import KeyPair
from ledger.events import build_event, sign_event
from ledger.types import REGISTRY
from ledger.types.shadows import shadow_event_id
from ledger.verify import Accepted

from ._rules_support import OTHER_WPC, _complete, _receipt_body
from ._support import NOW_TS, WPC_EXAMPLE, Ledger, created_columns, pulse_body, sealed_body, ts


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
