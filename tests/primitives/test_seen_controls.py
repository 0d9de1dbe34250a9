"""Deny early, allow late (ledger/seen_controls.py, ADR 0025): which control
events seen before commit take effect, what they deny, and what ends them."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from ledger.authorize import Action, DecisionView
from ledger.calls import Decision
from ledger.crypto import KeyPair
from ledger.envelope import sign_envelope
from ledger.errors import ReasonCode
from ledger.events import EVENT_ENVELOPE_TYPE
from ledger.seen_controls import (
    Ignored,
    SeenControl,
    SeenControls,
    judge_seen,
    resolution,
)
from ledger.types.decisions import CallAuthorized, CallDenied
from ledger.verify import Rejected, Verified, verify_message
from tests.primitives._authorize_support import AT, World
from tests.primitives._support import NOW_TS

MODEL = Action.for_model("anthropic", "claude")


def _verified(signer: KeyPair, event_type: str, stream: str, body: dict[str, Any]) -> Verified:
    payload = {
        "event_type": event_type,
        "event_id": str(uuid.uuid4()),
        "stream": stream,
        "occurred_at": NOW_TS,
        "producer": signer.did,
        "body": body,
    }
    verified = verify_message(sign_envelope(EVENT_ENVELOPE_TYPE, payload, signer).to_bytes())
    assert isinstance(verified, Verified), verified
    return verified


def _seen(world: World, signer: KeyPair, event_type: str, stream: str, body: Any) -> Any:
    return judge_seen(world.ledger.state, _verified(signer, event_type, stream, body), AT)


def _decide(world: World, seen: SeenControls, **kw: Any) -> Decision:
    view = DecisionView.of(world.ledger.state, synced_at=AT - 1, seen_controls=seen)
    return world.decide(view=view, **kw)


def _seen_halt(world: World, target: str, reason: str = "incident", **flags: bool) -> Any:
    """An operator's halt of ``target`` as the authorize service reads it."""
    body = {"target": target, "reason": reason, **flags}
    return _seen(world, world.ledger.keys.operator, "agent.halted", f"halt:{target}", body)


def _holding(*controls: Any) -> SeenControls:
    seen = SeenControls()
    for control in controls:
        assert isinstance(control, SeenControl), control
        assert seen.add(control)
    return seen


def test_a_seen_halt_denies_with_halt_state_seen_and_names_its_event() -> None:
    world = World()
    halt = _seen_halt(world, "job:job-1")
    seen = _holding(halt)
    decision = _decide(world, seen)
    assert decision.reason_code is ReasonCode.AGENT_HALTED
    assert (decision.halt_target, decision.halt_state) == ("job:job-1", "seen")
    assert decision.seen_event_id == halt.event_id
    assert decision.to_dict()["halt"] == {"target": "job:job-1", "state": "seen"}
    body = decision.event_body()
    assert body["seen_event_id"] == halt.event_id
    CallDenied.model_validate(body)
    # the same state without the overlay allows: the overlay alone denied
    assert world.decide().allowed


def test_a_committed_halt_wins_over_a_seen_one() -> None:
    world = World()
    halt = _seen_halt(world, "job:job-1", "seen", model_egress=False)
    world.ledger.halt("job:job-1", "committed", model_egress=False)
    decision = _decide(world, _holding(halt))
    assert decision.halt_state == "committed" and decision.seen_event_id is None


def test_a_seen_halt_follows_its_tools_and_model_egress_flags() -> None:
    world = World()
    halt = _seen_halt(world, "sub:agent:alpha", "tools only", model_egress=False)
    seen = _holding(halt)
    assert _decide(world, seen).reason_code is ReasonCode.AGENT_HALTED
    assert _decide(world, seen, action=MODEL).allowed


@pytest.mark.parametrize(
    ("event_type", "subject", "code"),
    [
        ("token.revoked", "jti", ReasonCode.TOKEN_REVOKED),
        ("key.revoked", "issuer", ReasonCode.TOKEN_ISSUER_NOT_ALLOWED),
        ("policy.revoked", "wpc", ReasonCode.WPC_REVOKED),
    ],
)
def test_seen_revocations_deny_with_their_codes(
    event_type: str, subject: str, code: ReasonCode
) -> None:
    world = World()
    keys = world.ledger.keys
    if subject == "jti":
        signer, stream = keys.operator, f"token:{world.body['jti']}"
        body = {"jti": world.body["jti"], "reason": "leaked"}
    elif subject == "issuer":
        signer, stream = keys.admin, f"key:{keys.issuer.did}"
        body = {"did": keys.issuer.did, "reason": "stolen"}
    else:
        signer, stream = keys.policy_admin, f"policy:{world.wpc}"
        body = {"policy_hash_b64u": world.wpc, "reason": "unsafe"}
    control = _seen(world, signer, event_type, stream, body)
    decision = _decide(world, _holding(control))
    assert decision.reason_code is code
    assert decision.seen_event_id == control.event_id
    assert decision.halt_target is None and decision.halt_state is None
    assert "not yet committed" in decision.detail


