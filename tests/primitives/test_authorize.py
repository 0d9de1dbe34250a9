"""The authorize decision (ledger/authorize.py): every check, in its order,
on a ledger state built by the real rules."""

from __future__ import annotations

import pytest

from ledger.authorize import (
    Action,
    CallRequest,
    DecisionView,
    recorder_refusal,
    replayed,
    unavailable,
    unrecordable,
)
from ledger.errors import ReasonCode
from ledger.tokens import build_claims, issue_token
from ledger.verify import Rejected
from tests.primitives._authorize_support import AT, READ, World
from tests.primitives._support import NOW, WPC_EXAMPLE


def test_a_valid_call_is_allowed_and_names_what_it_checked() -> None:
    world = World()
    decision = world.decide()
    assert decision.allowed and decision.reason_code is ReasonCode.OK
    assert decision.policy_hash_b64u == world.wpc
    assert decision.token_jti == world.body["jti"]
    assert decision.token_scope_hash_b64u == world.body["token_scope_hash_b64u"]
    assert decision.to_dict()["decision"] == "allow" and decision.to_dict()["halt"] is None
    assert world.decide(action=Action.for_model("anthropic", "claude")).allowed


def test_an_unreadable_state_denies_first_and_still_names_the_token() -> None:
    world = World()
    view = DecisionView.of(world.ledger.state, synced_at=AT).failed("connection refused")
    decision = world.decide(view=view)
    assert decision.reason_code is ReasonCode.LEDGER_UNAVAILABLE
    assert decision.token_jti == world.body["jti"]
    # before the token's own checks: even a broken token gets this code
    assert world.decide("x.y.z", view=view).reason_code is ReasonCode.LEDGER_UNAVAILABLE


@pytest.mark.parametrize("synced", [None, AT - 5.5])
def test_a_state_older_than_the_bound_is_stale(synced: float | None) -> None:
    world = World()
    view = DecisionView.of(world.ledger.state, synced_at=synced)
    assert world.decide(view=view).reason_code is ReasonCode.STATE_STALE


def test_token_signature_and_issuer_role() -> None:
    world = World()
    keys = world.ledger.keys
    assert world.decide("a.b.c").reason_code is ReasonCode.TOKEN_MALFORMED
    # the outsider is not registered: its kid names no key
    assert world.decide(world.signed(keys.outsider)).reason_code is (
        ReasonCode.TOKEN_ISSUER_NOT_ALLOWED
    )
    # a registered key without the issuer role
    assert world.decide(world.signed(keys.runtime)).reason_code is (
        ReasonCode.TOKEN_ISSUER_NOT_ALLOWED
    )
    head, claims, _ = world.token.split(".")
    _, _, other_signature = world.signed(keys.issuer, sub="agent:beta").split(".")
    forged = f"{head}.{claims}.{other_signature}"
    assert world.decide(forged).reason_code is ReasonCode.TOKEN_SIGNATURE_INVALID
    world.ledger.state.keys[keys.issuer.did].revoked = True
    assert world.decide().reason_code is ReasonCode.TOKEN_ISSUER_NOT_ALLOWED


def test_expiry_comes_before_revocation() -> None:
    world = World()
    jti = world.body["jti"]
    world.ledger.ok(
        world.ledger.keys.operator, "token.revoked", f"token:{jti}", {"jti": jti, "reason": "leak"}
    )
    assert world.decide().reason_code is ReasonCode.TOKEN_REVOKED
    expired = world.decide(at=NOW + 900)
    assert expired.reason_code is ReasonCode.TOKEN_EXPIRED
    early = world.decide(world.signed(world.ledger.keys.issuer, now=AT + 3600), at=AT)
    assert early.reason_code is ReasonCode.TOKEN_BAD_LIFETIME


def test_a_token_the_ledger_did_not_record_is_unknown() -> None:
    world = World()
    # same claims and jti, signed by the issuer, but not the recorded token
    twin = world.signed(world.ledger.keys.issuer, jti=world.body["jti"], sub="agent:beta")
    assert world.decide(twin).reason_code is ReasonCode.TOKEN_UNKNOWN
    assert world.decide(world.signed(world.ledger.keys.issuer)).reason_code is (
        ReasonCode.TOKEN_UNKNOWN
    )


