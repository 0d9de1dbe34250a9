"""Postgres stopped under a processor committing a stream: nothing lost, nothing twice.

The ledger runs on a private embedded Postgres of this test (the shared server
is never stopped). A short outage is inside the processor's retry window
(8 attempts over about 45 s, docs/operations.md): the process must ride it
out. A long one ends it with exit 75, and a restart (what the supervisor
does) carries on. Either way the stream is committed exactly once, with every
chain intact."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from consumers.failures import EXIT_DATABASE_DOWN
from ledger.chain import verify_chain
from ledger.roles import Role
from tests.fixtures_ledger import (
    LedgerHarness,
    private_postgres,
    recorded_halts,
    send_halts,
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


@pytest.mark.parametrize("outage", ["short", "long"])
async def test_postgres_stopped_mid_stream_loses_nothing_and_duplicates_nothing(
    ledger_settings: Any, tmp_path: Path, outage: str
) -> None:
    publisher: asyncio.Task[list[str]] | None = None
    async with private_postgres(tmp_path / "pg") as postgres:
        ledger = await start_ledger(
            postgres, ledger_settings, tmp_path / "ledger", register_roles=False, batch_size=500
        )
        url = ledger.settings.database_url
        assert url
        try:
            operator = await ledger.register_key(Role.OPERATOR)

            async def publish_in_tenths() -> list[str]:
                # the stream keeps arriving while the database is down
                sent: list[str] = []
                async with ledger.producer() as producer:
                    step = EVENTS // 10
                    for start in range(0, EVENTS, step):
                        numbers = range(start, min(start + step, EVENTS))
                        sent.extend(await send_halts(producer, operator, numbers, "outage", 64))
                        await asyncio.sleep(0.5)
                return sent

            publisher = asyncio.create_task(publish_in_tenths())
            before = await _until(url, EVENTS // 5, timeout=120)
            assert before < EVENTS, "the stream was committed before the outage could begin"
            postgres.stop()
            if outage == "short":
                await asyncio.sleep(SHORT_OUTAGE_SECONDS)
                assert ledger.processor.alive(), ledger.processor.log_tail()
            else:
                code = await _exit_code(ledger, LONG_OUTAGE_LIMIT_SECONDS)
                assert code == EXIT_DATABASE_DOWN, ledger.processor.log_tail()
            await postgres.start()
            if outage == "long":
                ledger.processor.start()  # what `processor supervise` does after an exit 75
            event_ids = await publisher
            await _until(url, EVENTS, timeout=180)
            await asyncio.sleep(1.0)  # a batch committed twice would show by now
            # a short outage is ridden out inside the retry window: no exit, no restart
            assert ledger.processor.alive(), ledger.processor.log_tail()
            log = ledger.processor.log_tail(400)
            assert "database unavailable (attempt" in log, log
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
