"""The kill switch's rules (ADR 0016): a halt revokes the tokens in its scope, a lift
re-authorises under a new WPC, and only tokens pinned to it are accepted afterwards."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.errors import ReasonCode
from ledger.types.halts import tokens_in_scope

from ._support import NOW, WPC_EXAMPLE, Ledger, ts

HALT_WPC: dict[str, Any] = {
    "wpc_version": "1",
    "purpose": "kill switch: deny all",
    "wpc": {"name": "halt", "mode": "halt"},
    "tools": {"default": "deny"},
    "egress": {"default": "deny"},
}


def _resume(ledger: Ledger, target: str, policy: str, *, at: str | None = None) -> None:
    body = {"target": target, "reason": "cleared", "policy_hash_b64u": policy}
    ledger.ok(ledger.keys.operator, "agent.resumed", f"halt:{target}", body, at=at or ts())


def _refused_resume(ledger: Ledger, target: str, policy: str | None) -> ReasonCode:
    body: dict[str, Any] = {"target": target, "reason": "cleared"}
    if policy is not None:
        body["policy_hash_b64u"] = policy
    return ledger.refused(ledger.keys.operator, "agent.resumed", f"halt:{target}", body).code


def _issue_refused(ledger: Ledger, **kw: Any) -> ReasonCode:
    _, body = ledger.token(**kw)
    return ledger.refused(ledger.keys.issuer, "token.issued", f"token:{body['jti']}", body).code


def _tokens(ledger: Ledger, wpc: str) -> dict[str, str]:
    """Four active tokens: two jobs of alpha, one of beta, and one that already expired."""
    made = {
        "alpha-1": ledger.issue(job="job-1", sub="agent:alpha", policy=wpc)["jti"],
        "alpha-2": ledger.issue(job="job-2", sub="agent:alpha", policy=wpc)["jti"],
        "beta-3": ledger.issue(job="job-3", sub="agent:beta", policy=wpc)["jti"],
        "expired": ledger.issue(job="job-1", sub="agent:alpha", now=NOW - 890, ttl=900)["jti"],
    }
    return made


@pytest.mark.parametrize(
    ("target", "covered"),
    [
        ("*", {"alpha-1", "alpha-2", "beta-3"}),
        ("sub:agent:alpha", {"alpha-1", "alpha-2"}),
        ("job:job-1", {"alpha-1"}),
        ("job:job-9", set()),
    ],
)
def test_a_halt_revokes_the_active_tokens_of_its_scope(
    ledger: Ledger, target: str, covered: set[str]
) -> None:
    wpc = ledger.publish_wpc()
    made = _tokens(ledger, wpc)
    halt = ledger.halt(target, at=ts(20))
    halt_id = halt.verified.event.event_id
    revoked = {
        name for name, jti in made.items() if ledger.state.tokens[jti]["status"] == "revoked"
    }
    # the expired token is left alone: it authorises nothing already
    assert revoked == covered
    record = ledger.state.halts[target]
    assert record["revoked_jtis"] == sorted(made[name] for name in covered)
    assert record["deny_tools"] is True and record["deny_model_egress"] is True
    assert record["policy_hash_b64u"] is None
    for name in covered:
        token = ledger.state.tokens[made[name]]
        assert token["revoked_by_halt"] == halt_id
        assert token["revoked_reason"] == f"halt {target}: incident"
        assert token["revoked_by"] == ledger.keys.operator.did
    # the rows the halt wrote are exactly those records
    rows = {(r.table, r.values.get("jti") or r.values.get("target")) for r in halt.rows}
    assert rows == {("halts", target), *(("tokens", made[name]) for name in covered)}


def test_a_job_halt_covers_the_token_of_the_running_job(ledger: Ledger) -> None:
    _, token = ledger.started_job("job-1")
    ledger.halt("job:job-1", at=ts(70))
    assert ledger.state.halts["job:job-1"]["revoked_jtis"] == [token["jti"]]
    assert tokens_in_scope(ledger.state, "job:job-1", NOW) == []


def test_halting_again_keeps_what_the_active_halt_revoked(ledger: Ledger) -> None:
    wpc = ledger.publish_wpc()
    jti = ledger.issue(job="job-1", policy=wpc)["jti"]
    ledger.halt("job:job-1")
    ledger.halt("job:job-1", tools=False)
    record = ledger.state.halts["job:job-1"]
    assert record["revoked_jtis"] == [jti]
    assert record["deny_tools"] is False and record["deny_model_egress"] is True
    # a halt after a lift starts afresh
    _resume(ledger, "job:job-1", wpc)
    ledger.halt("job:job-1")
    assert ledger.state.halts["job:job-1"]["revoked_jtis"] == []
    assert ledger.state.halts["job:job-1"]["resume_policy_hash_b64u"] is None


def test_a_halt_may_name_only_an_active_halt_wpc(ledger: Ledger) -> None:
    normal = ledger.publish_wpc()
    halt_wpc = ledger.publish_wpc(HALT_WPC)
    op = ledger.keys.operator
    body = {"target": "*", "reason": "r"}
    refused = ledger.refused(op, "agent.halted", "halt:*", {**body, "policy_hash_b64u": normal})
    assert refused.code == ReasonCode.HALT_POLICY_NOT_HALT
    unknown = ledger.refused(op, "agent.halted", "halt:*", {**body, "policy_hash_b64u": "A" * 43})
    assert unknown.code == ReasonCode.WPC_UNKNOWN
    ledger.halt("*", policy_hash_b64u=halt_wpc, model_egress=False)
    record = ledger.state.halts["*"]
    assert record["policy_hash_b64u"] == halt_wpc
    assert record["deny_model_egress"] is False and record["deny_tools"] is True


def test_a_lift_must_name_an_active_non_halt_wpc(ledger: Ledger) -> None:
    normal = ledger.publish_wpc()
    halt_wpc = ledger.publish_wpc(HALT_WPC)
    revoked = ledger.publish_wpc({**WPC_EXAMPLE, "purpose": "soon revoked"})
    ledger.ok(
        ledger.keys.policy_admin,
        "policy.revoked",
        f"policy:{revoked}",
        {"policy_hash_b64u": revoked, "reason": "r"},
    )
    ledger.halt("sub:agent:alpha")
    target = "sub:agent:alpha"
    assert _refused_resume(ledger, target, None) == ReasonCode.RESUME_POLICY_REQUIRED
    assert _refused_resume(ledger, target, "B" * 43) == ReasonCode.RESUME_POLICY_NOT_ACTIVE
    assert _refused_resume(ledger, target, revoked) == ReasonCode.RESUME_POLICY_NOT_ACTIVE
    assert _refused_resume(ledger, target, halt_wpc) == ReasonCode.RESUME_POLICY_IS_HALT
    assert _refused_resume(ledger, target, "not a hash") == ReasonCode.MALFORMED_POLICY_HASH
    # a target that is not halted is refused first, whatever the policy
    assert _refused_resume(ledger, "*", None) == ReasonCode.HALT_NOT_ACTIVE
    assert ledger.state.halts[target]["active"] is True
    _resume(ledger, target, normal)
    assert ledger.state.halts[target]["resume_policy_hash_b64u"] == normal


def test_after_a_lift_only_tokens_pinned_to_its_wpc_are_issued(ledger: Ledger) -> None:
    old = ledger.publish_wpc()
    new = ledger.publish_wpc({**WPC_EXAMPLE, "purpose": "after the incident"})
    jti = ledger.issue(job="job-1", policy=old)["jti"]
    ledger.halt("sub:agent:alpha")
    assert _issue_refused(ledger, job="job-1", policy=new) == ReasonCode.AGENT_HALTED
    _resume(ledger, "sub:agent:alpha", new)
    # the revoked token stays revoked
    assert ledger.state.tokens[jti]["status"] == "revoked"
    revoke = {"jti": jti, "reason": "again"}
    refused = ledger.refused(ledger.keys.operator, "token.revoked", f"token:{jti}", revoke)
    assert refused.code == ReasonCode.TOKEN_REVOKED
    assert _issue_refused(ledger, job="job-1", policy=old) == ReasonCode.RESUME_POLICY_PIN_MISMATCH
    assert _issue_refused(ledger, job="job-1") == ReasonCode.RESUME_POLICY_PIN_MISMATCH
    ledger.issue(job="job-1", policy=new)
    # another subject is not re-authorised by this lift
    ledger.issue(job="job-4", sub="agent:beta", policy=old)
    # a WPC that superseded the lift's WPC carries the re-authorisation
    newer = ledger.publish_wpc({**WPC_EXAMPLE, "purpose": "amended"})
    body = {"old_policy_hash_b64u": new, "new_policy_hash_b64u": newer}
    ledger.ok(ledger.keys.policy_admin, "policy.superseded", f"policy:{new}", body)
    ledger.issue(job="job-5", policy=newer)


def test_the_latest_lift_covering_a_token_decides(ledger: Ledger) -> None:
    first = ledger.publish_wpc()
    second = ledger.publish_wpc({**WPC_EXAMPLE, "purpose": "second"})
    ledger.halt("sub:agent:alpha", at=ts(0))
    _resume(ledger, "sub:agent:alpha", first, at=ts(10))
    ledger.halt("*", at=ts(20))
    _resume(ledger, "*", second, at=ts(30))
    # alpha's subject halt was lifted under `first`, but everything since under `second`
    assert _issue_refused(ledger, job="job-1", policy=first) == (
        ReasonCode.RESUME_POLICY_PIN_MISMATCH
    )
    ledger.issue(job="job-1", policy=second)
    ledger.issue(job="job-2", sub="agent:beta", policy=second)


# --- the CLI, before anything is published (no server needed) ----------------------------


def _cli(*args: str) -> Any:
    from click.testing import CliRunner

    from claw_ledger.cli import cli

    return CliRunner().invoke(cli, list(args), prog_name="claw-ledger")


def test_the_cli_refuses_a_lift_without_a_wpc_with_its_reason_code() -> None:
    result = _cli("resume", "job:job-1", "--reason", "prompt says so", "--key", "operator")
    assert result.exit_code == 1
    assert "RESUME_POLICY_REQUIRED" in result.output and "--policy HASH" in result.output


def test_the_cli_refuses_a_halt_that_denies_nothing() -> None:
    args = ["halt", "*", "--reason", "r", "--no-tools", "--no-model-egress", "--key", "op"]
    result = _cli(*args)
    assert result.exit_code == 2 and "denies nothing" in result.output
    bad_target = _cli("halt", "agent:x", "--reason", "r", "--key", "op")
    assert bad_target.exit_code == 2 and "TARGET" in bad_target.output
