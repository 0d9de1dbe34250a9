"""Crash test: SIGKILL the real processor process mid-stream, restart it, and
prove that nothing was lost and nothing was recorded twice."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from ledger.chain import verify_chain
from ledger.roles import Role
from tests.fixtures_ledger import recorded_halts, send_halts_in_tenths, start_ledger, stored_chains

pytestmark = [pytest.mark.integration, pytest.mark.crash]

#: the faust engine is slower; fewer events still span many batches
EVENTS_BY_ENGINE = {"kafka": 30_000, "faust": 6_000}


async def _count(conn: Any) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM events WHERE event_type = 'agent.halted'"))


async def _wait_for(conn: Any, predicate: Any, timeout: float, what: str) -> int:
    deadline = time.monotonic() + timeout
    while True:
        count = await _count(conn)
        if predicate(count):
            return count
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; {count} committed")
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("engine", ["kafka", "faust"])
async def test_sigkill_mid_batch_loses_nothing_and_duplicates_nothing(
    ledger_servers: Any, ledger_settings: Any, tmp_path: Path, engine: str
) -> None:
    events = EVENTS_BY_ENGINE[engine]
    ledger = await start_ledger(
        ledger_servers,
        ledger_settings,
        tmp_path,
        register_roles=False,
        engine=engine,
        batch_size=500,  # many batches, so that each kill lands mid-stream
    )
    publisher: asyncio.Task[None] | None = None
    try:
        operator = await ledger.register_key(Role.OPERATOR)
        event_ids: list[str] = []

        # the stream keeps flowing while the processor is killed
        publisher = asyncio.create_task(
            send_halts_in_tenths(ledger, operator, events, "crash", event_ids)
        )
        conn = await ledger.connect()
        try:
            kills = 0
            for fraction in (0.2, 0.6):
                target = int(events * fraction)
                seen = await _wait_for(conn, lambda c, t=target: c >= t, 120, f"{target} events")
                assert seen < events, "processor finished before it could be killed"
                ledger.processor.kill()
                kills += 1
                at_kill = await _count(conn)
                ledger.processor.start()
                assert at_kill <= events
            assert kills == 2
            await publisher
            await _wait_for(conn, lambda c: c >= events, 180, "all events")
            await asyncio.sleep(1.0)  # anything re-delivered after the last batch would show now

            total = await _count(conn)
            distinct = await conn.fetchval(
                "SELECT count(DISTINCT event_id) FROM events WHERE event_type = 'agent.halted'"
            )
            recorded = set(await recorded_halts(conn))
            quarantined = await conn.fetchval("SELECT count(*) FROM quarantine")
            by_partition = await stored_chains(conn)
        finally:
            await conn.close()
        assert total == events, "lost or duplicated events"
        assert distinct == events
        assert recorded == set(event_ids)
        assert quarantined == 0
        assert len(by_partition) > 1
        for links in by_partition.values():
            assert verify_chain(links) == []
    finally:
        if publisher is not None and not publisher.done():
            publisher.cancel()
        ledger.processor.stop()