def test_job_binding() -> None:
    world = World()
    body_b, token_b = world._start("job-2")
    # a token captured from job 2 replayed for job 1
    replay = world.decide(token_b, job="job-1")
    assert replay.reason_code is ReasonCode.JOB_BINDING_MISMATCH
    assert replay.token_jti == body_b["jti"]
    assert world.decide(job="job-9").reason_code is ReasonCode.JOB_UNKNOWN
    _, _, token_c = world.ledger.approved_job("job-3")
    assert world.decide(token_c, job="job-3").reason_code is ReasonCode.RUN_NOT_STARTED
    world.ledger.ok(
        world.ledger.keys.runtime, "run.completed", "job:job-1", {"job_id": "job-1", "outputs": []}
    )
    assert world.decide().reason_code is ReasonCode.RUN_ALREADY_COMPLETED


def test_policy_pin_must_be_the_jobs_active_wpc() -> None:
    world = World()
    other = world.ledger.publish_wpc({**WPC_EXAMPLE, "purpose": "drift"})
    token, body = world.ledger.token(job="job-1", policy=other)
    world.ledger.ok(world.ledger.keys.issuer, "token.issued", f"token:{body['jti']}", body)
    drift = world.decide(token)
    assert drift.reason_code is ReasonCode.POLICY_PIN_MISMATCH
    assert drift.policy_hash_b64u == world.wpc
    world.ledger.ok(
        world.ledger.keys.policy_admin,
        "policy.revoked",
        f"policy:{world.wpc}",
        {"policy_hash_b64u": world.wpc, "reason": "withdrawn"},
    )
    assert world.decide().reason_code is ReasonCode.WPC_REVOKED


def test_scope_hash_must_be_the_urms() -> None:
    world = World()
    claims = build_claims(
        sub="agent:alpha",
        aud="clawproxy",
        scope=["tools:read"],
        now=NOW,
        policy_hash_b64u=world.wpc,
        mission_id="job-1",
    )
    issued = issue_token(claims, world.ledger.keys.issuer)
    body = issued.event_body(world.ledger.keys.issuer.did)
    world.ledger.ok(world.ledger.keys.issuer, "token.issued", f"token:{body['jti']}", body)
    decision = world.decide(issued.token)
    assert decision.reason_code is ReasonCode.TOKEN_SCOPE_HASH_MISMATCH


def test_tool_rules_of_the_wpc() -> None:
    world = World()
    assert world.decide(action=Action.for_tool("docker_socket")).reason_code is (
        ReasonCode.TOOL_NOT_ALLOWED
    )
    # not in the allow list: an allow list names everything allowed
    assert world.decide(action=Action.for_tool("rm")).reason_code is ReasonCode.TOOL_NOT_ALLOWED


def test_model_rules_of_the_wpc_fail_closed() -> None:
    world = World()
    assert world.decide(action=Action.for_model("shady", "m")).reason_code is (
        ReasonCode.MODEL_NOT_ALLOWED
    )
    assert world.decide(action=Action.for_model("openai", "gpt")).reason_code is (
        ReasonCode.MODEL_NOT_ALLOWED
    )
    # a WPC without any model-call rule allows no model call
    plain = World(WPC_EXAMPLE)
    assert plain.decide(action=Action.for_model("anthropic", "claude")).reason_code is (
        ReasonCode.MODEL_NOT_ALLOWED
    )
    assert plain.decide().allowed


def test_a_full_stop_revokes_the_token_and_the_denial_names_the_halt() -> None:
    world = World()
    world.ledger.halt("sub:agent:alpha")
    halted = world.decide()
    assert halted.reason_code is ReasonCode.TOKEN_REVOKED
    assert (halted.halt_target, halted.halt_state) == ("sub:agent:alpha", "committed")
    assert halted.to_dict()["halt"] == {"target": "sub:agent:alpha", "state": "committed"}
    model = world.decide(action=Action.for_model("anthropic", "claude"))
    assert model.reason_code is ReasonCode.TOKEN_REVOKED


