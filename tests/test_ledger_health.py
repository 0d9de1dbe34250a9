"""Readiness from one look at the ledger (``claw_ledger.ledger_health.Snapshot``):
the checks ``/readyz`` and ``claw-ledger status`` share, without servers."""

from __future__ import annotations

from typing import Any

import click
import pytest

from claw_ledger.cli import serve, status
from claw_ledger.ledger_health import DEFAULT_MAX_BEAT_AGE, Snapshot
from ledger.errors import ServiceError


def _worker(age: float, batches: int = 3) -> dict[str, Any]:
    return {"batches": batches, "seconds_sum": 0.3, "seconds_max": 0.1, "last_beat_seconds": age}


def _snapshot(**workers: dict[str, Any]) -> Snapshot:
    snap = Snapshot(postgres_up=True, kafka_up=True, schema_ok=True, topic="t")
    snap.lag, snap.control_lag = {0: 0}, {0: 0}
    snap.commit_batches = dict(workers)
    return snap


def test_a_ledger_with_a_beating_processor_is_ready() -> None:
    snap = _snapshot(old=_worker(200.0), live=_worker(0.4))
    checks = snap.readiness()
    assert snap.ready() and checks["processors"]["ok"]
    assert checks["processors"]["detail"] == "1 beating, the latest beat 0.4s ago"
    assert snap.beating() == ["live"]


def test_no_processor_beating_is_not_ready_and_says_what_to_do() -> None:
    snap = _snapshot(gone=_worker(DEFAULT_MAX_BEAT_AGE + 0.1))
    document = snap.to_json()
    assert document["ready"] is False
    assert [name for name, check in document["checks"].items() if not check["ok"]] == ["processors"]
    detail = document["checks"]["processors"]["detail"]
    assert "none has beaten in the last 30s" in detail
    assert "claw-ledger processor start" in detail
    # every other figure is still there: a silent processor is shown, not hidden
    assert document["commit_batches"]["gone"]["last_beat_seconds"] == pytest.approx(30.1)


def test_the_bound_is_the_callers() -> None:
    snap = _snapshot(slow=_worker(12.0))
    assert snap.ready() and not snap.ready(max_beat_age=10.0)
    assert snap.to_json(max_beat_age=10.0)["ready"] is False
    assert snap.beating(12.0) == ["slow"]


def test_a_fresh_ledger_without_heartbeats_is_not_ready() -> None:
    assert not _snapshot().readiness()["processors"]["ok"]


def test_without_postgres_the_processors_are_unknown_not_absent() -> None:
    snap = Snapshot(kafka_up=True)
    check = snap.readiness()["processors"]
    assert check == {"ok": False, "detail": "unknown (Postgres did not answer)"}


@pytest.mark.parametrize("command", [status.command, serve.command])
def test_the_commands_default_to_the_same_bound(command: click.Command) -> None:
    # the CLI spells the default out, so that --help does not import asyncpg
    (option,) = [p for p in command.params if p.name == "max_beat_age"]
    assert option.default == DEFAULT_MAX_BEAT_AGE


def test_a_servers_failure_is_its_message_and_hint_not_a_type_name() -> None:
    snap = Snapshot(kafka_up=True)
    snap.fail(
        "postgres",
        ServiceError("PostgreSQL at x refused the login", hint="check the password"),
        timeout=5,
    )
    check = snap.readiness()["postgres"]
    assert check == {
        "ok": False,
        "detail": "PostgreSQL at x refused the login",
        "hint": "check the password",
    }
    assert "hint" not in snap.readiness()["kafka"]


@pytest.mark.parametrize(
    ("error", "detail"),
    [
        (TimeoutError(), "no answer within 2.5s"),
        (OSError("connection refused"), "OSError: connection refused"),
        (ValueError("x" * 1000), "ValueError: " + "x" * 388),
    ],
)
def test_other_failures_keep_their_type_and_a_line_of_text(error: Exception, detail: str) -> None:
    snap = Snapshot()
    snap.fail("kafka", error, timeout=2.5)
    assert snap.readiness()["kafka"] == {"ok": False, "detail": detail}
