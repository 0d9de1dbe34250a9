"""Partitions added to a live ledger (ADR 0032), on the real broker and database.

Scaling out is adding partitions: ``claw-ledger services topics --partitions N``
grows every ledger topic while the processor runs. The running processor must
take the new partitions within seconds (its clients' metadata is read every
10 s, not every 5 minutes), keep copying outcomes to the copy topics without
stopping (a copy topic grown later, or never, must not stop it), and the
authorize service's follower of the control lane must read the new control
partitions too.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import NewPartitions
from aiokafka.partitioner import DefaultPartitioner

from ledger.crypto import KeyPair
from ledger.errors import ReasonCode
from ledger.roles import Role
from producers import LedgerProducer, NewEvent
from tests.fixtures_ledger import (
    LedgerHarness,
    kafka_admin,
    run_cli,
    start_ledger,
    started_ledger,
)
from tests.integration import _authorize as authorizing

pytestmark = pytest.mark.integration

#: what a record of a partition the processor has not been assigned yet may wait:
#: the clients' metadata age (10 s), a rebalance and a commit, with room to spare
#: (before ADR 0032: up to 5 minutes, and the processor stopped at the first copy)
TAKEN_WITHIN_S = 45.0


def _partition_of(stream: str, partitions: int) -> int:
    """The partition the SDK gives ``stream`` on a topic of ``partitions`` partitions."""
    every = list(range(partitions))
    return int(DefaultPartitioner()(stream.encode("utf-8"), every, every))


def _key_on(partition: int, partitions: int) -> KeyPair:
    """A new key whose registration's stream lands on ``partition``."""
    while True:
        key = KeyPair.generate("grown")
        if _partition_of(f"key:{key.did}", partitions) == partition:
            return key


async def _register_on(ledger: LedgerHarness, partition: int, partitions: int) -> dict[str, Any]:
    """Register a key whose stream hashes to ``partition`` with a producer started
    now (it sees the topic as it is); the verdict, awaited for a bounded time."""
    key = _key_on(partition, partitions)
    body = {"did": key.did, "name": f"grown-{partition}", "roles": ["gateway"]}
    assert ledger.settings.kafka_bootstrap
    async with LedgerProducer(ledger.settings.kafka_bootstrap, ledger.topics) as producer:
        position = await producer.publish(ledger.admin, "key.registered", f"key:{key.did}", body)
    assert (position.topic, position.partition) == (ledger.topics.ingress, partition)
    return position.to_dict() | await ledger.verdict(position.event_id, timeout=TAKEN_WITHIN_S)


async def _copies(ledger: LedgerHarness, event_ids: set[str]) -> dict[str, int]:
    """The verified-topic partition of the copy of each of ``event_ids``."""
    found: dict[str, int] = {}
    consumer = ledger.outcome_consumer()
    await consumer.start()
    try:
        deadline = time.monotonic() + TAKEN_WITHIN_S
        while set(found) != event_ids:
            assert time.monotonic() < deadline, (found, ledger.processor.log_tail())
            batches = await consumer.getmany(timeout_ms=500)
            for tp, records in batches.items():
                for record in records:
                    if tp.topic != ledger.topics.verified or not record.value:
                        continue
                    event_id = json.loads(record.value)["payload"]["event_id"]
                    if event_id in event_ids:
                        found[event_id] = tp.partition
    finally:
        await consumer.stop()
    return found


async def _grow_by_hand(ledger: LedgerHarness, topic: str, partitions: int) -> None:
    """What an operator does with Kafka's own tools: one topic, the others left alone."""
    async with kafka_admin(ledger) as admin:
        await admin.create_partitions({topic: NewPartitions(total_count=partitions)})


