"""``claw-ledger simulate`` over real recorded decisions: the job's own WPC
reproduces every recorded answer (simulation and enforcement are one function),
and a candidate WPC reports exactly the calls whose outcome it changes."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from ledger.authorize import Action, Decision
from ledger.roles import Role
from tests.fixtures_ledger import LedgerHarness, run_cli, run_cli_on_a_terminal, start_ledger
from tests.integration import _authorize as authz
from tests.integration._authorize import EXEC, READ, WRITE

pytestmark = pytest.mark.integration

CLAUDE = Action.for_model("anthropic", "claude")


async def _recorded_calls(ledger: LedgerHarness, document: dict[str, Any]) -> dict[str, Any]:
    """A job's calls under ``document``: read, write, exec (denied), a model call,
    then a halt of the job and a read it denies. All recorded."""
    wpc = await authz.publish_wpc(ledger, document)
    job = await authz.running_job(ledger, wpc)
    other = await authz.running_job(ledger, wpc)
    authorize = authz.service(ledger)
    await authorize.start()
    try:
        decisions: list[Decision] = [
            await authorize.decide(authz.request(job, action))
            for action in (READ, WRITE, EXEC, CLAUDE)
        ]
        decisions.append(await authorize.decide(authz.request(other, READ)))
        operator = ledger.keys[Role.OPERATOR]
        body = {"target": f"job:{job.job_id}", "reason": "simulation drill"}
        verdict = await ledger.publish(operator, "agent.halted", f"halt:job:{job.job_id}", body)
        assert verdict["status"] == "committed", verdict
        # the service follows commits within milliseconds; a call in that gap would be
        # a real (allowed) decision of its own and change the counts below
        await asyncio.sleep(1.0)
        halted = await authz.decide_until(
            lambda: authorize.decide(authz.request(job, READ)), lambda d: not d.allowed
        )
        decisions.append(halted)
    finally:
        await authorize.stop()
    assert [d.allowed for d in decisions] == [True, True, False, True, True, False]
    rows = await authz.recorded_decisions(ledger, [d.decision_id for d in decisions])
    assert len(rows) == len(decisions)
    return {"wpc": wpc, "job": job.job_id, "other": other.job_id, "decisions": decisions}


def _simulate(ledger: LedgerHarness, *args: str) -> tuple[int, dict[str, Any]]:
    result = run_cli(ledger.env, "simulate", *args, "--json")
    assert result.returncode in (0, 1) and result.stdout, result.stdout + result.stderr
    return result.returncode, json.loads(result.stdout)


async def test_the_jobs_own_policy_reproduces_every_recorded_decision(
    running_ledger: LedgerHarness, tmp_path: Path
) -> None:
    document = authz.WPC | {"purpose": "simulation: same policy"}
    calls = await _recorded_calls(running_ledger, document)
    code, report = _simulate(
        running_ledger, "--policy", calls["wpc"], "--job", calls["job"], "--all-calls"
    )
    assert code == 0, report
    assert report["summary"]["simulated"] == 5
    assert report["summary"]["unchanged"] == 5
    recorded = {d.decision_id: d for d in calls["decisions"]}
    for call in report["calls"]:
        original = recorded[call["decision_id"]]
        assert call["simulated"]["decision"] == original.decision
        assert call["simulated"]["reason_code"] == original.reason_code.value


async def test_a_candidate_reports_exactly_the_calls_it_changes(
    running_ledger: LedgerHarness, tmp_path: Path
) -> None:
    calls = await _recorded_calls(running_ledger, authz.WPC | {"purpose": "simulation: candidate"})
    candidate = {
        "wpc_version": "1",
        "tools": {"allow": ["read", "exec"], "deny": ["write"]},
        "model_calls": {"allowed_providers": ["openai"]},
    }
    path = tmp_path / "candidate.json"
    path.write_text(json.dumps(candidate))
    code, report = _simulate(running_ledger, "--policy", str(path), "--job", calls["job"])
    assert code == 1, "an allowed call becomes denied: the gate fails"
    # over an audited ledger the decisions are not verified again: the same report
    audited = _simulate(running_ledger, "--policy", str(path), "--job", calls["job"], "--audited")
    assert audited == (code, report)
    # on a terminal, a bar of the events read ends full (with or without --audited)
    for extra in ((), ("--audited",)):
        args = ("simulate", "--policy", str(path), "--job", calls["job"], *extra)
        shown_code, out, shown = run_cli_on_a_terminal(running_ledger.env, *args)
        assert shown_code == code and "5 calls simulated" in out, shown
        read, total = re.findall(r"simulate\b.*?(\d+)/(\d+)", shown)[-1]
        assert read == total and int(total) > 0, shown
    changed = {
        (c["action"].get("tool") or c["action"]["provider"], c["recorded"]["decision"],
         c["simulated"]["decision"], c["simulated"]["reason_code"])
        for c in report["calls"]
    }  # fmt: skip
    assert changed == {
        ("write", "allow", "deny", "TOOL_NOT_ALLOWED"),
        ("anthropic", "allow", "deny", "MODEL_NOT_ALLOWED"),
        ("exec", "deny", "allow", "OK"),
    }
    summary = report["summary"]
    assert summary["simulated"] == 5 and summary["unchanged"] == 2
    assert summary["newly_denied_by_action"] == {"tool:write": 1, "model:anthropic/claude": 1}
    assert summary["newly_allowed_by_action"] == {"tool:exec": 1}
    # the halted read stays denied: halts are as they were at that moment
    assert all(c["action"] != {"kind": "tool", "tool": "read"} for c in report["calls"])

    # a candidate that only widens: nothing newly denied, exit 0; other jobs untouched
    wider = authz.WPC | {"tools": {"allow": ["read", "write", "exec"]}}
    path.write_text(json.dumps(wider))
    code, report = _simulate(running_ledger, "--policy", str(path), "--job", calls["other"])
    assert code == 0
    assert report["summary"] == {
        "simulated": 1,
        "unchanged": 1,
        "newly_denied": 0,
        "newly_allowed": 0,
        "newly_denied_by_action": {},
        "newly_allowed_by_action": {},
    }


async def test_a_simulation_resumes_from_an_archive_cut(
    ledger_servers: Any, ledger_settings: Any, tmp_path: Path
) -> None:
    """The keys, policy and tokens the decisions need were archived: the fold
    resumes from the state recorded at the cut and still reproduces every
    recorded decision after it."""
    rows = 10
    ledger = await start_ledger(ledger_servers, ledger_settings, tmp_path, partition_rows=rows)
    try:
        calls = await _recorded_calls(ledger, authz.WPC | {"purpose": "simulation: archived"})
        detached = run_cli(ledger.env, "archive", "detach", "--before", str(rows + 1), "--json")
        assert detached.returncode == 0, detached.stderr
        conn = await ledger.connect()
        try:
            after_cut = await conn.fetchval(
                "SELECT count(*) FROM event_keys k JOIN events e ON e.position = k.position"
                " WHERE k.event_id = ANY($1::uuid[]) AND e.stream = $2",
                [d.decision_id for d in calls["decisions"]],
                f"job:{calls['job']}",
            )
            registry = await conn.fetchval(
                "SELECT count(*) FROM event_keys WHERE position <= $1", rows
            )
        finally:
            await conn.close()
        assert registry > 0 and after_cut == 5
        code, report = _simulate(
            ledger, "--policy", calls["wpc"], "--job", calls["job"], "--all-calls"
        )
        assert code == 0, report
        assert report["archived"]["before_position"] == rows + 1
        assert report["summary"]["simulated"] == report["summary"]["unchanged"] == 5
    finally:
        ledger.processor.stop()
