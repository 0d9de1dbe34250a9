"""Records Kafka removed before the ledger read them are recorded, never skipped;
a topic whose offsets start over is refused (ADR 0033).

Retention or an operator's ``kafka-delete-records`` can remove records of a
partition while no processor reads it. Before, the consumer jumped to the new
start of the log: events that Kafka had acknowledged to their producers were
never verified, committed or quarantined, and the audit said OK. Now the
processor compares each assigned partition's log start with the ledger's
position and commits a ``RECORDS_LOST`` quarantine row for the gap (one, at the
last removed offset, naming the range) before it reads on.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import RecordsToDelete
from aiokafka.partitioner import DefaultPartitioner

from ledger.events import NewEvent
from ledger.roles import Role
from producers.sdk import Position, sign_many
from tests.fixtures_ledger import LedgerHarness, kafka_admin, run_cli, started_ledger

pytestmark = pytest.mark.integration


def _targets_on(partition: int, partitions: int, count: int) -> list[str]:
    """``count`` halt targets whose streams land on ``partition``."""
    every = list(range(partitions))
    targets: list[str] = []
    n = 0
    while len(targets) < count:
        target = f"job:lost-{n}"
        n += 1
        if DefaultPartitioner()(f"halt:{target}".encode(), every, every) == partition:
            targets.append(target)
    return targets


async def _halts(ledger: LedgerHarness, targets: list[str]) -> list[Position]:
    """Halts published without waiting for a verdict (the processor may be stopped)."""
    operator = ledger.keys[Role.OPERATOR]
    async with ledger.producer() as producer:
        return [
            await producer.publish(
                operator, "agent.halted", f"halt:{t}", {"target": t, "reason": "lost"}
            )
            for t in targets
        ]


async def _delete_before(ledger: LedgerHarness, topic: str, partition: int, offset: int) -> None:
    async with kafka_admin(ledger) as admin:
        await admin.delete_records({TopicPartition(topic, partition): RecordsToDelete(offset)})


async def _lost_rows(ledger: LedgerHarness) -> list[dict[str, Any]]:
    async with ledger.connection() as conn:
        rows = await conn.fetch(
            "SELECT kafka_topic, kafka_partition, kafka_offset, detail, raw"
            " FROM quarantine WHERE reason_code = 'RECORDS_LOST' ORDER BY id"
        )
    return [dict(r) for r in rows]


@pytest_asyncio.fixture(params=["kafka", "faust"])
async def ledger(
    request: pytest.FixtureRequest, ledger_servers: Any, ledger_settings: Any, tmp_path: Path
) -> AsyncIterator[LedgerHarness]:
    """A running ledger of each engine whose topics have two partitions."""
    settings = replace(ledger_settings, partitions=2)
    async with started_ledger(ledger_servers, settings, tmp_path, engine=request.param) as harness:
        yield harness


async def test_records_removed_while_the_processor_was_down_are_recorded(
    ledger: LedgerHarness,
) -> None:
    control = ledger.topics.control
    first, second, third, fourth = _targets_on(1, 2, 4)
    kept = await _halts(ledger, [first])
    assert (await ledger.verdict(kept[0].event_id))["status"] == "committed"
    ledger.processor.stop()
    published = await _halts(ledger, [second, third, fourth])
    assert {(p.topic, p.partition) for p in published} == {(control, 1)}
    removed, survivor = published[:2], published[2]
    await _delete_before(ledger, control, 1, survivor.offset)

    ledger.processor.start()
    assert (await ledger.verdict(survivor.event_id))["status"] == "committed"
    (row,) = await _lost_rows(ledger)
    assert (row["kafka_topic"], row["kafka_partition"]) == (control, 1)
    assert (row["kafka_offset"], row["raw"]) == (survivor.offset - 1, b"")
    assert (
        f"offsets {removed[0].offset} to {removed[1].offset} of {control} partition 1"
        f" (2 record(s)) were removed from Kafka" in row["detail"]
    )
    async with ledger.connection() as conn:
        ids = {str(r["event_id"]) for r in await conn.fetch("SELECT event_id FROM events")}
    assert kept[0].event_id in ids and survivor.event_id in ids
    assert not {p.event_id for p in removed} & ids

    # recorded once: a restart finds the position past the gap
    ledger.processor.stop()
    ledger.processor.start()
    (later,) = await _halts(ledger, [_targets_on(1, 2, 5)[4]])
    assert (await ledger.verdict(later.event_id))["status"] == "committed"
    assert len(await _lost_rows(ledger)) == 1
    assert ledger.processor.alive(), ledger.processor.log_tail()

    shown = run_cli(ledger.env, "quarantine", "--reason", "RECORDS_LOST", "--json")
    assert shown.returncode == 0, shown.stderr
    assert "were removed from Kafka" in shown.stdout
    audit = run_cli(ledger.env, "audit", "--json")
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert json.loads(audit.stdout)["ok"] is True
    # a replay of the topics cannot see them either, and says so (exit 1)
    replayed = run_cli(ledger.env, "replay", "--source", "kafka", "--json")
    assert replayed.returncode == 1, replayed.stdout + replayed.stderr
    summary = json.loads(replayed.stdout)
    assert summary["removed_from_kafka"] == {f"{control}-1": survivor.offset}
    assert (summary["ok"], summary["breaks"]) == (False, [])
    told = run_cli(ledger.env, "replay", "--source", "kafka")
    assert f"INCOMPLETE: {control}-1 starts at offset {survivor.offset}" in told.stdout


async def test_a_transaction_s_markers_are_not_taken_for_removed_records(
    ledger: LedgerHarness,
) -> None:
    """A producer's transactions leave a marker at an offset of their own, so the
    offsets a consumer sees skip one after each: no record is missing there."""
    assert ledger.settings.kafka_bootstrap
    control = ledger.topics.control
    operator = ledger.keys[Role.OPERATOR]
    events = [
        NewEvent("agent.halted", f"halt:{t}", {"target": t, "reason": "in a transaction"})
        for t in _targets_on(1, 2, 4)
    ]
    signed = sign_many(operator, events)
    producer = AIOKafkaProducer(
        bootstrap_servers=ledger.settings.kafka_bootstrap,
        transactional_id=f"claw-test-{uuid.uuid4().hex[:8]}",
    )
    await producer.start()
    try:
        for pair in (signed[:2], signed[2:]):
            async with producer.transaction():
                for raw in pair:
                    await producer.send(control, raw.value, key=raw.stream.encode(), partition=1)
    finally:
        await producer.stop()
    for raw in signed:
        assert (await ledger.verdict(raw.event_id))["status"] == "committed"
    assert await _lost_rows(ledger) == []
    async with ledger.connection() as conn:
        offsets = await conn.fetch(
            "SELECT kafka_offset FROM events WHERE kafka_topic = $1 ORDER BY 1", control
        )
    assert [r[0] for r in offsets] == [0, 1, 3, 4]  # 2 is the first transaction's marker
    assert ledger.processor.alive(), ledger.processor.log_tail()


def _halt(target: str) -> dict[str, str]:
    return {"target": target, "reason": "backlog"}


#: halts published while commits are held: more than the processor's queue and
#: one fetch response (8 MiB, some 12,000 halts) hold, so that its consumer
#: stops reading below the records deleted under it
BACKLOG = 30_000
#: the first offset that survives the deletion
CUT = 25_000


@pytest.mark.parametrize("engine", ["kafka", "faust"])
async def test_records_removed_while_the_processor_reads_are_recorded(
    ledger_servers: Any, ledger_settings: Any, tmp_path: Path, engine: str
) -> None:
    """Retention passing a backlog that the processor is reading. Before, its
    consumer reset to the new start of the log and the ledger read on: the
    records in between were never verified, committed or quarantined."""
    settings = replace(ledger_settings, partitions=1)
    async with started_ledger(ledger_servers, settings, tmp_path, engine=engine) as ledger:
        control = ledger.topics.control
        (first,) = await _halts(ledger, ["job:before"])
        assert (await ledger.verdict(first.event_id))["status"] == "committed"
        operator = ledger.keys[Role.OPERATOR]
        async with ledger.connection() as holder:
            # every commit waits on this lock: the processor reads until its queue
            # and its consumer's fetch buffer are full, and stops there
            hold = holder.transaction()
            await hold.start()
            await holder.execute("LOCK TABLE consumer_positions IN EXCLUSIVE MODE")
            published: list[Position] = []
            async with ledger.producer() as producer:
                for start in range(0, BACKLOG, 5_000):
                    published += await producer.publish_many(
                        operator,
                        [
                            NewEvent("agent.halted", f"halt:job:b{i}", _halt(f"job:b{i}"))
                            for i in range(start, start + 5_000)
                        ],
                    )
            assert {(p.topic, p.partition) for p in published} == {(control, 0)}
            await asyncio.sleep(3)  # the consumer fetches what it can hold
            cut = published[CUT].offset
            await _delete_before(ledger, control, 0, cut)
            await hold.rollback()

        last = published[-1]
        assert (await ledger.verdict(last.event_id, timeout=120))["status"] == "committed"
        assert ledger.processor.alive(), ledger.processor.log_tail()
        (row,) = await _lost_rows(ledger)
        assert (row["kafka_topic"], row["kafka_partition"]) == (control, 0)
        assert (row["kafka_offset"], row["raw"]) == (cut - 1, b"")
        match = re.search(r"offsets (\d+) to (\d+) of ", row["detail"])
        assert match is not None, row["detail"]
        read_to = int(match[1])
        # it had read part of the backlog, and lost the rest below the cut
        assert published[0].offset < read_to < cut and int(match[2]) == cut - 1
        # every offset is accounted for once: committed, or in the one gap row
        async with ledger.connection() as conn:
            offsets = [
                r[0]
                for r in await conn.fetch(
                    "SELECT kafka_offset FROM events WHERE kafka_topic = $1 ORDER BY 1", control
                )
            ]
        assert offsets == [*range(read_to), *range(cut, last.offset + 1)]
        assert "RECORDS_LOST" in ledger.processor.log_tail(200)
        audit = run_cli(ledger.env, "audit", "--json")
        assert audit.returncode == 0, audit.stdout + audit.stderr
        assert json.loads(audit.stdout)["ok"] is True


async def _delete_topic(ledger: LedgerHarness, topic: str) -> None:
    async with kafka_admin(ledger) as admin:
        await admin.delete_topics([topic])


async def test_a_topic_created_again_is_refused_not_read_as_read(ledger: LedgerHarness) -> None:
    control = ledger.topics.control
    committed = await _halts(ledger, _targets_on(1, 2, 2))
    for position in committed:
        assert (await ledger.verdict(position.event_id))["status"] == "committed"
    await _delete_topic(ledger, control)
    deadline = time.monotonic() + 60
    while True:  # the broker deletes a topic in the background
        created = run_cli(ledger.env, "services", "topics")
        if created.returncode == 0 and f"{control}: created" in created.stdout:
            break
        assert time.monotonic() < deadline, created.stdout + created.stderr
        await asyncio.sleep(1)
    # the new topic's offsets start over at 0, below what the ledger has read
    (after,) = await _halts(ledger, _targets_on(1, 2, 3)[2:])
    assert after.offset == 0
    assert ledger.processor.proc is not None
    code = await asyncio.to_thread(ledger.processor.proc.wait, 90)
    log = ledger.processor.log_tail(60)
    assert code == 2, log
    assert f"{control} holds fewer records than the ledger has read" in log
    assert "deleted and created again" in log and "Traceback" not in log
    async with ledger.connection() as conn:
        row = await conn.fetchrow("SELECT 1 FROM events WHERE event_id = $1", after.event_id)
    assert row is None


async def test_a_replay_reads_on_past_records_removed_under_it_and_names_them(
    ledger_servers: Any,
) -> None:
    """``replay --source kafka`` reads the topics with ``iter_topics``. Before, its
    consumer reset an out-of-range position to the end of the log: the rest of
    the partition was silently not replayed."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from consumers.topic_replay import iter_topics

    bootstrap = ledger_servers.kafka_bootstrap
    topic = f"replay-removed-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
        # some 7 MB: more than the replay's consumer fetches at once (4 MiB a partition)
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_batch_size=1 << 20)
        await producer.start()
        try:
            for i in range(10_000):
                await producer.send(topic, b"%05d" % i + b"x" * 700, partition=0)
            await producer.flush()
        finally:
            await producer.stop()
        removed: dict[str, int] = {}
        read = iter_topics(bootstrap, [topic], removed=removed)
        offsets = [(await anext(read)).offset]
        await admin.delete_records({TopicPartition(topic, 0): RecordsToDelete(9_000)})
        offsets += [stored.offset async for stored in read]
        await admin.delete_topics([topic])
    finally:
        await admin.close()
    assert removed == {f"{topic}-0": 9_000}
    read_to = next(i for i, offset in enumerate(offsets) if offset is not None and offset >= 9_000)
    # every offset once, in order: those fetched before the deletion, then from the cut
    assert 0 < read_to < 9_000
    assert offsets == [*range(read_to), *range(9_000, 10_000)]