async def test_a_running_processor_takes_partitions_added_to_a_live_ledger(
    ledger_servers: Any, ledger_settings: Any, tmp_path: Path
) -> None:
    settings = replace(ledger_settings, partitions=2)
    async with started_ledger(ledger_servers, settings, tmp_path) as ledger:
        before = await _register_on(ledger, 1, 2)
        assert before["status"] == "committed", before
        grown = run_cli(ledger.env, "services", "topics", "--partitions", "4", "--json")
        assert grown.returncode == 0, grown.stderr
        report = json.loads(grown.stdout)
        assert report["created"] == []
        assert report["grown"] == {name: [2, 4] for name in ledger.topics.all}

        # every new partition of the ingress lane is read, and its copies land on
        # the same partition number of the verified topic
        new = [await _register_on(ledger, p, 4) for p in (2, 3)]
        assert [v["status"] for v in new] == ["committed", "committed"], new
        # the control lane's new partitions too
        operator = ledger.keys[Role.OPERATOR]
        target = next(
            f"job:grown-{n}" for n in range(1000) if _partition_of(f"halt:job:grown-{n}", 4) >= 2
        )
        halted = await ledger.publish(
            operator, "agent.halted", f"halt:{target}", {"target": target, "reason": "grown"}
        )
        assert (halted["topic"], halted["status"]) == (ledger.topics.control, "committed")
        assert halted["partition"] >= 2
        copies = await _copies(ledger, {v["event_id"] for v in new})
        assert copies == {v["event_id"]: v["partition"] for v in new}

        # the ingress topic grown alone, as by hand: records of partitions the copy
        # topics lack are still committed, and their copies go to partition mod 4
        await _grow_by_hand(ledger, ledger.topics.ingress, 6)
        lone = [await _register_on(ledger, p, 6) for p in (4, 5)]
        assert [v["status"] for v in lone] == ["committed", "committed"], lone
        copies = await _copies(ledger, {v["event_id"] for v in lone})
        assert copies == {v["event_id"]: v["partition"] % 4 for v in lone}

        assert ledger.processor.alive(), ledger.processor.log_tail()
        log = ledger.processor.log_path.read_text(errors="replace")
        assert "Traceback" not in log, log
        assert "copies from partition 4 go to partition 0" in log, log
        audit = run_cli(ledger.env, "audit", "--json")
        assert audit.returncode == 0, audit.stdout + audit.stderr
        assert json.loads(audit.stdout)["ok"] is True
        async with ledger.connection() as conn:
            chains = await conn.fetch(
                "SELECT kafka_topic, kafka_partition, min(ledger_seq) AS first"
                " FROM events WHERE kafka_partition >= 2"
                " GROUP BY kafka_topic, kafka_partition"
            )
        # each new partition is a chain of its own, from its first event
        assert {(r["kafka_topic"], r["kafka_partition"]) for r in chains} >= {
            (ledger.topics.ingress, p) for p in (2, 3, 4, 5)
        }
        assert {r["first"] for r in chains} == {1}


async def test_the_faust_engine_takes_added_partitions_too(
    ledger_servers: Any, ledger_settings: Any, tmp_path: Path
) -> None:
    settings = replace(ledger_settings, partitions=2)
    async with started_ledger(ledger_servers, settings, tmp_path, engine="faust") as ledger:
        grown = run_cli(ledger.env, "services", "topics", "--partitions", "4")
        assert grown.returncode == 0, grown.stderr
        new = [await _register_on(ledger, p, 4) for p in (2, 3)]
        assert [v["status"] for v in new] == ["committed", "committed"], new
        assert ledger.processor.alive(), ledger.processor.log_tail()


async def test_the_authorize_follower_reads_partitions_added_to_the_control_lane(
    ledger_servers: Any, ledger_settings: Any, tmp_path: Path
) -> None:
    # the processor reads the ingress lane only: a halt on the control lane stays
    # seen, so only the follower can make it deny
    settings = replace(ledger_settings, partitions=2)
    ledger = await start_ledger(ledger_servers, settings, tmp_path, lanes="ingress")
    authorize = authorizing.service(ledger)
    authorize.config = replace(authorize.config, control_topic=ledger.topics.control)
    try:
        wpc = await authorizing.publish_wpc(ledger, authorizing.WPC)
        job = await authorizing.running_job(ledger, wpc)
        while _partition_of(f"halt:job:{job.job_id}", 4) < 2:
            job = await authorizing.running_job(ledger, wpc, job_id=f"grown-{uuid.uuid4().hex[:8]}")
        await authorize.start()
        assert (await authorize.decide(authorizing.request(job))).allowed
        grown = run_cli(ledger.env, "services", "topics", "--partitions", "4")
        assert grown.returncode == 0, grown.stderr
        assert f"{ledger.topics.control}: grown from 2 to 4 partitions" in grown.stdout

        target = f"job:{job.job_id}"
        assert ledger.settings.kafka_bootstrap
        async with LedgerProducer(ledger.settings.kafka_bootstrap, ledger.topics) as producer:
            body = {"target": target, "reason": "after growing"}
            operator = ledger.keys[Role.OPERATOR]
            position = await producer.publish(operator, "agent.halted", f"halt:{target}", body)
        assert (position.topic, position.partition) == (
            ledger.topics.control,
            _partition_of(f"halt:{target}", 4),
        )
        ask = lambda: authorize.decide(authorizing.request(job))  # noqa: E731
        denied = await authorizing.decide_until(ask, lambda d: not d.allowed, TAKEN_WITHIN_S)
        assert denied.reason_code is ReasonCode.AGENT_HALTED, denied
        assert (denied.halt_state, denied.seen_event_id) == ("seen", position.event_id)
    finally:
        await authorize.stop()
        ledger.processor.stop()


