"""The processor commits what it has without waiting for a full batch, and a
burst spread over several verify chunks and commits lands whole, in order, with
the group's Kafka offsets following the ledger's positions, both when it keeps
up (chunks committed as verified) and when a backlog is behind each poll (whole
polls per commit) (ADR 0026)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from claw_ledger.config import Settings
from ledger.chain import verify_chain
from ledger.crypto import KeyPair
from ledger.roles import Role
from tests.fixtures_ledger import LedgerHarness, send_halts, start_ledger, stored_chains

pytestmark = pytest.mark.integration

#: far more than the tests publish: a processor that waited for a full batch
#: would never commit them
HUGE_BATCH = 100_000
#: several verify chunks (250 records) per poll, over every partition
BURST = 1_200


async def _wait(what: str, ready: Any, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not await ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout:.0f}s: {what}")
        await asyncio.sleep(0.2)


async def _kafka_offsets(ledger: LedgerHarness) -> dict[int, int]:
    """The control lane's Kafka group offsets (halts are control-lane events; that
    lane's Kafka group is ``<group>.control``, ADR 0024)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=ledger.settings.kafka_bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(f"{ledger.processor.group}.control")
    finally:
        await admin.close()
    return {
        tp.partition: meta.offset
        for tp, meta in offsets.items()
        if meta.offset >= 0 and tp.topic == ledger.topics.control
    }


async def test_a_few_events_commit_while_the_batch_size_is_huge(
    ledger_servers: Any, ledger_settings: Settings, tmp_path: Path
) -> None:
    ledger = await start_ledger(
        ledger_servers, ledger_settings, tmp_path, register_roles=False, batch_size=HUGE_BATCH
    )
    try:
        keys = [KeyPair.generate(f"agent-{n}") for n in range(3)]
        async with ledger.producer() as producer:
            futures = []
            for key in keys:
                body = {"did": key.did, "name": key.name, "roles": [Role.OPERATOR.value]}
                envelope = producer.sign(ledger.admin, "key.registered", f"key:{key.did}", body)
                futures.append(await producer.send_envelope(envelope))
            positions = await asyncio.gather(*futures)
        verdicts = [await ledger.verdict(p.event_id) for p in positions]
        assert [v["status"] for v in verdicts] == ["committed"] * 3
        conn = await ledger.connect()
        try:
            registered = {r["did"] for r in await conn.fetch("SELECT did FROM keys")}
        finally:
            await conn.close()
        assert {k.did for k in keys} <= registered
    finally:
        ledger.processor.stop()


#: polls of two verify chunks with more behind them (a backlog): whole polls per commit
BACKLOG_BATCH = 300


@pytest.mark.parametrize("batch_size", [HUGE_BATCH, BACKLOG_BATCH], ids=["caught-up", "backlog"])
async def test_a_burst_commits_whole_in_order_and_kafka_offsets_follow(
    ledger_servers: Any, ledger_settings: Settings, tmp_path: Path, batch_size: int
) -> None:
    ledger = await start_ledger(
        ledger_servers, ledger_settings, tmp_path, register_roles=False, batch_size=batch_size
    )
    try:
        operator = await ledger.register_key(Role.OPERATOR)
        async with ledger.producer() as producer:
            event_ids = await send_halts(producer, operator, range(BURST), "cadence", 97)
        conn = await ledger.connect()
        try:

            async def all_committed() -> bool:
                count = await conn.fetchval(
                    "SELECT count(*) FROM events WHERE event_type = 'agent.halted'"
                )
                return bool(count >= BURST)

            await _wait("every halt committed", all_committed)
            recorded = [
                r["event_id"]
                for r in await conn.fetch(
                    "SELECT event_id::text AS event_id FROM events"
                    " WHERE event_type = 'agent.halted'"
                )
            ]
            by_partition = await stored_chains(conn)
            positions = {
                r["kafka_partition"]: r["next_offset"]
                for r in await conn.fetch(
                    "SELECT kafka_partition, next_offset FROM consumer_positions"
                    " WHERE consumer_group = $1 AND topic = $2",
                    ledger.processor.group,
                    ledger.topics.control,
                )
            }
        finally:
            await conn.close()
        assert sorted(recorded) == sorted(event_ids), "lost or duplicated events"
        assert len([key for key in by_partition if key[0] == ledger.topics.control]) > 1
        for links in by_partition.values():
            assert verify_chain(links) == []
        # the offset commit runs beside the next ledger commit; once the burst is
        # over, the last offsets it was given still reach Kafka

        async def offsets_follow() -> bool:
            return await _kafka_offsets(ledger) == positions

        await _wait(f"Kafka group offsets reach the ledger's {positions}", offsets_follow)
    finally:
        ledger.processor.stop()