async def test_a_replay_stops_when_its_topic_is_created_again_under_it(
    ledger_servers: Any,
) -> None:
    """Before, the replay took the new topic's "out of range" answer for a leader
    change and asked for the same position forever."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from consumers.topic_replay import iter_topics
    from ledger.errors import ServiceError

    bootstrap = ledger_servers.kafka_bootstrap
    topic = f"replay-again-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_batch_size=1 << 20)
    await producer.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
        for i in range(10_000):  # more than one fetch of the replay's consumer
            await producer.send(topic, b"%05d" % i + b"x" * 700, partition=0)
        await producer.flush()
        read = iter_topics(bootstrap, [topic])
        await anext(read)
        await admin.delete_topics([topic])
        deadline = time.monotonic() + 60
        while True:  # the broker deletes a topic in the background
            try:
                await admin.create_topics([NewTopic(topic, 1, 1)])
                break
            except Exception:
                assert time.monotonic() < deadline
                await asyncio.sleep(1)
        await (await producer.send(topic, b"new", partition=0))
        with pytest.raises(ServiceError, match="deleted and created again"):
            async with asyncio.timeout(120):
                async for _ in read:
                    pass
        await read.aclose()
        await admin.delete_topics([topic])
    finally:
        await producer.stop()
        await admin.close()
