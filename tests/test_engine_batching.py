"""How the aiokafka engine forms its commits (ADR 0026): every chunk verified by
the time a commit starts goes into it, in order, up to the batch size; taking
them never waits for more."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition

from consumers.kafka_engine import Verified, take_verified
from consumers.processor import IngressRecord

TOPIC = "ingress"


def _chunk(partition: int, offsets: range) -> Verified:
    records = [IngressRecord(partition, o, f"{partition}:{o}".encode(), None) for o in offsets]
    return {TopicPartition(TOPIC, partition)}, records, [f"verdict {r.value!r}" for r in records]


def _queue(*chunks: Verified) -> asyncio.Queue[Verified]:
    queue: asyncio.Queue[Verified] = asyncio.Queue()
    for chunk in chunks:
        queue.put_nowait(chunk)
    return queue


def test_a_commit_takes_every_chunk_already_verified_in_order() -> None:
    queue = _queue(_chunk(1, range(3, 6)), _chunk(0, range(0, 3)), _chunk(1, range(6, 9)))
    partitions, records, verdicts = take_verified(queue, _chunk(0, range(3)), limit=100)
    assert queue.empty()
    assert partitions == {TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)}
    # each partition's records stay in offset order across chunks
    assert [(r.partition, r.offset) for r in records if r.partition == 1] == [
        (1, o) for o in range(3, 9)
    ]
    assert len(records) == len(verdicts) == 12
    # verdicts stay paired with their records
    assert all(v == f"verdict {r.value!r}" for r, v in zip(records, verdicts, strict=True))


def test_a_commit_alone_when_nothing_else_is_verified() -> None:
    queue = _queue()
    first = _chunk(2, range(5))
    partitions, records, verdicts = take_verified(queue, first, limit=2000)
    assert (partitions, records, verdicts) == first
    # the chunk handed in is not changed by the merge
    more = _queue(_chunk(2, range(5, 7)))
    take_verified(more, first, limit=2000)
    assert len(first[1]) == 5 and first[0] == {TopicPartition(TOPIC, 2)}


def test_a_commit_stops_taking_at_the_batch_size_and_leaves_the_rest_queued() -> None:
    queue = _queue(*(_chunk(0, range(n, n + 4)) for n in range(4, 40, 4)))
    _, records, _ = take_verified(queue, _chunk(0, range(4)), limit=10)
    # whole chunks only: the limit is reached within the third chunk
    assert [r.offset for r in records] == list(range(12))
    _, rest, _ = take_verified(queue, queue.get_nowait(), limit=1000)
    assert [r.offset for r in rest] == list(range(12, 40))