def test_forged_or_misrouted_controls_are_refused_and_permissive_ones_ignored() -> None:
    world = World()
    keys = world.ledger.keys
    body = {"target": "*", "reason": "forged"}
    unknown = _seen(world, keys.outsider, "agent.halted", "halt:*", body)
    assert isinstance(unknown, Rejected) and unknown.code is ReasonCode.UNKNOWN_SIGNER
    wrong_role = _seen(world, keys.runtime, "agent.halted", "halt:*", body)
    assert isinstance(wrong_role, Rejected) and wrong_role.code is ReasonCode.ROLE_NOT_ALLOWED
    world.ledger.state.keys[keys.approver.did].roles = frozenset(
        world.ledger.state.keys[keys.operator.did].roles
    )
    world.ledger.state.keys[keys.approver.did].revoked = True
    revoked = _seen(world, keys.approver, "agent.halted", "halt:*", body)
    assert isinstance(revoked, Rejected) and revoked.code is ReasonCode.SIGNER_REVOKED
    stream = _seen(world, keys.operator, "agent.halted", "halt:job:other", body)
    assert isinstance(stream, Rejected) and stream.code is ReasonCode.SCHEMA_VALIDATION_FAILED
    root = _seen(
        world,
        keys.admin,
        "key.revoked",
        f"key:{keys.admin.did}",
        {"did": keys.admin.did, "reason": "x"},
    )
    assert isinstance(root, Rejected) and root.code is ReasonCode.ROLE_NOT_ALLOWED
    resume = _seen(
        world, keys.operator, "agent.resumed", "halt:*", {"target": "*", "reason": "over"}
    )
    assert resume == Ignored("agent.resumed")


def test_a_tampered_record_fails_the_stateless_checks() -> None:
    world = World()
    raw = sign_envelope(
        EVENT_ENVELOPE_TYPE,
        {
            "event_type": "agent.halted",
            "event_id": str(uuid.uuid4()),
            "stream": "halt:*",
            "occurred_at": NOW_TS,
            "producer": world.ledger.keys.operator.did,
            "body": {"target": "*", "reason": "incident"},
        },
        world.ledger.keys.operator,
    ).to_bytes()
    tampered = raw.replace(b"incident", b"incidenT")
    verdict = verify_message(tampered)
    assert isinstance(verdict, Rejected)


def test_resolution_commits_lifts_or_waits() -> None:
    world = World()
    halt = _seen_halt(world, "*")
    assert resolution(halt, None, None) is None
    assert resolution(halt, halt.payload_hash_b64u, None) == "committed"
    lifted = resolution(halt, "x" * 43, None)
    assert isinstance(lifted, tuple) and "DUPLICATE_EVENT_CONFLICT" in lifted[1]
    assert resolution(halt, None, "SIGNER_REVOKED: revoked") == (
        "lifted",
        "SIGNER_REVOKED: revoked",
    )


def test_the_overlay_drops_committed_lifts_refused_and_is_bounded() -> None:
    world = World()
    halts = [_seen_halt(world, "*", str(i)) for i in range(3)]
    seen = SeenControls(max_entries=2)
    assert seen.add(halts[0]) and seen.add(halts[1])
    assert not seen.add(halts[0])  # held already
    assert not seen.add(halts[2]) and seen.counts["overflow"] == 1
    assert _decide(world, seen).seen_event_id == halts[0].event_id
    seen.note_denial(halts[0].event_id)
    lift = seen.lift(halts[0].event_id, "SIGNER_REVOKED: x", AT)
    assert lift is not None and lift.denied == 1
    # the other seen halt of * still denies: a lift ends one event's effect only
    assert _decide(world, seen).seen_event_id == halts[1].event_id
    assert seen.committed(halts[1].event_id) is not None
    assert len(seen) == 0 and _decide(world, seen).allowed
    status = seen.status()
    assert (status["seen"], status["lifted"], status["committed"]) == (2, 1, 1)
    assert status["recent_lifts"][0]["event_id"] == halts[0].event_id


def test_decision_bodies_carry_seen_event_id_only_on_seen_denials() -> None:
    world = World()
    allowed = world.decide()
    assert "seen_event_id" not in allowed.event_body()
    body = allowed.event_body() | {"seen_event_id": str(uuid.uuid4())}
    CallAuthorized.model_validate(body)  # the schema takes it; the rule refuses it
    authorizer = world.ledger.keys.authorizer
    refused = world.ledger.refused(
        authorizer, "call.authorized", "job:job-1", body, event_id=allowed.decision_id
    )
    assert refused.code is ReasonCode.SCHEMA_VALIDATION_FAILED
    seen_halt = allowed.event_body() | {
        "reason_code": "AGENT_HALTED",
        "halt_target": "*",
        "halt_state": "seen",
    }
    refused = world.ledger.refused(
        authorizer, "call.denied", "job:job-1", seen_halt, event_id=allowed.decision_id
    )
    assert "seen_event_id" in refused.detail
    denied = _decide(world, SeenControls(), action=Action.for_tool("rm"))
    assert "seen_event_id" not in denied.event_body()
