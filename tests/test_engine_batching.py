"""How the aiokafka engine forms its commits (ADR 0026): every chunk verified by
the time a commit starts goes into it, in order, up to the batch size; taking
them never waits; the chunks of a poll with a backlog behind it are held until
the poll is verified whole."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition

from consumers.kafka_engine import Verified, merge_verified, take_verified
from consumers.processor import IngressRecord

TOPIC = "ingress"


def _chunk(partition: int, offsets: range, *, ready: bool = True) -> Verified:
    records = [IngressRecord(partition, o, f"{partition}:{o}".encode(), None) for o in offsets]
    verdicts = [f"verdict {r.value!r}" for r in records]
    return Verified({TopicPartition(TOPIC, partition)}, records, verdicts, ready)


def _queue(*chunks: Verified) -> asyncio.Queue[Verified]:
    queue: asyncio.Queue[Verified] = asyncio.Queue()
    for chunk in chunks:
        queue.put_nowait(chunk)
    return queue


def test_a_commit_takes_every_chunk_already_verified_in_order() -> None:
    queue = _queue(_chunk(1, range(3, 6)), _chunk(0, range(0, 3)), _chunk(1, range(6, 9)))
    merged = take_verified(queue, _chunk(0, range(3)), limit=100)
    assert queue.empty()
    assert merged.ready
    assert merged.partitions == {TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)}
    # each partition's records stay in offset order across chunks
    assert [(r.partition, r.offset) for r in merged.records if r.partition == 1] == [
        (1, o) for o in range(3, 9)
    ]
    assert len(merged.records) == len(merged.verdicts) == 12
    # verdicts stay paired with their records
    assert all(
        v == f"verdict {r.value!r}" for r, v in zip(merged.records, merged.verdicts, strict=True)
    )


def test_a_commit_alone_when_nothing_else_is_verified() -> None:
    first = _chunk(2, range(5))
    assert take_verified(_queue(), first, limit=2000) == first
    # the chunk handed in is not changed by a merge
    take_verified(_queue(_chunk(2, range(5, 7))), first, limit=2000)
    merge_verified(first, _chunk(3, range(2)))
    assert len(first.records) == 5 and first.partitions == {TopicPartition(TOPIC, 2)}


def test_a_commit_stops_taking_at_the_batch_size_and_leaves_the_rest_queued() -> None:
    queue = _queue(*(_chunk(0, range(n, n + 4)) for n in range(4, 40, 4)))
    merged = take_verified(queue, _chunk(0, range(4)), limit=10)
    # whole chunks only: the limit is reached within the third chunk
    assert [r.offset for r in merged.records] == list(range(12))
    rest = take_verified(queue, queue.get_nowait(), limit=1000)
    assert [r.offset for r in rest.records] == list(range(12, 40))


def test_a_backlogged_poll_waits_for_its_last_chunk_unless_the_batch_size_is_reached() -> None:
    # a backlog: the poll's chunks are not ready until its last one is verified
    held = take_verified(
        _queue(_chunk(0, range(4, 8), ready=False)), _chunk(0, range(4), ready=False), limit=100
    )
    assert not held.ready and len(held.records) == 8
    whole = take_verified(_queue(), merge_verified(held, _chunk(0, range(8, 12))), limit=100)
    assert whole.ready and [r.offset for r in whole.records] == list(range(12))
    # a merge that ends on the first chunk of the next backlogged poll waits for it
    next_poll = take_verified(_queue(_chunk(1, range(4), ready=False)), whole, limit=100)
    assert not next_poll.ready
    # the batch size bounds the wait
    capped = take_verified(
        _queue(_chunk(0, range(4, 8), ready=False)), _chunk(0, range(4), ready=False), limit=6
    )
    assert capped.ready and len(capped.records) == 8
