"""Shadow policies on the real broker, database and processor: a candidate put
in shadow over a running job (``claw-ledger wpc shadow``) never changes the
authorize service's answers, each disagreement is recorded as ``call.shadowed``,
``simulate --shadow`` reports them and gates on them, and ``wpc unshadow``
stops them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ledger.authorize import Decision
from tests.fixtures_ledger import LedgerHarness, fetch_until, run_cli
from tests.integration import _authorize as authz
from tests.integration._authorize import EXEC, READ, WRITE

pytestmark = pytest.mark.integration

CANDIDATE: dict[str, Any] = {
    "wpc_version": "1",
    "purpose": "shadow: no writes",
    "tools": {"allow": ["read"], "deny": ["write"]},
    "model_calls": {"allowed_providers": ["anthropic"]},
}


def _cli(ledger: LedgerHarness, *args: str) -> tuple[int, Any]:
    result = run_cli(ledger.env, *args, "--json")
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return result.returncode, json.loads(result.stdout) if result.stdout.strip() else None


def _key(ledger: LedgerHarness, role: str) -> str:
    return str(ledger.settings.state_dir / "keys" / f"{role}.key")


async def _shadowed_events(ledger: LedgerHarness, job_id: str, count: int) -> list[Any]:
    """The bodies of the job's committed call.shadowed events, once ``count`` are there."""
    conn = await ledger.connect()
    try:
        rows = await fetch_until(
            conn,
            "SELECT payload->'body' AS body FROM events"
            " WHERE event_type = 'call.shadowed' AND stream = $1 ORDER BY position",
            f"job:{job_id}",
            count=count,
            timeout=60,
        )
        return [json.loads(r["body"]) if isinstance(r["body"], str) else r["body"] for r in rows]
    finally:
        await conn.close()


async def test_a_shadow_policy_records_disagreements_and_never_changes_the_answer(
    running_ledger: LedgerHarness,
) -> None:
    ledger = running_ledger
    wpc = await authz.publish_wpc(ledger, authz.WPC | {"purpose": "shadow: in force"})
    candidate = await authz.publish_wpc(ledger, CANDIDATE)
    job = await authz.running_job(ledger, wpc)
    other = await authz.running_job(ledger, wpc)

    code, shadowed = _cli(
        ledger, "wpc", "shadow", candidate, "--scope", f"job:{job.job_id}",
        "--reason", "trial", "--key", _key(ledger, "policy-admin"),
    )  # fmt: skip
    assert code == 0 and shadowed["status"] == "committed", shadowed
    code, active = _cli(ledger, "wpc", "shadows")
    assert code == 0
    assert [(r["scope"], r["policy_hash_b64u"]) for r in active] == [
        (f"job:{job.job_id}", candidate)
    ]

    # a loaded test machine may beat late; staleness is not what this test is about
    authorize = authz.service(ledger, max_staleness=60)
    await authorize.start()
    decisions: list[Decision] = []
    try:
        for action in (WRITE, READ, EXEC, WRITE):
            decisions.append(await authorize.decide(authz.request(job, action)))
        decisions.append(await authorize.decide(authz.request(other, WRITE)))
        # the real answers are the job's WPC's: write allowed, exec denied
        assert [(d.allowed, d.reason_code.value) for d in decisions] == [
            (True, "OK"), (True, "OK"), (False, "TOOL_NOT_ALLOWED"), (True, "OK"), (True, "OK"),
        ]  # fmt: skip
        assert [len(d.disagreements()) for d in decisions] == [1, 0, 0, 1, 0]

        code, ended = _cli(
            ledger, "wpc", "unshadow", "--scope", f"job:{job.job_id}",
            "--key", _key(ledger, "policy-admin"),
        )  # fmt: skip
        assert code == 0 and ended["status"] == "committed", ended
        after = await authz.decide_until(
            lambda: authorize.decide(authz.request(job, WRITE)),
            lambda d: d.allowed and not d.shadows,
        )
        assert after.allowed and after.disagreements() == ()
    finally:
        await authorize.stop()
    assert authorize.counters.failed == 0

    ids = [d.decision_id for d in decisions]
    rows = await authz.recorded_decisions(ledger, ids)
    assert [rows[i]["allowed"] for i in ids] == [d.allowed for d in decisions]
    # every write decided while the shadow was loaded disagreed, and only those
    shadowed_writes = authorize.counters.shadowed
    assert shadowed_writes >= 2
    bodies = await _shadowed_events(ledger, job.job_id, shadowed_writes)
    assert len(bodies) == shadowed_writes
    assert {ids[0], ids[3]} <= {b["decision_id"] for b in bodies}
    assert all(
        (b["action"], b["decision"], b["shadow_decision"], b["shadow_reason_code"])
        == ({"kind": "tool", "tool": "write"}, "allow", "deny", "TOOL_NOT_ALLOWED")
        and b["shadow_policy_hash_b64u"] == candidate
        for b in bodies
    )
    assert after.decision_id not in {b["decision_id"] for b in bodies}

    code, report = _cli(ledger, "simulate", "--shadow", "--job", job.job_id)
    assert code == 1, "a call that was allowed would have been denied: the gate fails"
    assert report["summary"]["shadowed"] == shadowed_writes
    assert report["summary"]["would_deny"] == shadowed_writes
    assert report["summary"]["would_deny_by_action"] == {"tool:write": shadowed_writes}
    assert report["summary"]["by_shadow_policy"] == {candidate: shadowed_writes}
    code, report = _cli(ledger, "simulate", "--shadow", "--job", other.job_id)
    assert code == 0 and report["summary"]["shadowed"] == 0

    # ending a shadow that is not active is refused
    result = run_cli(
        ledger.env, "wpc", "unshadow", "--scope", f"job:{job.job_id}",
        "--key", _key(ledger, "policy-admin"),
    )  # fmt: skip
    assert result.returncode == 1 and "SHADOW_NOT_ACTIVE" in result.stderr, result.stderr
