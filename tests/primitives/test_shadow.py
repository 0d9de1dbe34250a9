"""Shadow policies: the rules of policy.shadowed / policy.shadow_ended /
call.shadowed, and the candidate judged by decide_call beside the job's WPC
without ever changing the real answer."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from ledger.authorize import Action, CallRequest, Decision, DecisionView, decide_call, replayed
from ledger.errors import ReasonCode
from ledger.shadow import ShadowSelector, ShadowSummary, shadowed_body
from ledger.types.shadows import shadow_event_id
from tests.primitives._authorize_support import AT, SETTINGS, World
from tests.primitives._support import WPC_EXAMPLE, ts

WRITE = Action.for_tool("write")
DOCKER = Action.for_tool("docker_socket")
#: denies write, allows docker_socket: the opposite of WPC_EXAMPLE on both
CANDIDATE: dict[str, Any] = {
    "wpc_version": "1",
    "tools": {"allow": ["read", "exec", "docker_socket"], "deny": ["write"]},
}


def _shadow(world: World, candidate: str, scope: str) -> None:
    world.ledger.ok(
        world.ledger.keys.policy_admin,
        "policy.shadowed",
        f"shadow:{scope}",
        {"policy_hash_b64u": candidate, "scope": scope, "reason": "trial"},
        at=ts(90),
    )


def _world() -> tuple[World, str]:
    world = World(WPC_EXAMPLE)
    return world, world.ledger.publish_wpc(CANDIDATE)


def _answer(decision: Decision) -> tuple[Any, ...]:
    """Everything the caller and the decision's event see."""
    return (decision.to_dict() | {"decision_id": None}, decision.event_body() | {"decision_id": 0})


def test_a_shadow_never_changes_the_answer_and_records_each_disagreement() -> None:
    world, candidate = _world()
    before = {a: world.decide(action=a) for a in (WRITE, DOCKER, Action.for_tool("read"))}
    _shadow(world, candidate, "job:job-1")
    for action, unshadowed in before.items():
        decision = world.decide(action=action)
        assert _answer(decision) == _answer(unshadowed)
        assert [s.policy_hash_b64u for s in decision.shadows] == [candidate]
    write = world.decide(action=WRITE)
    assert write.allowed
    (shadow,) = write.disagreements()
    assert (shadow.scope, shadow.allowed, shadow.reason_code) == (
        "job:job-1",
        False,
        ReasonCode.TOOL_NOT_ALLOWED,
    )
    docker = world.decide(action=DOCKER)
    assert docker.reason_code is ReasonCode.TOOL_NOT_ALLOWED
    assert [s.decision for s in docker.disagreements()] == ["allow"]
    # both agree on read: a verdict, no disagreement
    assert world.decide().disagreements() == ()


def test_scopes_cover_the_job_its_subject_or_everything() -> None:
    for scope, covered in (
        ("job:job-1", True),
        ("sub:agent:alpha", True),
        ("*", True),
        ("job:job-2", False),
        ("sub:agent:beta", False),
    ):
        world, candidate = _world()
        _shadow(world, candidate, scope)
        assert bool(world.decide(action=WRITE).disagreements()) is covered, scope


def test_one_verdict_per_candidate_and_none_for_the_jobs_own_wpc() -> None:
    world, candidate = _world()
    _shadow(world, candidate, "*")
    _shadow(world, candidate, "job:job-1")
    assert [s.scope for s in world.decide(action=WRITE).shadows] == ["job:job-1"]
    same = World(WPC_EXAMPLE)
    _shadow(same, same.wpc, "*")
    assert same.decide(action=WRITE).shadows == ()


def test_the_steps_that_do_not_read_the_rules_decide_for_the_candidate_too() -> None:
    world, candidate = _world()
    _shadow(world, candidate, "*")
    # denied before step 7 (expired): any candidate is denied alike, so no verdict
    late = world.decide(action=DOCKER, at=AT + 10_000)
    assert late.reason_code is ReasonCode.TOKEN_EXPIRED and late.shadows == ()
    # tools only: a full stop would revoke the token, denying before step 7
    world.ledger.halt("job:job-1", model_egress=False)
    # a halt applies to the candidate's allow as to the real one
    halted = world.decide(action=DOCKER)
    assert halted.reason_code is ReasonCode.TOOL_NOT_ALLOWED
    assert [(s.allowed, s.reason_code) for s in halted.shadows] == [
        (False, ReasonCode.AGENT_HALTED)
    ]
    assert halted.disagreements() == ()


def test_a_replayed_nonce_turns_the_candidates_allow_too() -> None:
    world, candidate = _world()
    _shadow(world, candidate, "*")
    read = world.decide()
    turned = replayed(read)
    assert [s.reason_code for s in turned.shadows] == [ReasonCode.NONCE_REPLAYED]
    assert turned.disagreements() == ()
    # a candidate that denied keeps its own reason
    write = replayed(world.decide(action=WRITE))
    assert [s.reason_code for s in write.shadows] == [ReasonCode.TOOL_NOT_ALLOWED]


