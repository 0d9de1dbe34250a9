"""The producer SDK against the real broker (and a running ledger): where events land and in what
order."""

from __future__ import annotations

import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from claw_ledger.services.kafka import ensure_topics
from ledger.crypto import KeyPair
from ledger.roles import Role
from producers import Committed, Quarantined, await_verdict
from producers.sdk import LedgerProducer, NewEvent, Position, RawEvent
from tests.fixtures_ledger import LedgerHarness, fetch_until, start_ledger

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


async def test_publish_many_commits_every_event_in_per_stream_order(
    ledger_servers: Any, ledger_settings: Any, tmp_path: Path
) -> None:
    # a ledger of its own: hundreds of events on the session's shared ledger
    # would push other tests' events off their timeline pages
    ledger = await start_ledger(ledger_servers, ledger_settings, tmp_path, register_roles=False)
    try:
        await _publish_many_and_check(ledger)
    finally:
        ledger.processor.stop()


async def _publish_many_and_check(ledger: LedgerHarness) -> None:
    runtime = KeyPair.generate("runtime")
    await ledger.register(runtime, "runtime", "runtime")
    run = uuid.uuid4().hex[:8]
    streams = [f"openclaw-policy:{run}-{n}" for n in range(5)]
    drafts = [
        NewEvent(
            "policy.attested",
            streams[(n * 7) % len(streams)],  # interleaved, so batches mix the streams
            {
                "ok": n % 2 == 0,
                "policy_hash": None,
                "workspace_hash": f"ws-{n}",
                "findings_hash": f"f-{n}",
                "attestation_hash": f"a-{n}",
                "checked_at": "2026-11-30T00:00:00.000Z",
                "policy_path": "openclaw.policy.json5",
                "findings_count": n,
            },
        )
        for n in range(600)
    ]
    async with ledger.producer() as producer:
        positions = await producer.publish_many(runtime, drafts)
    assert [p.stream for p in positions] == [d.stream for d in drafts]
    ids = [p.event_id for p in positions]
    assert len(set(ids)) == len(drafts)

    conn = await ledger.connect()
    try:
        rows = await fetch_until(
            conn,
            "SELECT event_id::text AS id, stream, kafka_partition, kafka_offset,"
            " payload->'body'->>'attestation_hash' AS attestation FROM events"
            " WHERE event_id = ANY($1::uuid[]) ORDER BY position",
            ids,
            count=len(ids),
            timeout=120,
        )
        quarantined = await conn.fetchval(
            "SELECT count(*) FROM quarantine WHERE event_id::text = ANY($1::text[])", ids
        )
    finally:
        await conn.close()
    assert quarantined == 0
    assert len(rows) == len(ids), ledger.processor.log_tail()
    by_id = {p.event_id: p for p in positions}
    for row in rows:
        # committed where publish_many said Kafka stored it
        assert (row["kafka_partition"], row["kafka_offset"]) == (
            by_id[row["id"]].partition,
            by_id[row["id"]].offset,
        )
    for stream in streams:
        given = [f"a-{n}" for n, d in enumerate(drafts) if d.stream == stream]
        committed = [r["attestation"] for r in rows if r["stream"] == stream]
        assert committed == given


async def test_the_verdict_of_a_position_is_that_messages_own(
    running_ledger: LedgerHarness,
) -> None:
    """An event id sent again with another body (a "corrected retry") is quarantined
    as a conflicting duplicate, while the id reads as committed: the verdict of the
    Position is the message's own. An exact re-send is recorded once: committed."""
    ledger = running_ledger
    assert ledger.settings.database_url
    url = ledger.settings.database_url
    operator = ledger.keys[Role.OPERATOR]
    event_id = str(uuid.uuid4())
    target = f"job:retry-{event_id[:8]}"

    def body(reason: str) -> dict[str, str]:
        return {"target": target, "reason": reason}

    stream = f"halt:{target}"
    async with ledger.producer() as producer:
        raw = producer.sign(operator, "agent.halted", stream, body("v1"), event_id=event_id)
        first = await (await producer.send_raw(raw.to_bytes(), stream, event_id))
        committed = await await_verdict(url, first)
        assert isinstance(committed, Committed), committed
        retry = await producer.publish(
            operator, "agent.halted", stream, body("v2"), event_id=event_id
        )
        refused = await await_verdict(url, retry)
        assert isinstance(refused, Quarantined), refused
        assert refused.reason_code == "DUPLICATE_EVENT_CONFLICT"
        # the id alone answers what the ledger holds for it: the first message
        assert await await_verdict(url, event_id) == committed
        # the same envelope bytes again (a re-send): no row of its own, the first one's verdict
        again = await (await producer.send_raw(raw.to_bytes(), stream, event_id))
        assert again.offset > retry.offset > first.offset
        assert await await_verdict(url, again) == committed
