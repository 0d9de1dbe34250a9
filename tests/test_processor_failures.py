"""A failed batch raises a typed error; only the runner turns it into an exit code."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, NoReturn

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from consumers import kafka_engine, runner
from consumers.failures import (
    EXIT_BUG,
    EXIT_DATABASE_DOWN,
    EXIT_KAFKA_DOWN,
    BatchFailedError,
    DatabaseUnavailableError,
    KafkaUnavailableError,
    with_database_retry,
)
from consumers.processor import VerifyingProcessor
from ledger.errors import LedgerError
from storage.memory import MemoryLedgerStore


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []
    real_sleep = asyncio.sleep
    this_thread = threading.current_thread()

    async def sleep(delay: float, result: Any = None) -> Any:
        # asyncio.sleep is one function for the whole process: a server another test
        # left running in a thread of its own (the session's API server) sleeps too
        if threading.current_thread() is not this_thread:
            return await real_sleep(delay, result)
        waits.append(delay)
        return result

    monkeypatch.setattr("consumers.failures.asyncio.sleep", sleep)
    return waits


async def test_a_bug_is_a_batch_failure_at_once(_no_backoff: list[float]) -> None:
    calls = 0

    async def batch() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("boom")

    with pytest.raises(BatchFailedError) as caught:
        await with_database_retry(batch)
    assert type(caught.value) is BatchFailedError and caught.value.exit_code == EXIT_BUG
    assert isinstance(caught.value.__cause__, ValueError) and isinstance(caught.value, LedgerError)
    assert calls == 1 and _no_backoff == []


async def test_a_database_outage_is_retried_then_reported(_no_backoff: list[float]) -> None:
    async def batch() -> None:
        raise ConnectionRefusedError("down")

    with pytest.raises(DatabaseUnavailableError) as caught:
        await with_database_retry(batch)
    assert caught.value.exit_code == EXIT_DATABASE_DOWN
    assert _no_backoff == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


@pytest.mark.parametrize(
    ("failures", "waits"),
    [
        pytest.param([OSError("reset"), OSError("reset")], [0.5, 1.0], id="a short outage"),
        pytest.param(
            [
                asyncpg.DeadlockDetectedError("deadlock detected"),
                asyncpg.SerializationError("could not serialize access"),
            ],
            [0.05, 0.05],
            id="transactions the database rolled back",
        ),
        pytest.param(
            [
                asyncpg.AdminShutdownError("terminating connection due to administrator command"),
                asyncpg.CannotConnectNowError("the database system is shutting down"),
                asyncpg.CannotConnectNowError("the database system is starting up"),
                asyncpg.CrashShutdownError("terminating connection because of crash"),
                asyncpg.TooManyConnectionsError("sorry, too many clients already"),
                TimeoutError(),
            ],
            [0.5, 1.0, 2.0, 4.0, 8.0, 10.0],
            id="a server shutting down, restarting or full",
        ),
    ],
)
async def test_a_passing_failure_is_ridden_out(
    _no_backoff: list[float], failures: list[Exception], waits: list[float]
) -> None:
    outcomes: list[Exception | None] = [*failures, None]

    async def batch() -> str:
        failure = outcomes.pop(0)
        if failure is not None:
            raise failure
        return "committed"

    assert await with_database_retry(batch) == "committed"
    assert _no_backoff == waits


async def test_rollbacks_without_end_are_reported(_no_backoff: list[float]) -> None:
    async def batch() -> None:
        raise asyncpg.DeadlockDetectedError("deadlock detected")

    with pytest.raises(DatabaseUnavailableError):
        await with_database_retry(batch)
    assert len(_no_backoff) == 8


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (BatchFailedError("bug"), EXIT_BUG),
        (DatabaseUnavailableError("gone"), EXIT_DATABASE_DOWN),
        (KafkaUnavailableError("never answered"), EXIT_KAFKA_DOWN),
    ],
)
def test_the_runner_exits_with_the_failures_code(
    monkeypatch: pytest.MonkeyPatch, error: BatchFailedError, code: int
) -> None:
    def exit_(status: int) -> NoReturn:
        raise SystemExit(status)

    monkeypatch.setattr("consumers.runner.os._exit", exit_)
    with pytest.raises(SystemExit) as caught:
        runner._exit_for(error)
    assert caught.value.code == code


class _LateClient:
    """A Kafka client whose ``start`` fails while the broker is not up yet."""

    def __init__(self, failures: int, started: list[str], name: str) -> None:
        self.failures, self.started, self.name = failures, started, name

    async def start(self) -> None:
        if self.failures:
            self.failures -= 1
            raise KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 1)]")
        self.started.append(self.name)


async def test_kafka_late_at_start_is_waited_for(_no_backoff: list[float]) -> None:
    started: list[str] = []
    producer = _LateClient(2, started, "producer")
    consumer = _LateClient(1, started, "consumer")
    await kafka_engine.start_when_kafka_answers("nowhere:1", producer, consumer)
    assert started == ["producer", "consumer"]  # in order, each once
    assert _no_backoff == [0.5, 1.0, 2.0]


async def test_kafka_that_never_answers_is_reported_with_its_address(
    _no_backoff: list[float],
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1")
    try:
        with pytest.raises(KafkaUnavailableError) as caught:
            await kafka_engine.start_when_kafka_answers("127.0.0.1:1", producer)
    finally:
        await producer.stop()
    assert caught.value.exit_code == EXIT_KAFKA_DOWN
    assert str(caught.value).startswith("Kafka at 127.0.0.1:1 did not answer in 8 attempts")
    assert len(_no_backoff) == kafka_engine.KAFKA_START_ATTEMPTS - 1


class _DownStore(MemoryLedgerStore):
    """A store whose heartbeat fails while ``down`` (a database outage)."""

    down = True

    async def heartbeat(self, *args: Any, **kwargs: Any) -> None:
        if self.down:
            raise ConnectionRefusedError(111, "Connect call failed")
        await super().heartbeat(*args, **kwargs)


async def test_an_outage_logs_its_failed_heartbeats_sparingly(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = _DownStore()
    processor = VerifyingProcessor(store, group="g", topic="t", trust_root=None)
    now = [100.0]
    monkeypatch.setattr("consumers.processor.time.monotonic", lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="claw_ledger.processor"):
        for _ in range(120):  # 60 s of beats every 0.5 s
            await processor.heartbeat()
            now[0] += 0.5
        store.down = False
        await processor.heartbeat()
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        "heartbeat not written (1 in a row): [Errno 111] Connect call failed",
        "heartbeat not written (61 in a row): [Errno 111] Connect call failed",
        "heartbeat written again after 120 failed",
    ]
    assert processor.worker_id in store.heartbeats
