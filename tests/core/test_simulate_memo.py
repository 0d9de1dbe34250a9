"""The simulation's memo of decisions (ledger/simulate.py) gives exactly what
:func:`ledger.authorize.decide_call` gives afresh: across a token's expiry, to
the millisecond, and across a halt that changes the state mid-run."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

import ledger.simulate as simulate
from bench.simulate import RecordedLedger, recorded_ledger
from ledger.authorize import Action, Decision, decide_call
from ledger.envelope import format_timestamp
from ledger.errors import ReasonCode
from ledger.events import sign_event_bytes
from ledger.replay import StoredEvent
from ledger.roles import Role
from ledger.shadow import ShadowVerdict
from ledger.simulate import SimulatedCall, Simulation
from ledger.wpc import validate_wpc

TTL_S = 300
CANDIDATE: dict[str, Any] = {
    "wpc_version": "1",
    "tools": {"allow": ["read"], "deny": ["exec", "write"]},
    "model_calls": {"allowed_providers": ["anthropic"]},
}


def _at(seconds: float) -> str:
    return format_timestamp(datetime.fromtimestamp(seconds, UTC))


Recorded = tuple[RecordedLedger, list[StoredEvent], list[dict[str, Any]]]


@pytest.fixture(scope="module")
def recorded() -> Recorded:
    """Decisions on both sides of the tokens' expiry (to the millisecond) and of a
    halt of one job recorded mid-run."""
    ledger = recorded_ledger(300, jobs=3, ttl_s=TTL_S)
    exp = ledger.start + TTL_S
    bodies = list(ledger.bodies)
    for i, offset in enumerate((-1.0, -0.002, -0.001, 0.0, 0.001, 0.002, 1.0)):
        for body in ledger.bodies[i * 5 : i * 5 + 3]:
            bodies.append(body | {"decision_id": f"{body['decision_id'][:-3]}{i:03d}",
                                  "decided_at": _at(exp + offset)})  # fmt: skip
    bodies.sort(key=lambda body: body["decided_at"])
    operator = ledger.keys[Role.OPERATOR]
    halted_at = ledger.start + 200
    _, raw = sign_event_bytes(
        operator,
        "agent.halted",
        "halt:job:job-sim-0",
        {"target": "job:job-sim-0", "reason": "memo drill"},
        occurred_at=_at(halted_at),
    )
    halt = StoredEvent(raw, recorded_at=datetime.fromtimestamp(halted_at, UTC))
    return ledger, [*ledger.control, halt], bodies


def _simulate(
    events: list[StoredEvent], bodies: list[dict[str, Any]], *, keep_all: bool = True
) -> Simulation:
    candidate = validate_wpc(CANDIDATE)
    simulation = (
        Simulation(candidate, keep=lambda call: True) if keep_all else Simulation(candidate)
    )
    for position, body in enumerate(bodies):
        simulation.expect(position, body)
    for stored in events:
        simulation.feed(stored)
    simulation.finish()
    assert simulation.fold.broken is None, simulation.fold.broken
    return simulation


def test_memoised_decisions_are_the_fresh_ones(
    recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger, events, bodies = recorded
    decided = 0

    def counting(*args: Any, **kwargs: Any) -> Decision:
        nonlocal decided
        decided += 1
        return decide_call(*args, **kwargs)

    monkeypatch.setattr(simulate, "decide_call", counting)
    memoised = _simulate(events, bodies)
    assert decided < len(bodies) // 10  # the memo answered most calls
    monkeypatch.setattr(simulate, "_time_class", lambda token, now: None)
    decided = 0
    fresh = _simulate(events, bodies)
    assert decided == len(bodies)
    assert memoised.calls == fresh.calls
    assert memoised.summary == fresh.summary
    codes = {call.simulated.reason_code for call in fresh.calls}
    # the run crosses what the memo must not carry over: expiry, and a halt (which
    # revokes the halted job's token)
    assert {ReasonCode.OK, ReasonCode.TOKEN_EXPIRED, ReasonCode.TOKEN_REVOKED} <= codes
    exp = _at(ledger.start + TTL_S)
    at_exp = [call for call in fresh.calls if call.simulated.decided_at == exp]
    assert at_exp and all(c.simulated.reason_code is ReasonCode.TOKEN_EXPIRED for c in at_exp)
    just_before = _at(ledger.start + TTL_S - 0.001)
    assert any(
        call.simulated.decided_at == just_before and call.simulated.allowed for call in fresh.calls
    )


def test_by_default_memoised_runs_keep_and_count_what_fresh_runs_do(
    recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, events, bodies = recorded
    memoised = _simulate(events, bodies, keep_all=False)
    monkeypatch.setattr(simulate, "_time_class", lambda token, now: None)
    fresh = _simulate(events, bodies, keep_all=False)
    assert memoised.calls == fresh.calls
    assert memoised.summary == fresh.summary
    summary = fresh.summary
    assert summary.newly_denied > 0 and summary.unchanged > 0
    assert (
        summary.simulated
        == len(bodies)
        == summary.unchanged + summary.newly_denied + (summary.newly_allowed)
    )
    assert len(fresh.calls) == len(bodies) - summary.unchanged


def test_a_memoised_decision_is_rebuilt_with_every_field() -> None:
    action = Action.for_tool("read")
    memo = Decision(
        "d-1", False, ReasonCode.AGENT_HALTED, "halted", "job-1", action,
        "2026-11-30T00:00:00.000Z", "cst_1", "h" * 43, "p" * 43, "job:job-1", "seen",
        "3f2c0a4e-1b7d-4c55-9a61-0d2e8f7b9c10",
        (ShadowVerdict("*", "c" * 43, False, ReasonCode.TOOL_NOT_ALLOWED, "no"),),
    )  # fmt: skip
    # a field added to Decision without a default fails here until _again copies it
    assert all(getattr(memo, f.name) != f.default for f in dataclasses.fields(Decision))
    again = simulate._again(memo, "d-2", "2026-11-30T00:00:01.000Z")
    assert again == dataclasses.replace(
        memo, decision_id="d-2", decided_at="2026-11-30T00:00:01.000Z"
    )


def test_time_classes_split_where_decide_call_compares() -> None:
    token = {"iat": 1_000, "exp": 2_000}
    classes = {
        now: simulate._time_class(token, now)
        for now in (939.999, 940.0, 1_500.0, 1_999.999, 2_000.0, 2_000.001)
    }
    assert classes == {
        939.999: (False, True),
        940.0: (False, False),
        1_500.0: (False, False),
        1_999.999: (False, False),
        2_000.0: (True, False),
        2_000.001: (True, False),
    }
    assert simulate._time_class({"iat": 1_000, "exp": "2000"}, 1_500.0) is None
    assert simulate._time_class(None, 1_500.0) == (False, False)


def test_simulated_call_keeps_the_recorded_code_text(recorded: Recorded) -> None:
    _, events, bodies = recorded
    calls = _simulate(events, bodies).calls
    by_id = {body["decision_id"]: body for body in bodies}
    assert all(
        isinstance(call, SimulatedCall)
        and call.recorded_code == by_id[call.simulated.decision_id]["reason_code"]
        for call in calls
    )