def test_shadow_false_judges_no_candidate() -> None:
    world, candidate = _world()
    _shadow(world, candidate, "*")
    view = DecisionView.of(world.ledger.state, synced_at=AT - 1)
    request = CallRequest(world.token, "job-1", WRITE, "n")
    assert decide_call(view, request, AT, SETTINGS, shadow=False).shadows == ()


def test_the_candidate_must_be_active_and_signed_by_a_policy_admin() -> None:
    world, candidate = _world()
    keys = world.ledger.keys
    unknown = "A" * 43
    body = {"policy_hash_b64u": unknown, "scope": "*"}
    assert world.ledger.refused(keys.policy_admin, "policy.shadowed", "shadow:*", body).code is (
        ReasonCode.WPC_UNKNOWN
    )
    body = {"policy_hash_b64u": candidate, "scope": "*"}
    assert world.ledger.refused(keys.operator, "policy.shadowed", "shadow:*", body).code is (
        ReasonCode.ROLE_NOT_ALLOWED
    )
    assert world.ledger.refused(keys.policy_admin, "policy.shadowed", "shadow:x", body).code is (
        ReasonCode.SCHEMA_VALIDATION_FAILED
    )
    world.ledger.ok(
        keys.policy_admin,
        "policy.revoked",
        f"policy:{candidate}",
        {"policy_hash_b64u": candidate, "reason": "bad"},
    )
    assert world.ledger.refused(keys.policy_admin, "policy.shadowed", "shadow:*", body).code is (
        ReasonCode.WPC_REVOKED
    )


def test_ending_a_shadow() -> None:
    world, candidate = _world()
    keys = world.ledger.keys
    end = {"scope": "*", "reason": "trial over"}
    assert world.ledger.refused(keys.policy_admin, "policy.shadow_ended", "shadow:*", end).code is (
        ReasonCode.SHADOW_NOT_ACTIVE
    )
    _shadow(world, candidate, "*")
    world.ledger.ok(keys.policy_admin, "policy.shadow_ended", "shadow:*", end)
    record = world.ledger.state.shadows["*"]
    assert record["active"] is False and record["ended_reason"] == "trial over"
    assert world.decide(action=WRITE).shadows == ()
    assert world.ledger.rows[-1].table == "shadows"
    assert world.ledger.refused(keys.policy_admin, "policy.shadow_ended", "shadow:*", end).code is (
        ReasonCode.SHADOW_NOT_ACTIVE
    )


def test_call_shadowed_is_recorded_by_the_authorizer_with_its_derived_id() -> None:
    world, candidate = _world()
    _shadow(world, candidate, "*")
    decision = world.decide(action=WRITE)
    (shadow,) = decision.disagreements()
    body = shadowed_body(decision, shadow)
    stream = "job:job-1"
    event_id = shadow_event_id(decision.decision_id, candidate)
    ledger, keys = world.ledger, world.ledger.keys
    refused = ledger.refused(keys.authorizer, "call.shadowed", stream, body)
    assert refused.code is ReasonCode.SCHEMA_VALIDATION_FAILED  # a random event id
    agreeing = body | {"shadow_decision": "allow", "shadow_reason_code": "OK"}
    refused = ledger.refused(keys.authorizer, "call.shadowed", stream, agreeing, event_id=event_id)
    assert refused.code is ReasonCode.SCHEMA_VALIDATION_FAILED
    mismatched = body | {"shadow_reason_code": "OK"}
    refused = ledger.refused(
        keys.authorizer, "call.shadowed", stream, mismatched, event_id=event_id
    )
    assert refused.code is ReasonCode.SCHEMA_VALIDATION_FAILED
    refused = ledger.refused(keys.runtime, "call.shadowed", stream, body, event_id=event_id)
    assert refused.code is ReasonCode.ROLE_NOT_ALLOWED
    accepted = ledger.ok(keys.authorizer, "call.shadowed", stream, body, event_id=event_id)
    assert not accepted.rows


def test_the_summary_counts_which_way_each_candidate_disagreed() -> None:
    world, candidate = _world()
    _shadow(world, candidate, "*")
    bodies = [
        shadowed_body(d, s)
        for d in (
            world.decide(action=WRITE),
            world.decide(action=WRITE),
            world.decide(action=DOCKER),
        )
        for s in d.disagreements()
    ]
    summary = ShadowSummary()
    for position, body in enumerate(bodies):
        summary.add(position, body)
    assert summary.to_dict() == {
        "shadowed": 3,
        "would_deny": 2,
        "would_allow": 1,
        "would_deny_by_action": {"tool:write": 2},
        "would_allow_by_action": {"tool:docker_socket": 1},
        "by_shadow_policy": {candidate: 3},
        "by_reason": {"OK -> TOOL_NOT_ALLOWED": 2, "TOOL_NOT_ALLOWED -> OK": 1},
    }
    other_job = ShadowSummary(ShadowSelector(job_id="job-2"))
    decided = datetime.fromisoformat(bodies[0]["decided_at"].replace("Z", "+00:00"))
    later = ShadowSummary(ShadowSelector(since=decided + timedelta(days=1)))
    for body in bodies:
        other_job.add(None, body)
        later.add(None, body)
    assert other_job.shadowed == 0 and later.shadowed == 0
    assert len({str(uuid.UUID(b["decision_id"])) for b in bodies}) == 3