def _key_moved_by_growth(old: int, new: int) -> KeyPair:
    """A new key whose registration's stream lands elsewhere once the topic has grown."""
    while True:
        key = KeyPair.generate("moved")
        stream = f"key:{key.did}"
        if _partition_of(stream, old) != _partition_of(stream, new):
            return key


def _registration(key: KeyPair) -> NewEvent:
    body = {"did": key.did, "name": "moved", "roles": ["gateway"]}
    return NewEvent("key.registered", f"key:{key.did}", body)


async def test_a_long_lived_producer_sends_in_bulk_where_a_single_send_goes_after_growth(
    ledger_servers: Any, ledger_settings: Any, tmp_path: Path
) -> None:
    """publish_many remembers each stream's partition; after growth it must not keep
    sending a stream to its old partition while single sends (Kafka's partitioner
    over the new count) send it elsewhere: one stream, two partitions, no order."""
    settings = replace(ledger_settings, partitions=2)
    async with started_ledger(ledger_servers, settings, tmp_path) as ledger:
        assert ledger.settings.kafka_bootstrap
        bootstrap, admin = ledger.settings.kafka_bootstrap, ledger.admin
        moved = _key_moved_by_growth(2, 4)
        stream = f"key:{moved.did}"
        async with LedgerProducer(bootstrap, ledger.topics, metadata_max_age_ms=500) as producer:
            (before,) = await producer.publish_many(admin, [_registration(moved)])
            assert before.partition == _partition_of(stream, 2)
            grown = run_cli(ledger.env, "services", "topics", "--partitions", "4")
            assert grown.returncode == 0, grown.stderr
            # the producer has read the new count once a single send of a fresh
            # stream lands where the new count puts it
            deadline = time.monotonic() + TAKEN_WITHIN_S
            while True:
                probe = _key_moved_by_growth(2, 4)
                event = _registration(probe)
                single = await producer.publish(admin, event.event_type, event.stream, event.body)
                if single.partition == _partition_of(event.stream, 4):
                    break
                assert time.monotonic() < deadline, "the producer never saw 4 partitions"
                await asyncio.sleep(0.2)
            # the same stream again, in bulk, on the same (ingress) lane
            (after,) = await producer.publish_many(admin, [_registration(moved)])
        assert (after.topic, before.topic) == (ledger.topics.ingress, ledger.topics.ingress)
        assert after.partition == _partition_of(stream, 4) != before.partition
        # a second registration of the key: decided like any other, wherever it lands
        verdict = await ledger.verdict(after.event_id, timeout=TAKEN_WITHIN_S)
        assert verdict["status"] in ("committed", "quarantined"), verdict


async def test_topics_never_shrink(running_ledger: LedgerHarness) -> None:
    ledger = running_ledger
    partitions = ledger.settings.partitions
    fewer = run_cli(ledger.env, "services", "topics", "--partitions", "1", "--json")
    assert fewer.returncode == 0, fewer.stderr
    assert json.loads(fewer.stdout)["grown"] == {}
    shown = run_cli(ledger.env, "services", "topics", "--partitions", "1")
    assert f"{ledger.topics.ingress}: exists ({partitions} partitions)" in shown.stdout
