"""The verifying processor on a plain aiokafka consumer (the default engine).

Same contract as the faust engine (:mod:`consumers.faust_engine`): every decision and
effect is :class:`~consumers.processor.VerifyingProcessor`'s, the consumed
position lives in Postgres and is written with the effects, and on every
partition assignment the consumer seeks to it. Kafka-side commits only tell a
fresh consumer where to start reading. See docs/adr/0003-processor-engine.md
for why this engine is the default and faust remains available.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import (
    KafkaConnectionError,
    NoOffsetForPartitionError,
    OffsetOutOfRangeError,
)

from consumers.config import ProcessorConfig
from consumers.copies import Copier, outcomes_of
from consumers.failures import (
    BatchFailedError,
    KafkaUnavailableError,
    out_of_range_positions,
    rewound_error,
    with_database_retry,
)
from consumers.processor import BatchReport, IngressRecord, VerifyingProcessor, open_processor
from ledger.batch import lost_records, rewound_partitions
from ledger.errors import ReasonCode, TopicRewoundError
from ledger.registry import Lane

__all__ = [
    "Verified",
    "kafka_group",
    "merge_verified",
    "run_engine",
    "run_lane",
    "start_when_kafka_answers",
    "take_verified",
    "wait_for_kafka",
]


class Verified(NamedTuple):
    """Verified records ready to commit: a chunk of a poll, or several merged."""

    partitions: set[TopicPartition]
    records: list[IngressRecord]
    verdicts: list[Any]
    #: False while more of its poll is still being verified and the consumer is
    #: behind (a backlog): there, committing whole polls keeps commits large (ADR 0026)
    ready: bool


log = logging.getLogger("claw_ledger.processor")

#: tries to reach Kafka at start, backing off from 0.5 s to 10 s as the database
#: retries do (about 35 s of waiting between the first try and the last)
KAFKA_START_ATTEMPTS = 8

#: the least time between two Kafka offset commits of a lane (they are a hint)
HINT_INTERVAL_S = 1.0
#: a fetch position out of range while the log still holds it (a leader change):
#: the pause before fetching from it again
OUT_OF_RANGE_PAUSE_S = 0.5


class _SeekToLedger(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        copier: Copier,
        proc: VerifyingProcessor,
        config: ProcessorConfig,
    ) -> None:
        self._consumer = consumer
        self._copier = copier
        self._proc = proc
        self._config = config
        #: held by the lane from a commit through sending its copies; the copies'
        #: acknowledgement and mark run in ``settling``
        self.committing = asyncio.Lock()
        self.settling: asyncio.Task[None] | None = None
        #: what the last partition assignment failed with (see :meth:`failed`)
        self.failure: Exception | None = None

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        try:
            await self._take(assigned)
        except Exception as exc:
            # aiokafka would only log a listener's failure and read on from wherever
            # its consumer stands: the lane raises it before its next commit instead
            self.failure = exc

    def failed(self) -> None:
        """Raise what the last partition assignment failed with, if it did."""
        failure = self.failure
        if failure is None:
            return
        if isinstance(failure, BatchFailedError | TopicRewoundError):
            raise failure
        raise BatchFailedError(
            f"partition assignment failed: {type(failure).__name__}: {failure}"
        ) from failure

    async def _take(self, assigned: list[TopicPartition]) -> None:
        # the fetcher may already be running: no commit of this lane may interleave
        # with the copy of older outcomes, which would copy its outcomes twice
        async with self.committing:
            if self.settling is not None:
                await self.settling
            partitions = [tp.partition for tp in assigned]
            await with_database_retry(partial(self._proc.assigned, partitions))
            starts = await self._consumer.beginning_offsets(assigned)
            ends = await self._consumer.end_offsets(assigned)
            offsets = await with_database_retry(
                partial(self._proc.reconcile, _by_partition(starts), _by_partition(ends))
            )
            for tp in assigned:
                offset = offsets[tp.partition]
                if offset is None:
                    # nothing of this partition is in the ledger: read it from the start
                    await self._consumer.seek_to_beginning(tp)
                else:
                    self._consumer.seek(tp, offset)
            if self._config.forward:
                try:
                    await _forward_the_rest(self._copier, self._proc, assigned)
                except Exception as exc:  # kept unsent: the next assignment sends them again
                    log.warning("copies to the verified/quarantine topics not sent: %s", exc)


def _by_partition(offsets: dict[TopicPartition, int]) -> dict[int, int]:
    return {tp.partition: offset for tp, offset in offsets.items()}


async def removed_while_reading(
    consumer: AIOKafkaConsumer,
    topic: str,
    out_of_range: dict[TopicPartition, int],
    assigning: asyncio.Lock,
) -> Verified | None:
    """The account of records removed under the consumer (ADR 0033, addendum).

    ``out_of_range`` holds each partition's fetch position that the broker said
    is out of range: every record below it was handed over already. Where the
    log now starts past that position, the records in between were removed by
    retention or deletion while the ledger read the partition: this returns one
    ``RECORDS_LOST`` record per such partition, to commit after what was
    fetched before it, and the consumer reads on from the log's start. A log
    that ends below the position was created again (raises
    :class:`~ledger.errors.TopicRewoundError`). A position the log still holds
    (a leader change) is fetched again after a pause.

    Runs holding ``assigning``, the lock a partition assignment seeks under: a
    partition no longer assigned, or sought elsewhere since the fetch, is the
    assignment's to account for (its reconcile does, from the ledger's position).
    """
    async with assigning:
        read_to: dict[int, int] = {}
        tps: list[TopicPartition] = []
        for tp, offset in out_of_range.items():
            if tp in consumer.assignment() and await consumer.position(tp) == offset:
                tps.append(tp)
                read_to[tp.partition] = offset
        if not tps:
            return None
        starts = _by_partition(await consumer.beginning_offsets(tps))
        rewound = rewound_partitions(read_to, _by_partition(await consumer.end_offsets(tps)))
        if rewound:
            raise rewound_error(topic, rewound)
        records, refusals = lost_records(topic, read_to, starts)
        gone = {tp for tp in tps if starts[tp.partition] > read_to[tp.partition]}
        for tp in gone:
            consumer.seek(tp, starts[tp.partition])
    for refusal in refusals:
        log.error("%s: %s", ReasonCode.RECORDS_LOST.value, refusal.detail)
    if not records:
        # still in the log: the next fetch asks for the same position again
        log.warning("fetch positions %s out of range, fetching again", read_to)
        await asyncio.sleep(OUT_OF_RANGE_PAUSE_S)
        return None
    return Verified(gone, records, list(refusals), True)


async def _forward_the_rest(
    copier: Copier, proc: VerifyingProcessor, assigned: list[TopicPartition]
) -> None:
    """Copy outcomes that were committed but not acknowledged on their topics
    (the previous owner stopped between its commit and the copy)."""
    for tp in assigned:
        mark, outcomes = await proc.unforwarded_outcomes(tp.partition)
        if not outcomes:
            continue
        log.warning(
            "partition %d: copying %d committed outcome(s) that had not reached"
            " the verified/quarantine topics",
            tp.partition,
            len(outcomes),
        )
        await asyncio.gather(*await copier.send(outcomes))
        await proc.record_forwarded({tp.partition: mark})


def _fetch_positions(exc: OffsetOutOfRangeError) -> dict[TopicPartition, int]:
    positions = out_of_range_positions(exc)
    if positions is None:
        raise BatchFailedError(f"an offset out of range without its positions: {exc}") from exc
    return positions


def merge_verified(first: Verified, then: Verified) -> Verified:
    """Two verified chunks as one, ``first``'s records before ``then``'s."""
    return Verified(
        first.partitions | then.partitions,
        first.records + then.records,
        first.verdicts + then.verdicts,
        then.ready,
    )


def take_verified(queue: asyncio.Queue[Verified], first: Verified, limit: int) -> Verified:
    """``first`` merged with every chunk already waiting in ``queue`` (in order),
    until the merge holds ``limit`` records or more; never waits.

    One transaction has a fixed cost (round trips, the position rows, the
    projections' version, the copies): taking what is verified at once, instead
    of a poll per transaction, makes commits as large as the load. The merge is
    ready when its last chunk is, or when it holds ``limit`` records.
    """
    merged = first
    while len(merged.records) < limit and not queue.empty():
        merged = merge_verified(merged, queue.get_nowait())
    return merged._replace(ready=merged.ready or len(merged.records) >= limit)


async def run_engine(
    config: ProcessorConfig,
    *,
    on_batch: Callable[[BatchReport], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Consume, verify and commit every lane of ``config`` until ``stop`` is set
    (or SIGTERM/SIGINT).

    Each lane (ADR 0024) runs :func:`run_lane` on a task of its own, with its
    own consumer, producer and processor, so a backlog on the ingress topic
    never delays a halt on the control topic. A lane that fails stops the
    others; its :class:`~consumers.failures.BatchFailedError` is raised (the
    runner turns it into the exit code).
    """
    stop = stop or asyncio.Event()
    # Batches allocate many short-lived objects and no cycles worth chasing per
    # poll: a larger young-generation threshold measurably cuts collector time.
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    lanes = [
        asyncio.create_task(run_lane(config, lane, on_batch=on_batch, stop=stop), name=lane)
        for lane in config.lanes
    ]
    try:
        await asyncio.wait(lanes, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        # one lane down (or this task cancelled): the others stop at their next round
        stop.set()
        results = await asyncio.gather(*lanes, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
            raise result


async def start_when_kafka_answers(
    bootstrap: str,
    *clients: AIOKafkaProducer | AIOKafkaConsumer,
    attempts: int = KAFKA_START_ATTEMPTS,
) -> None:
    """Start ``clients`` in order, waiting while Kafka does not answer (a broker
    still starting, a stack coming up in any order); raises
    :class:`~consumers.failures.KafkaUnavailableError` when it never does."""
    delay = 0.5
    started: list[AIOKafkaProducer | AIOKafkaConsumer] = []
    for attempt in range(1, attempts + 1):
        try:
            for client in clients:
                if client not in started:
                    await client.start()
                    started.append(client)
            return
        except KafkaConnectionError as exc:
            if attempt == attempts:
                raise KafkaUnavailableError(
                    f"Kafka at {bootstrap} did not answer in {attempt} attempt"
                    f"{'s' if attempt > 1 else ''}: {exc}"
                ) from exc
            log.warning(
                "Kafka at %s does not answer (attempt %d): %s; retry in %.1fs",
                bootstrap,
                attempt,
                exc,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


async def wait_for_kafka(bootstrap: str, attempts: int = KAFKA_START_ATTEMPTS) -> None:
    """Return once Kafka at ``bootstrap`` answers, waiting as a processor's start
    does; raises :class:`~consumers.failures.KafkaUnavailableError` when it never does."""
    probe = AIOKafkaProducer(bootstrap_servers=bootstrap, client_id="claw-ledger-probe")
    try:
        await start_when_kafka_answers(bootstrap, probe, attempts=attempts)
    finally:
        await probe.stop()


def kafka_group(config: ProcessorConfig, lane: Lane) -> str:
    """The Kafka consumer group of a lane's consumers.

    The ledger group (``config.group``, the key of ``consumer_positions``) is
    the same for both lanes; the Kafka group of the control lane is a group of
    its own, so that a rebalance of the ingress consumers (a processor joining
    or leaving) never pauses the control lane. Kafka-side groups only spread
    partitions over processes: positions live in Postgres.
    """
    return config.group if lane == "ingress" else f"{config.group}.{lane}"


async def run_lane(
    config: ProcessorConfig,
    lane: Lane,
    *,
    on_batch: Callable[[BatchReport], None] | None = None,
    stop: asyncio.Event,
) -> None:
    """Consume, verify and commit one lane's topic until ``stop`` is set."""
    topic = config.topic_of(lane)
    proc = await open_processor(config, lane=lane)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=config.kafka_bootstrap,
        group_id=kafka_group(config, lane),
        enable_auto_commit=False,
        # never a silent jump: the listener seeks each assigned partition itself, and
        # a position that retention removed is an error to account for (ADR 0033)
        auto_offset_reset="none",
        isolation_level="read_committed",
        max_poll_records=config.batch_size,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        # partitions added to the topic are assigned at the next read (ADR 0032)
        metadata_max_age_ms=config.metadata_max_age_ms,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=config.kafka_bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        # whole polls are forwarded as record batches: at the default 16 KiB a
        # batch held some 20 envelopes, and each cost a produce request
        max_batch_size=1024 * 1024,
        max_request_size=2 * 1024 * 1024,
        metadata_max_age_ms=config.metadata_max_age_ms,
    )
    copier = Copier(producer, config)
    seeker = _SeekToLedger(consumer, copier, proc, config)
    consumer.subscribe([topic], listener=seeker)
    try:
        # the producer first: a partition assignment may have outcomes to copy
        await start_when_kafka_answers(config.kafka_bootstrap, producer, consumer)
    except BaseException:
        await consumer.stop()
        await producer.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(proc.close(), timeout=10)
        raise
    # the last batch's copies: waiting for their acknowledgements, then moving
    # their forwarded mark (ADR 0008), runs beside the next batch's commit
    # (``seeker.settling``, which a partition assignment waits for too)

    async def settle(futures: list[Any], marks: dict[int, int], since: dict[int, int]) -> None:
        try:
            await asyncio.gather(*futures)
            await proc.record_forwarded(marks, since=since)
        except Exception as exc:  # the next owner of the partition sends them again
            log.warning("copies to the verified/quarantine topics not confirmed: %s", exc)

    # verification runs ahead of the commit in chunks, up to two batches' worth
    # (what two whole polls held before); each commit takes every chunk verified
    # by the time it starts, instead of one poll per transaction (ADR 0026)
    verified: asyncio.Queue[Verified] = asyncio.Queue(
        max(2, -(-2 * config.batch_size // config.verify_chunk))
    )
    # the Kafka offset commit (a hint) and the heartbeat row run beside the next
    # commit instead of in front of it; offsets that arrive while a hint is in
    # flight are sent by that same task once it is done
    hints: dict[TopicPartition, int] = {}
    hinting: asyncio.Task[None] | None = None
    beating: asyncio.Task[None] | None = None

    loop = asyncio.get_running_loop()
    last_hint = -HINT_INTERVAL_S

    async def hint() -> None:
        # at most one offset commit per HINT_INTERVAL_S: each is a Kafka round trip
        # that a batch paid for, and only a fresh consumer's start reads them
        nonlocal last_hint
        while hints:
            wait = last_hint + HINT_INTERVAL_S - loop.time()
            if wait > 0 and not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)
            offsets = dict(hints)
            hints.clear()
            with contextlib.suppress(Exception):  # Kafka commits are only a hint
                await consumer.commit(offsets)
            last_hint = loop.time()

    async def fetch_and_verify() -> None:
        while not stop.is_set():
            try:
                batches = await consumer.getmany(timeout_ms=100, max_records=config.batch_size)
            except OffsetOutOfRangeError as exc:
                # after every chunk fetched before it, in the same queue: committed in order
                lost = await removed_while_reading(
                    consumer, topic, _fetch_positions(exc), seeker.committing
                )
                if lost is not None:
                    await verified.put(lost)
                continue
            except NoOffsetForPartitionError:
                # a partition assigned, not yet sought by the listener to the ledger's
                # position; the listener seeks it, or its failure stops the lane
                await asyncio.sleep(0.1)
                continue
            of_partition = {tp.partition: tp for tp in batches}
            records = [
                IngressRecord(m.partition, m.offset, m.value or b"", m.key)
                for messages in batches.values()
                for m in messages
            ]
            chunks = [
                records[start : start + config.verify_chunk]
                for start in range(0, len(records), config.verify_chunk)
            ]
            # all of the poll's chunks go to the verify thread at once, so that it
            # never idles waiting for a busy event loop to hand it the next one.
            # A poll that reached the end of what its partitions hold (their high
            # watermark at the last fetch): each chunk may be committed while the
            # rest is verified. One with more behind it (a backlog) is committed
            # whole: there, large commits are what keeps up.
            caught_up = all(
                messages[-1].offset + 1 >= (consumer.highwater(tp) or 0)
                for tp, messages in batches.items()
            )
            verifying = [asyncio.ensure_future(proc.verify(chunk)) for chunk in chunks]
            try:
                for n, (chunk, verdicts) in enumerate(zip(chunks, verifying, strict=True)):
                    partitions = {of_partition[r.partition] for r in chunk}
                    ready = caught_up or n == len(chunks) - 1
                    await verified.put(Verified(partitions, chunk, await verdicts, ready))
            finally:
                for pending in verifying:
                    pending.cancel()

    fetcher = asyncio.create_task(fetch_and_verify())
    #: verified records held back until the rest of their poll is (a backlog)
    waiting: Verified | None = None
    try:
        while not stop.is_set():
            seeker.failed()
            getter = asyncio.create_task(verified.get())
            done, _ = await asyncio.wait(
                {getter, fetcher}, timeout=0.5, return_when=asyncio.FIRST_COMPLETED
            )
            if fetcher in done:
                getter.cancel()
                fetcher.result()  # re-raises a fetch failure
                break
            if getter not in done:
                getter.cancel()
                await proc.heartbeat()
                continue
            first = getter.result()
            if waiting is not None:
                first = merge_verified(waiting, first)
            waiting = take_verified(verified, first, config.batch_size)
            if not waiting.ready:
                continue  # the rest of a poll with a backlog behind it is being verified
            partitions, records, verdicts, _ = waiting
            waiting = None
            async with seeker.committing:
                seeker.failed()  # never a commit after an assignment that failed
                before = {tp.partition: proc.next_offset(tp.partition) for tp in partitions}
                report = await with_database_retry(partial(proc.commit_verified, records, verdicts))
                if beating is None or beating.done():
                    beating = asyncio.create_task(proc.heartbeat())
                if seeker.settling is not None:
                    await seeker.settling
                offsets = {
                    tp: offset
                    for tp in partitions
                    if (offset := proc.next_offset(tp.partition)) is not None
                }
                if config.forward:
                    # only what this commit added: a partition of re-delivered records
                    # alone gets no mark, and a mark moves only past a forwarded prefix
                    marks = {
                        tp.partition: offset
                        for tp, offset in offsets.items()
                        if offset != before[tp.partition]
                    }
                    since = {partition: before[partition] or 0 for partition in marks}
                    futures = await copier.send(outcomes_of(report))
                    seeker.settling = asyncio.create_task(settle(futures, marks, since))
            if on_batch is not None:
                on_batch(report)
            hints.update(offsets)
            if hinting is None or hinting.done():
                hinting = asyncio.create_task(hint())
    finally:
        fetcher.cancel()
        with contextlib.suppress(BaseException):
            await fetcher
        if seeker.settling is not None:
            await seeker.settling  # never raises; a crash instead re-sends these copies
        for task in (hinting, beating):
            if task is not None:
                await task  # never raises: both log or suppress their failures
        await consumer.stop()
        await producer.stop()
        # bounded: after a failed batch the database may be unreachable, and the
        # runner must still get to exit so that the supervisor restarts us
        with contextlib.suppress(Exception):
            await asyncio.wait_for(proc.close(), timeout=10)
