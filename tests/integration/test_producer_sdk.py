"""The producer SDK against the real broker: where events land and in what order."""

from __future__ import annotations

import uuid
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from claw_ledger.services.kafka import ensure_topics
from producers.sdk import LedgerProducer, Position, RawEvent

pytestmark = pytest.mark.integration


async def _read_all(bootstrap: str, topic: str, count: int) -> dict[tuple[int, int], bytes]:
    """Every record of ``topic`` by (partition, offset)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        records: dict[tuple[int, int], bytes] = {}
        while len(records) < count:
            batches = await consumer.getmany(timeout_ms=10_000)
            if not batches:
                break
            for tp, messages in batches.items():
                for m in messages:
                    records[(tp.partition, m.offset)] = m.value or b""
        return records
    finally:
        await consumer.stop()


async def test_bulk_send_lands_each_stream_where_a_single_send_would_in_order(
    kafka_bootstrap: str,
) -> None:
    topic = f"sdk-{uuid.uuid4().hex[:10]}"
    await ensure_topics(kafka_bootstrap, [topic], 4)
    streams = [f"job:sdk-{n}" for n in range(7)]
    events = [
        RawEvent(f"event {n}".encode(), streams[n % len(streams)], f"id-{n}") for n in range(5_000)
    ]
    # 16 KiB batches: each partition's share spans many record batches, so the
    # offsets reported across batch boundaries are checked too
    async with LedgerProducer(kafka_bootstrap, topic, max_batch_size=16 * 1024) as producer:
        single: dict[str, Position] = {}
        for stream in streams:
            future = await producer.send_raw(f"probe {stream}".encode(), stream, "probe")
            single[stream] = await future
        positions = await producer.send_raw_many(events)

    assert [p.event_id for p in positions] == [e.event_id for e in events]
    assert len({(p.partition, p.offset) for p in positions}) == len(events)
    stored = await _read_all(kafka_bootstrap, topic, len(events) + len(streams))
    offsets_by_stream: dict[str, list[int]] = defaultdict(list)
    for event, position in zip(events, positions, strict=True):
        # the reported position holds exactly this event
        assert stored[(position.partition, position.offset)] == event.value
        assert position.partition == single[event.stream].partition
        offsets_by_stream[event.stream].append(position.offset)
    for offsets in offsets_by_stream.values():
        assert offsets == sorted(offsets)


async def test_bulk_send_of_nothing_returns_nothing(kafka_bootstrap: str) -> None:
    topic = f"sdk-{uuid.uuid4().hex[:10]}"
    await ensure_topics(kafka_bootstrap, [topic], 2)
    async with LedgerProducer(kafka_bootstrap, topic) as producer:
        assert await producer.send_raw_many([]) == []
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, 0), TopicPartition(topic, 1)])
    finally:
        await consumer.stop()
    assert set(ends.values()) == {0}