def test_partial_halts_come_after_the_wpc_and_deny_only_what_they_name() -> None:
    world = World()
    world.ledger.halt("sub:agent:alpha", "tools only", model_egress=False)
    halted = world.decide()
    assert halted.reason_code is ReasonCode.AGENT_HALTED
    assert (halted.halt_target, halted.halt_state) == ("sub:agent:alpha", "committed")
    # the WPC's refusal is checked first
    denied = world.decide(action=Action.for_tool("rm"))
    assert denied.reason_code is ReasonCode.TOOL_NOT_ALLOWED and denied.halt_target is None
    # model egress is not halted: model calls still run
    assert world.decide(action=Action.for_model("anthropic", "claude")).allowed
    # a halt that stops model egress only lets tools run
    world.ledger.state.halts["sub:agent:alpha"]["deny_tools"] = False
    world.ledger.state.halts["sub:agent:alpha"]["deny_model_egress"] = True
    assert world.decide().allowed
    model = world.decide(action=Action.for_model("anthropic", "claude"))
    assert model.reason_code is ReasonCode.AGENT_HALTED


def test_the_nonce_outcome_turns_an_allow_into_a_deny() -> None:
    decision = World().decide()
    assert replayed(decision).reason_code is ReasonCode.NONCE_REPLAYED
    assert not replayed(decision).allowed
    lost = unavailable(decision, "nonce store down")
    assert lost.reason_code is ReasonCode.LEDGER_UNAVAILABLE and not lost.allowed
    assert lost.decision_id == decision.decision_id


@pytest.mark.parametrize(
    ("job", "nonce"), [("job 1", "n"), ("job-1", ""), ("job-1", " n"), ("job-1", "n" * 201)]
)
def test_a_request_is_checked_before_any_decision(job: str, nonce: str) -> None:
    with pytest.raises(ValueError):
        CallRequest("a.b.c", job, READ, nonce)


@pytest.mark.parametrize(
    "text", ["tool:", "tool:a b", "model:anthropic", "model:/m", "model:a/b/c", "exec"]
)
def test_bad_actions_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Action.parse(text)


def test_the_recorder_refusal_is_the_code_the_ledger_would_give_the_decision() -> None:
    """An allow signed by a key the ledger refuses would be quarantined: the service
    asks :func:`recorder_refusal` and denies with that code."""
    world = World()
    keys, ledger = world.ledger.keys, world.ledger
    view = DecisionView.of(ledger.state, synced_at=AT - 1)
    assert recorder_refusal(view, keys.authorizer.did) is None
    unknown = recorder_refusal(view, keys.outsider.did)
    assert unknown is not None and unknown[0] is ReasonCode.UNKNOWN_SIGNER
    assert "--role authorizer" in unknown[1]
    wrong_role = recorder_refusal(view, keys.operator.did)
    assert wrong_role is not None and wrong_role[0] is ReasonCode.ROLE_NOT_ALLOWED
    # the very decision signed by each key, judged as the processor judges it
    decision = world.decide()
    assert decision.allowed
    for key, code in (
        (keys.outsider, ReasonCode.UNKNOWN_SIGNER),
        (keys.operator, ReasonCode.ROLE_NOT_ALLOWED),
    ):
        outcome = ledger.submit(key, decision.event_type, decision.stream, decision.event_body())
        assert isinstance(outcome, Rejected) and outcome.code is code
        turned = unrecordable(decision, code, "x")
        assert not turned.allowed and turned.reason_code is code
    did = keys.authorizer.did
    ledger.ok(keys.admin, "key.revoked", f"key:{did}", {"did": did, "reason": "rotated"})
    revoked = recorder_refusal(DecisionView.of(ledger.state, synced_at=AT - 1), did)
    assert revoked is not None and revoked[0] is ReasonCode.SIGNER_REVOKED
