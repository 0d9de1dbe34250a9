"""A server stopped under a processor committing a stream: nothing lost, nothing twice.

Each drill runs the ledger on a private embedded Postgres or a private Kafka
broker of its own (the session's shared servers are never stopped), streams
halts through it, and stops that server mid-stream.

* Postgres, short: inside the processor's retry window (8 attempts over about
  45 s, docs/operations.md) the process rides the outage out.
* Postgres, long: the process ends with exit 75, and a restart (what the
  supervisor does) carries on.
* Kafka: the consumer and the forwarding producer reconnect on their own
  (a 70 s outage was ridden out the same way when this drill was written).
* Kafka down when the processor starts: it waits (8 attempts over about
  35 s), and commits once the broker answers.

Either way the stream is committed exactly once, with every chain intact."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from consumers.failures import EXIT_DATABASE_DOWN
from ledger.chain import verify_chain
from ledger.roles import Role
from tests.fixtures_ledger import (
    LedgerHarness,
    private_kafka,
    private_postgres,
    recorded_halts,
    send_halts_in_tenths,
    start_ledger,
    stored_chains,
)

pytestmark = [pytest.mark.integration, pytest.mark.crash]

EVENTS = 12_000
#: well inside the processor's retry window, long enough for several failed attempts
SHORT_OUTAGE_SECONDS = 6.0
#: the retry window is about 45 s; the process must have given up well before this
LONG_OUTAGE_LIMIT_SECONDS = 120.0


async def _committed(url: str) -> int | None:
    """Committed halts, or ``None`` while the database does not answer."""
    try:
        conn = await asyncpg.connect(url, timeout=2)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return None
    try:
        return int(
            await conn.fetchval("SELECT count(*) FROM events WHERE event_type = 'agent.halted'")
        )
    finally:
        await conn.close()


async def _until(url: str, least: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        count = await _committed(url)
        if count is not None and count >= least:
            return count
        if time.monotonic() > deadline:
            raise AssertionError(f"{count} of {least} halts committed after {timeout:.0f}s")
        await asyncio.sleep(0.1)


async def _exit_code(ledger: LedgerHarness, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while ledger.processor.alive():
        if time.monotonic() > deadline:
            raise AssertionError(f"the processor still runs after {timeout:.0f}s without Postgres")
        await asyncio.sleep(0.5)
    assert ledger.processor.proc is not None
    return int(ledger.processor.proc.returncode)


async def _stream_through(
    ledger: LedgerHarness, outage: Callable[[], Awaitable[None]], expected_log: str | None = None
) -> None:
    """Stream ``EVENTS`` halts, run ``outage`` once a fifth is committed, then check
    that every halt is committed exactly once with every chain intact (and that the
    processor's log holds ``expected_log``)."""
    url = ledger.settings.database_url
    assert url
    publisher: asyncio.Task[None] | None = None
    event_ids: list[str] = []
    try:
        operator = await ledger.register_key(Role.OPERATOR)
        # the stream keeps arriving while the server is down
        publisher = asyncio.create_task(
            send_halts_in_tenths(ledger, operator, EVENTS, "outage", event_ids)
        )
        before = await _until(url, EVENTS // 5, timeout=120)
        assert before < EVENTS, "the stream was committed before the outage could begin"
        await outage()
        await publisher
        await _until(url, EVENTS, timeout=180)
        await asyncio.sleep(1.0)  # a batch committed twice would show by now
        assert ledger.processor.alive(), ledger.processor.log_tail()
        if expected_log is not None:
            log = ledger.processor.log_tail(400)
            assert expected_log in log, log
        async with ledger.connection() as conn:
            recorded = await recorded_halts(conn)
            quarantined = await conn.fetchval("SELECT count(*) FROM quarantine")
            chains = await stored_chains(conn)
    finally:
        if publisher is not None and not publisher.done():
            publisher.cancel()
        ledger.processor.stop()
    assert len(recorded) == EVENTS, "lost or duplicated events"
    assert set(recorded) == set(event_ids)
    assert quarantined == 0
    for links in chains.values():
        assert verify_chain(links) == []


@pytest.mark.parametrize("length", ["short", "long"])
async def test_postgres_stopped_mid_stream_loses_nothing_and_duplicates_nothing(
    ledger_settings: Any, tmp_path: Path, length: str
) -> None:
    async with private_postgres(tmp_path / "pg") as postgres:
        ledger = await start_ledger(
            postgres, ledger_settings, tmp_path / "ledger", register_roles=False, batch_size=500
        )

        async def outage() -> None:
            postgres.stop()
            if length == "short":
                await asyncio.sleep(SHORT_OUTAGE_SECONDS)
                # ridden out inside the retry window: no exit, no restart
                assert ledger.processor.alive(), ledger.processor.log_tail()
                await postgres.start()
            else:
                code = await _exit_code(ledger, LONG_OUTAGE_LIMIT_SECONDS)
                assert code == EXIT_DATABASE_DOWN, ledger.processor.log_tail()
                await postgres.start()
                ledger.processor.start()  # what `processor supervise` does after an exit 75

        await _stream_through(ledger, outage, "database unavailable (attempt")


async def test_kafka_stopped_mid_stream_loses_nothing_and_duplicates_nothing(
    ledger_servers: Any, ledger_settings: Any, tmp_path: Path
) -> None:
    async with private_kafka(tmp_path / "kafka") as kafka:
        base = replace(ledger_settings, kafka_bootstrap=kafka.bootstrap)
        ledger = await start_ledger(
            ledger_servers, base, tmp_path / "ledger", register_roles=False, batch_size=500
        )

        async def outage() -> None:
            kafka.stop()
            await asyncio.sleep(SHORT_OUTAGE_SECONDS)
            assert ledger.processor.alive(), ledger.processor.log_tail()
            await kafka.start()

        await _stream_through(ledger, outage)


async def test_a_processor_started_while_kafka_is_down_waits_for_it(
    ledger_servers: Any, ledger_settings: Any, tmp_path: Path
) -> None:
    async with private_kafka(tmp_path / "kafka") as kafka:
        base = replace(ledger_settings, kafka_bootstrap=kafka.bootstrap)
        ledger = await start_ledger(ledger_servers, base, tmp_path / "ledger")
        try:
            ledger.processor.stop()
            kafka.stop()
            ledger.processor.start()
            await asyncio.sleep(SHORT_OUTAGE_SECONDS)
            assert ledger.processor.alive(), ledger.processor.log_tail()
            assert "does not answer (attempt" in ledger.processor.log_tail()
            await kafka.start()
            await ledger.halt("job:after-kafka-came-up", "the processor waited")
        finally:
            ledger.processor.stop()
