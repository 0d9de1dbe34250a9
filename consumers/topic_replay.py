"""Read the lanes' topics from their beginning for a replay: every partition
of each, merged into one order, up to the end they had when the read started.

Kafka orders each partition; nothing orders partitions (or topics) against
each other. The merge takes the record with the smallest (timestamp, topic
rank, partition, offset) next, the topics ranked in the order given (the
control lane first: on a tie it is what the processor commits first). That
respects the publishing contract (an event that depends on another is
published only after the first was committed, so it carries a later
timestamp), which is all the rules need; what it does not reproduce is a
halt that overtook events published before it (ADR 0024). The consumer reads committed records
only, joins no group and commits nothing, so it never disturbs the processor.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections import deque
from collections.abc import AsyncGenerator, Sequence
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import OffsetOutOfRangeError

from consumers.failures import out_of_range_positions
from ledger.errors import ServiceError
from ledger.replay import StoredEvent

__all__ = ["iter_topic", "iter_topics", "removed_heads", "topic_size"]

log = logging.getLogger("claw_ledger.replay")

#: a fetch position out of range that the log still holds: the pause before again
OUT_OF_RANGE_PAUSE_S = 0.5


async def _open(
    bootstrap: str, topics: Sequence[str]
) -> tuple[AIOKafkaConsumer, list[TopicPartition]]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        # every partition is sought explicitly; a position retention removed under
        # the read is an error to account for, never a jump (see iter_topics)
        auto_offset_reset="none",
        isolation_level="read_committed",
        fetch_max_bytes=16 * 1024 * 1024,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    try:
        await consumer.start()
        # partitions_for_topic() knows only subscribed topics; a full metadata read
        # (what consumer.topics() does) knows them all
        cluster = await consumer._client.fetch_all_metadata()
        found = {topic: cluster.partitions_for_topic(topic) for topic in topics}
    except Exception as exc:
        await consumer.stop()
        raise ServiceError(f"cannot read topic {', '.join(topics)} at {bootstrap}: {exc}") from exc
    missing = [topic for topic, partitions in found.items() if not partitions]
    if len(missing) < len(topics):
        # a ledger from before the control lane has no control topic: nothing was
        # published there, so there is nothing to merge from it
        for topic in missing:
            log.warning("topic %s does not exist at %s; read without it", topic, bootstrap)
        topics = [topic for topic in topics if topic not in missing]
    else:
        await consumer.stop()
        raise ServiceError(
            f"topic {', '.join(missing)} does not exist at {bootstrap}",
            hint="create the ledger's topics with `claw-ledger services topics`",
        )
    tps = [TopicPartition(topic, p) for topic in topics for p in sorted(found[topic])]
    consumer.assign(tps)
    return consumer, tps


async def topic_size(bootstrap: str, topic: str | Sequence[str]) -> int:
    """How many offsets the topics' partitions hold now (an upper bound on records)."""
    consumer, tps = await _open(bootstrap, [topic] if isinstance(topic, str) else topic)
    try:
        begin = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
        return sum(end[tp] - begin[tp] for tp in tps)
    finally:
        await consumer.stop()


async def removed_heads(bootstrap: str, topics: Sequence[str]) -> dict[str, int]:
    """``{"<topic>-<partition>": first offset}`` of every partition whose log no
    longer starts at offset 0: records Kafka removed (retention, deletion) that a
    replay of the topics cannot see."""
    consumer, tps = await _open(bootstrap, topics)
    try:
        begin = await consumer.beginning_offsets(tps)
        return {f"{tp.topic}-{tp.partition}": begin[tp] for tp in tps if begin[tp] > 0}
    finally:
        await consumer.stop()


def iter_topic(
    bootstrap: str, topic: str, *, batch: int = 500, removed: dict[str, int] | None = None
) -> AsyncGenerator[StoredEvent, None]:
    """Every committed record of ``topic`` from its beginning up to the end
    offsets of when the read started, merged across partitions."""
    return iter_topics(bootstrap, [topic], batch=batch, removed=removed)


