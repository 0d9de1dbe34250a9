"""The halt rules: agent.halted and agent.resumed, and what an active halt refuses."""

from __future__ import annotations

import pytest

from ledger.errors import ReasonCode
from ledger.types.halts import active_halt

from ._rules_support import _issue_refused, _receipt_body, _start, _start_refused
from ._support import Ledger, ts


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
