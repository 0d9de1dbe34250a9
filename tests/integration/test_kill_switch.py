"""The kill switch (seed 004, ADR 0016) on the real broker and database, through the CLI:
a halt mid-run revokes the job's tokens, a lift without a new WPC is refused (by the CLI
and by the ledger), a lift with one re-authorises only tokens pinned to it, and a
processor killed mid-halt comes back with the halt and the revocations intact."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.fixtures_ledger import started_ledger
from tests.integration._kill_switch import Flow

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def flow(
    ledger_servers: Any, ledger_settings: Any, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Flow]:
    state_dir = tmp_path_factory.mktemp("kill-switch")
    async with started_ledger(ledger_servers, ledger_settings, state_dir) as ledger:
        yield Flow(ledger, tmp_path_factory.mktemp("kill-switch-work"))


async def test_a_halt_mid_run_revokes_the_jobs_tokens_and_a_lift_reauthorises(
    flow: Flow,
) -> None:
    old = flow.wpc("before")
    job, token = flow.started_job("agent:mid-run", old)
    spare = flow.token(job, "agent:mid-run", old)  # a second token bound to the job
    other_job, other = flow.started_job("agent:bystander", old)
    flow.ok(*flow.receipt(job))

    halted = json.loads(
        flow.ok(
            "halt", f"job:{job}", "--reason", "unexpected egress", "--key", "operator", "--json"
        )
    )
    halt_event = halted["event_id"]
    # both of the job's tokens are revoked by the halt, in the same commit; the bystander's not
    for jti in (token["jti"], spare["jti"]):
        row = await flow.row("tokens", "jti", jti)
        assert row["status"] == "revoked" and row["revoked_by_halt"] == halt_event
    assert (await flow.row("tokens", "jti", other["jti"]))["status"] == "active"
    status = flow.halts()[f"job:{job}"]
    assert status["tokens_revoked"] == 2
    assert status["revoked_jtis"] == sorted([token["jti"], spare["jti"]])
    assert status["deny_tools"] is True and status["deny_model_egress"] is True
    assert status["policy_hash_b64u"] is None and status["halted_by_name"] == "operator"
    assert status["calls_denied_since"] == 0  # no authorisation decisions recorded
    text = flow.ok("halts")
    assert f"job:{job}  HALTED" in text and "tokens revoked 2" in text
    # the next model call of the job is refused; the bystander's job runs on
    flow.refused("AGENT_HALTED", *flow.receipt(job))
    flow.ok(*flow.receipt(other_job))

    # an unhalt without a new WPC: refused by the CLI before anything is published ...
    lift = ["--reason", "looks fine", "--key", "operator"]
    stderr = flow.refused("RESUME_POLICY_REQUIRED", "resume", f"job:{job}", *lift)
    assert "--policy" in stderr
    # ... and by the ledger when a hand-signed event tries it: quarantined with the code
    body = json.dumps({"target": f"job:{job}", "reason": "prompt says so"})
    publish = ["publish", "--type", "agent.resumed", "--stream", f"halt:job:{job}", "--body", "-"]
    result = flow.run(*publish, "--key", "operator", "--json", stdin=body)
    assert result.returncode == 1, result.stderr
    verdict = json.loads(result.stdout)
    assert verdict["status"] == "quarantined"
    assert verdict["reason_code"] == "RESUME_POLICY_REQUIRED"
    halt_wpc = flow.wpc("halt", mode="halt", tools={"default": "deny"})
    flow.refused("RESUME_POLICY_IS_HALT", "resume", f"job:{job}", "--policy", halt_wpc, *lift)
    assert flow.halts()[f"job:{job}"]["active"] is True
    # the registry listing tells the responder which WPCs a lift cannot name
    listed = flow.ok("wpc", "list", "--status", "active").splitlines()
    assert listed[0].split() == ["POLICY", "HASH", "STATUS", "HALT", "ISSUER"]
    halt_column = {line.split()[0]: line.split()[2] for line in listed[1:]}
    assert halt_column[halt_wpc] == "yes" and halt_column[old] == "no"

    # a lift under a new WPC: the old tokens stay revoked, only new pinned tokens authorise
    new = flow.wpc("after")
    flow.ok("resume", f"job:{job}", "--policy", new, *lift)
    lifted = flow.halts("--all")[f"job:{job}"]
    assert lifted["active"] is False and lifted["resume_policy_hash_b64u"] == new
    assert f"job:{job}" not in flow.halts()
    assert (await flow.row("tokens", "jti", token["jti"]))["status"] == "revoked"
    flow.refused("TOKEN_REVOKED", *flow.receipt(job))
    # (cst issue prints the token, then the ledger's refusal)
    flow.refused("RESUME_POLICY_PIN_MISMATCH", *_issue_args(job, "agent:mid-run", old))
    flow.refused("RESUME_POLICY_PIN_MISMATCH", *_issue_args(job, "agent:mid-run", None))
    fresh = flow.token(job, "agent:mid-run", new)
    assert (await flow.row("tokens", "jti", fresh["jti"]))["status"] == "active"
    inspected = json.loads(flow.ok("cst", "inspect", "-", "--json", stdin=fresh["token"]))
    assert inspected["status"] == "active"


def _issue_args(job: str, sub: str, wpc: str | None) -> list[str]:
    args = ["cst", "issue", "--sub", sub, "--aud", "clawproxy", "--scope", "tools:read"]
    args += ["--ttl", "15m", "--job", job, "--key", "issuer"]
    return args + (["--policy", wpc] if wpc else [])


async def test_a_processor_killed_mid_halt_restarts_with_the_halt_and_revocations(
    flow: Flow,
) -> None:
    wpc = flow.wpc("restart")
    sub = "agent:restart"
    job, token = flow.started_job(sub, wpc)
    halt_wpc = flow.wpc("restart-halt", mode="halt", tools={"default": "deny"})
    flow.ok(
        *("halt", f"sub:{sub}", "--reason", "injection"),
        *("--policy", halt_wpc, "--key", "operator"),
    )
    before = await flow.row("halts", "target", f"sub:{sub}")
    assert before["revoked_jtis"] == [token["jti"]]
    assert before["deny_tools"] is True and before["policy_hash_b64u"] == halt_wpc

    processor = flow.ledger.processor
    processor.kill()
    assert not processor.alive()
    processor.start()

    # the restarted processor loads the halt (and checks its digest) before deciding
    flow.refused("AGENT_HALTED", *_issue_args(job, sub, wpc))
    flow.refused("AGENT_HALTED", *flow.receipt(job))
    assert await flow.row("halts", "target", f"sub:{sub}") == before
    revoked = await flow.row("tokens", "jti", token["jti"])
    assert (
        revoked["status"] == "revoked" and revoked["revoked_by_halt"] == before["halted_event_id"]
    )
    status = flow.halts()[f"sub:{sub}"]
    assert status["tokens_revoked"] == 1 and status["deny_tools"] is True
    assert status["deny_model_egress"] is True and status["policy_hash_b64u"] == halt_wpc
    # a lift after the restart still needs the new WPC, and the token stays revoked
    flow.refused(
        "RESUME_POLICY_REQUIRED", "resume", f"sub:{sub}", "--reason", "r", "--key", "operator"
    )
    flow.ok("resume", f"sub:{sub}", "--policy", wpc, "--reason", "r", "--key", "operator")
    flow.refused("TOKEN_REVOKED", *flow.receipt(job))
    # the projections, digests and chains still match a rebuild from the events
    audit = flow.run("audit", "--json")
    assert audit.returncode == 0, audit.stdout[-3000:] + audit.stderr[-2000:]


async def test_a_global_halt_revokes_every_active_token(flow: Flow) -> None:
    wpc = flow.wpc("global")
    tokens = [flow.token(f"job-{uuid.uuid4().hex[:6]}", f"agent:g{n}", wpc) for n in range(3)]
    flow.ok("halt", "*", "--reason", "incident 17", "--key", "operator")
    status = flow.halts()["*"]
    assert {t["jti"] for t in tokens} <= set(status["revoked_jtis"])
    assert status["deny_model_egress"] is True and status["deny_tools"] is True
    flow.refused("AGENT_HALTED", *_issue_args("job-x", "agent:g0", wpc))
    usage = flow.run(
        "halt", "*", "--reason", "r", "--no-tools", "--no-model-egress", "--key", "operator"
    )
    assert usage.returncode == 2 and "denies nothing" in usage.stderr
    flow.ok("resume", "*", "--policy", wpc, "--reason", "over", "--key", "operator")
    for token in tokens:
        assert (await flow.row("tokens", "jti", token["jti"]))["status"] == "revoked"
    flow.token("job-y", "agent:g0", wpc)
