"""The typed outcome of a publish: its JSON document and the errors it stands for."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from claw_ledger.config import load_settings
from claw_ledger.demo import _Runner
from ledger.errors import DemoFailed, ReasonCode, RejectedError, ServiceError
from producers.outcome import Committed, PublishOutcome, Quarantined, TimedOut
from producers.sdk import Position

SENT = Position("9b2f0c4e-0000-4000-8000-000000000001", "halt:job:42", "claw.ingress", 3, 17)
KAFKA_FIELDS = {
    "event_id": SENT.event_id,
    "stream": "halt:job:42",
    "topic": "claw.ingress",
    "partition": 3,
    "offset": 17,
}


def test_a_committed_outcome_prints_its_position_and_raises_nothing() -> None:
    outcome = PublishOutcome("agent.halted", SENT, Committed(41, 7, "chain-hash"))
    assert outcome.check() is outcome
    assert (outcome.status, outcome.position, outcome.event_id) == ("committed", 41, SENT.event_id)
    assert outcome.to_dict() == {
        "event_type": "agent.halted",
        **KAFKA_FIELDS,
        "status": "committed",
        "position": 41,
        "ledger_seq": 7,
        "chain_hash": "chain-hash",
    }


def test_a_quarantined_outcome_is_a_rejection_with_its_code() -> None:
    outcome = PublishOutcome("agent.halted", SENT, Quarantined("SIGNER_REVOKED", "key revoked"))
    assert outcome.position is None
    assert outcome.to_dict() == {
        "event_type": "agent.halted",
        **KAFKA_FIELDS,
        "status": "quarantined",
        "reason_code": "SIGNER_REVOKED",
        "detail": "key revoked",
    }
    with pytest.raises(RejectedError) as caught:
        outcome.check("agent.halted")
    assert caught.value.code is ReasonCode.SIGNER_REVOKED
    assert str(caught.value) == "SIGNER_REVOKED: the ledger refused agent.halted: key revoked"


def test_an_unknown_reason_code_is_kept_verbatim_and_raised_as_internal() -> None:
    verdict = Quarantined("CODE_FROM_A_NEWER_PROCESSOR", "?")
    outcome = PublishOutcome("agent.halted", SENT, verdict)
    assert outcome.to_dict()["reason_code"] == "CODE_FROM_A_NEWER_PROCESSOR"
    with pytest.raises(RejectedError) as caught:
        outcome.check()
    assert caught.value.code is ReasonCode.INTERNAL_ERROR


def test_a_timed_out_outcome_is_a_service_error_with_the_hint() -> None:
    outcome = PublishOutcome("agent.halted", SENT, TimedOut(30.0))
    assert outcome.status == "timed_out"
    with pytest.raises(ServiceError) as caught:
        outcome.check()
    assert not isinstance(caught.value, RejectedError)
    assert caught.value.message == (
        f"event {SENT.event_id} was published but no verdict arrived in 30s"
    )
    assert caught.value.hint is not None and "claw-ledger up" in caught.value.hint


def test_an_outcome_not_awaited_is_published() -> None:
    outcome = PublishOutcome("agent.halted", SENT)
    assert outcome.check() is outcome
    assert outcome.to_dict() == {
        "event_type": "agent.halted",
        **KAFKA_FIELDS,
        "status": "published",
    }


def test_a_demo_step_that_exits_unexpectedly_is_a_service_error(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path, env={}, cwd=tmp_path)
    run = _Runner(settings, tmp_path, Console(quiet=True), quiet=True)
    with pytest.raises(DemoFailed) as caught:
        run("keys", "no-such-subcommand")
    assert isinstance(caught.value, ServiceError)  # the CLI prints it and exits 2
    assert "`claw-ledger keys no-such-subcommand` exited 2, expected 0" in str(caught.value)
