"""Rebalancing drills: two real processor processes in one consumer group over a
stream of events. A second processor joins mid-stream; or one of two is SIGKILLed
mid-stream. Every event must be committed exactly once either way.

Run on the single shared broker (tests/integration/test_rebalance.py) and on the
three-node cluster (tests/cluster/test_replicated_cluster.py): ``ledger_settings``
names the Kafka to use.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from ledger.chain import verify_chain
from ledger.crypto import KeyPair
from ledger.roles import Role
from tests.fixtures_ledger import (
    LedgerHarness,
    ProcessorProcess,
    recorded_halts,
    run_cli,
    send_halts,
    start_ledger,
    stored_chains,
)

__all__ = ["a_processor_dies_mid_stream", "a_processor_joins_mid_stream"]

EVENTS = 4_000
#: many small batches, so that each rebalance lands between commits of a flowing stream
BATCH = 100


async def _members(ledger: LedgerHarness) -> list[set[int]]:
    """The partitions assigned to each member of the processors' group, as the
    group coordinator reports them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=ledger.settings.kafka_bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([ledger.processor.group])
    finally:
        await admin.close()
    (group,) = response.groups
    members = []
    for member in group[5]:
        raw = member[-1]
        partitions: set[int] = set()
        if raw:
            assignment = ConsumerProtocolMemberAssignment.decode(raw)
            for _topic, numbers in assignment.assignment:
                partitions.update(numbers)
        members.append(partitions)
    return members


async def _until(
    check: Callable[[], Awaitable[bool]], timeout: float, what: str, ledger: LedgerHarness
) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            print(ledger.processor.log_tail())
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def _publish(ledger: LedgerHarness, key: KeyPair, numbers: range, job: str) -> list[str]:
    """In tenths of the range with pauses, so the stream is still flowing at each step."""
    event_ids: list[str] = []
    async with ledger.producer() as producer:
        step = max(1, len(numbers) // 10)
        for start in range(numbers.start, numbers.stop, step):
            chunk = range(start, min(start + step, numbers.stop))
            event_ids.extend(await send_halts(producer, key, chunk, job, 64))
            await asyncio.sleep(0.3)
    return event_ids


def _two_members(partitions: int) -> Callable[[list[set[int]]], bool]:
    def check(members: list[set[int]]) -> bool:
        return (
            len(members) == 2 and all(members) and set().union(*members) == set(range(partitions))
        )

    return check


async def _assert_exactly_once(ledger: LedgerHarness, event_ids: list[str]) -> None:
    await _until(lambda: _at_least(ledger, len(event_ids)), 240, f"{len(event_ids)} events", ledger)
    await asyncio.sleep(1.0)  # anything committed twice after the last batch would show now
    conn = await ledger.connect()
    try:
        recorded = await recorded_halts(conn)
        offsets = await conn.fetchval(
            "SELECT count(DISTINCT (kafka_topic, kafka_partition, kafka_offset)) = count(*)"
            " FROM events"
        )
        quarantined = await conn.fetchval("SELECT count(*) FROM quarantine")
        chains = await stored_chains(conn)
    finally:
        await conn.close()
    assert len(recorded) == len(event_ids), "lost or duplicated events"
    assert set(recorded) == set(event_ids)
    assert offsets, "a Kafka offset recorded twice"
    assert quarantined == 0
    # the halts are control-lane events: every partition of the control topic holds some
    control = [key for key in chains if key[0] == ledger.topics.control]
    assert len(control) == ledger.settings.partitions
    for links in chains.values():
        # contiguous ledger_seq from 1 and every link recomputed
        assert [link.ledger_seq for link in links] == list(range(1, len(links) + 1))
        assert verify_chain(links) == []
    audit = run_cli(ledger.env, "audit", "--json")
    assert audit.returncode == 0, json.loads(audit.stdout)["problems"][:5]


async def _at_least(ledger: LedgerHarness, count: int) -> bool:
    return await ledger.committed_count("agent.halted") >= count


async def _ledger_and_a_second_processor(
    ledger_servers: Any, ledger_settings: Any, tmp_path: Path
) -> tuple[LedgerHarness, ProcessorProcess]:
    """A running ledger in small batches, and a second processor (not started) in its group."""
    ledger = await start_ledger(
        ledger_servers, ledger_settings, tmp_path, register_roles=False, batch_size=BATCH
    )
    second = ProcessorProcess(
        ledger.settings, tmp_path / "second.log", ledger.processor.group, batch_size=BATCH
    )
    return ledger, second


async def _until_two_members_share_every_partition(ledger: LedgerHarness) -> None:
    await _until(
        lambda: _members_match(ledger, _two_members(ledger.settings.partitions)),
        120,
        "two members sharing every partition",
        ledger,
    )


async def a_processor_joins_mid_stream(
    ledger_servers: Any, ledger_settings: Any, tmp_path: Path
) -> None:
    """A second processor joins the group mid-stream: it takes partitions, and every
    event is committed exactly once with intact chains."""
    ledger, second = await _ledger_and_a_second_processor(ledger_servers, ledger_settings, tmp_path)
    try:
        operator = await ledger.register_key(Role.OPERATOR)
        half = EVENTS // 2
        first_half = asyncio.create_task(_publish(ledger, operator, range(half), "join"))
        await _until(lambda: _at_least(ledger, half // 5), 120, "the stream to flow", ledger)
        second.start()
        # the rest is published only once the newcomer holds partitions: it must commit them
        await _until_two_members_share_every_partition(ledger)
        assert second.alive(), second.log_tail()
        event_ids = await first_half
        event_ids += await _publish(ledger, operator, range(half, EVENTS), "join")
        await _assert_exactly_once(ledger, event_ids)
        assert second.alive() and ledger.processor.alive()
    finally:
        second.stop()
        ledger.processor.stop()


async def a_processor_dies_mid_stream(
    ledger_servers: Any, ledger_settings: Any, tmp_path: Path
) -> None:
    """One of two processors is SIGKILLed mid-stream: the survivor takes every
    partition, and every event is committed exactly once with intact chains."""
    ledger, second = await _ledger_and_a_second_processor(ledger_servers, ledger_settings, tmp_path)
    publisher: asyncio.Task[list[str]] | None = None
    try:
        operator = await ledger.register_key(Role.OPERATOR)
        second.start()
        await _until_two_members_share_every_partition(ledger)
        publisher = asyncio.create_task(_publish(ledger, operator, range(EVENTS), "death"))
        await _until(lambda: _at_least(ledger, EVENTS // 4), 120, "a quarter committed", ledger)
        second.kill()  # SIGKILL: its uncommitted batch and its group membership just stop
        at_kill = await ledger.committed_count("agent.halted")
        assert at_kill < EVENTS, "the stream ended before the kill"
        # the coordinator notices the dead member and gives the survivor every partition
        await _until(
            lambda: _members_match(
                ledger, lambda m: len(m) == 1 and m[0] == set(range(ledger.settings.partitions))
            ),
            120,
            "the survivor to hold every partition",
            ledger,
        )
        event_ids = await publisher
        await _assert_exactly_once(ledger, event_ids)
        assert ledger.processor.alive()
    finally:
        if publisher is not None and not publisher.done():
            publisher.cancel()
        second.stop()
        ledger.processor.stop()


async def _members_match(
    ledger: LedgerHarness, predicate: Callable[[list[set[int]]], bool]
) -> bool:
    return predicate(await _members(ledger))