async def iter_topics(
    bootstrap: str,
    topics: Sequence[str],
    *,
    batch: int = 500,
    removed: dict[str, int] | None = None,
) -> AsyncGenerator[StoredEvent, None]:
    """Every committed record of ``topics`` from their beginning up to the end
    offsets of when the read started, merged across topics and partitions
    (on equal timestamps, the topic given first comes first).

    Records that retention or a deletion removes while they are read cannot be
    yielded: the read goes on from where the partition then starts, and
    ``removed`` (as :func:`removed_heads` gives it) gets ``"<topic>-<partition>":
    that offset``, so that the caller can say the replay is incomplete."""
    consumer, tps = await _open(bootstrap, topics)
    rank = {topic: i for i, topic in enumerate(topics)}
    try:
        begin = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
        buffers: dict[TopicPartition, deque[StoredEvent]] = {}
        for tp in tps:
            buffers[tp] = deque()
            consumer.seek(tp, begin[tp])

        async def refill(tp: TopicPartition) -> bool:
            while not buffers[tp] and await consumer.position(tp) < end[tp]:
                try:
                    fetched = await consumer.getmany(tp, timeout_ms=1000, max_records=batch)
                except OffsetOutOfRangeError as exc:
                    await _read_on_past_removed(consumer, exc, removed)
                    continue
                for message in fetched.get(tp, []):
                    if message.offset < end[tp]:
                        buffers[tp].append(_stored(message))
            return bool(buffers[tp])

        heap: list[tuple[datetime, int, int, int, TopicPartition]] = []
        for tp in tps:
            if await refill(tp):
                head = buffers[tp][0]
                assert head.recorded_at is not None and head.offset is not None
                heap.append((head.recorded_at, rank[tp.topic], tp.partition, head.offset, tp))
        heapq.heapify(heap)
        while heap:
            *_, tp = heapq.heappop(heap)
            yield buffers[tp].popleft()
            if await refill(tp):
                head = buffers[tp][0]
                assert head.recorded_at is not None and head.offset is not None
                heapq.heappush(
                    heap, (head.recorded_at, rank[tp.topic], tp.partition, head.offset, tp)
                )
    finally:
        await consumer.stop()


async def _read_on_past_removed(
    consumer: AIOKafkaConsumer, exc: OffsetOutOfRangeError, removed: dict[str, int] | None
) -> None:
    """Seek each partition whose fetch position ``exc`` says is out of range to
    where its log now starts, and note that start in ``removed``. A log that now
    ends below the position was deleted and created again: the replay stops
    (:class:`~ledger.errors.ServiceError`) rather than ask for it forever."""
    positions = out_of_range_positions(exc)
    if positions is None:
        raise ServiceError(f"reading the topics failed: {exc}") from exc
    starts = await consumer.beginning_offsets(list(positions))
    ends = await consumer.end_offsets(list(positions))
    for tp, position in positions.items():
        start = starts[tp]
        if ends[tp] < position:
            raise ServiceError(
                f"{tp.topic} partition {tp.partition} now ends at offset {ends[tp]}, below"
                f" the {position} records this replay read: the topic was deleted and"
                " created again while it was read",
                hint="replay from the ledger (`--source ledger`), which holds what was read",
            )
        if start <= position:  # still in the log (a leader change): fetch it again
            await asyncio.sleep(OUT_OF_RANGE_PAUSE_S)
            consumer.seek(tp, position)
            continue
        log.error(
            "offsets %d to %d of %s partition %d were removed from Kafka while this"
            " replay read them; it reads on from %d",
            position,
            start - 1,
            tp.topic,
            tp.partition,
            start,
        )
        if removed is not None:
            removed[f"{tp.topic}-{tp.partition}"] = start
        consumer.seek(tp, start)


def _stored(message: object) -> StoredEvent:
    offset: int = message.offset  # type: ignore[attr-defined]
    return StoredEvent(
        # a record without a value is bad input the processor refused as
        # MALFORMED_JSON (empty bytes): a replay counts it the same way
        raw=bytes(message.value or b""),  # type: ignore[attr-defined]
        partition=message.partition,  # type: ignore[attr-defined]
        topic=message.topic,  # type: ignore[attr-defined]
        offset=offset,
        recorded_at=datetime.fromtimestamp(message.timestamp / 1000, UTC),  # type: ignore[attr-defined]
    )
