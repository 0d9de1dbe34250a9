"""The verifying processor as a faust-streaming app (``--engine faust``).

Imported only when that engine runs: nothing else imports this module, so the
CLI and the default engine never load faust.

faust feeds batches from each lane's topic (ingress, control: one agent and
one processor each); all decisions and all effects are
:class:`~consumers.processor.VerifyingProcessor`'s. Correctness never depends
on faust's own offsets (see docs/adr/0001-exactly-once.md): the consumed
position lives in Postgres, is written in the same transaction as the
effects, and on every partition assignment the consumer seeks to it. faust's
Kafka-side commits are only an optimisation for where to resume reading.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from functools import partial
from typing import Any, NoReturn

import faust
from faust.types import TP

from consumers.config import ProcessorConfig
from consumers.failures import BatchFailedError, with_database_retry
from consumers.processor import BatchReport, IngressRecord, VerifyingProcessor, open_processor
from ledger.batch import split_at_gaps
from ledger.errors import TopicRewoundError
from ledger.registry import Lane

__all__ = ["create_app", "run_faust_worker"]

log = logging.getLogger("claw_ledger.processor")


def create_app(
    config: ProcessorConfig,
    on_batch: Callable[[BatchReport], None] | None = None,
    on_failure: Callable[[BatchFailedError | TopicRewoundError], NoReturn] | None = None,
) -> faust.App:
    """The faust app. A batch that cannot be committed goes to ``on_failure``
    (the runner's exit), since faust would only log an agent's exception and
    restart the agent; without it, the exception propagates into faust."""
    app = faust.App(
        config.group,
        broker=f"kafka://{config.kafka_bootstrap}",
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=False,
        topic_disable_leader=True,
        topic_allow_declare=False,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_commit_every=config.batch_size,
        stream_buffer_maxsize=config.batch_size * 2,
        consumer_max_fetch_size=8 * 1024 * 1024,
        producer_max_request_size=2 * 1024 * 1024,
        # partitions added to a live ledger are assigned within this (ADR 0032)
        consumer_metadata_max_age_ms=config.metadata_max_age_ms,
        producer_metadata_max_age_ms=config.metadata_max_age_ms,
        datadir=config.datadir or ".claw-ledger/processor",
    )
    verified = app.topic(config.verified_topic, value_type=bytes, key_type=bytes)
    quarantine = app.topic(config.quarantine_topic, value_type=bytes, key_type=bytes)
    #: lane -> its started processor (one per lane, like the aiokafka engine)
    holder: dict[str, VerifyingProcessor] = {}
    lane_of_topic = {config.topic_of(lane): lane for lane in config.lanes}

    async def processor(lane: Lane) -> VerifyingProcessor:
        if lane not in holder:
            # this engine's copies stay best effort (ADR 0008)
            # faust would only log a refusal raised inside its agent and restart
            # the agent: check every digest before consuming instead (ADR 0020)
            holder[lane] = await open_processor(
                replace(config, control_check="start"), copies_tracked=False, lane=lane
            )
        return holder[lane]

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def _seek_to_ledger_positions(sender: Any, assigned: set[TP], **_: Any) -> None:
        for topic, lane in lane_of_topic.items():
            mine = [tp for tp in assigned if tp.topic == topic]
            if not mine:
                continue
            proc = await processor(lane)
            await proc.assigned(tp.partition for tp in mine)
            starts = await app.consumer.earliest_offsets(*mine)
            ends = await app.consumer.highwaters(*mine)
            try:
                offsets = await proc.reconcile(
                    {tp.partition: starts[tp] for tp in mine},
                    {tp.partition: ends[tp] for tp in mine},
                )
            except TopicRewoundError as error:
                if on_failure is None:
                    raise
                on_failure(error)
            for tp in mine:
                offset = offsets[tp.partition]
                if offset is not None:
                    await app.consumer.seek(tp, offset)

    async def removed_ahead(
        proc: VerifyingProcessor, records: list[IngressRecord], topic: str
    ) -> None:
        """Records removed from Kafka while this engine read (ADR 0033): faust's
        consumer resets to the log's new start and delivers what follows, so a
        partition whose first record in ``records`` (a run of
        :func:`~ledger.batch.split_at_gaps`) lies past the ledger's position has a gap.
        Offsets also skip a transaction's markers: the gap counts only when the
        log now starts past the position, and is then recorded as at assignment
        (:meth:`VerifyingProcessor.reconcile`, ``RECORDS_LOST``)."""
        firsts: dict[int, int] = {}
        for record in records:
            firsts.setdefault(record.partition, record.offset)
        gaps = [
            TP(topic, partition)
            for partition, first in firsts.items()
            if (expected := proc.next_offset(partition)) is not None and first > expected
        ]
        if not gaps:
            return
        starts = await app.consumer.earliest_offsets(*gaps)
        ends = await app.consumer.highwaters(*gaps)
        await with_database_retry(
            partial(
                proc.reconcile,
                {tp.partition: starts[tp] for tp in gaps},
                {tp.partition: ends[tp] for tp in gaps},
            )
        )

    @app.timer(0.5)  # type: ignore[untyped-decorator]
    async def _heartbeat() -> None:
        # the authorize service measures its freshness against it (ADR 0015)
        for proc in list(holder.values()):
            await proc.heartbeat()

    def lane_agent(lane: Lane) -> None:
        """An agent of its own per lane: faust runs each agent on its own task
        and buffers each topic apart, so a backlog on one lane does not hold
        the other's stream (both share one consumer, so their fetches do)."""
        source = app.topic(config.topic_of(lane), value_type=bytes, key_type=bytes)

        async def verify(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
            proc = await processor(lane)
            batches = stream.take_events(  # type: ignore[attr-defined]
                config.batch_size, within=config.batch_within_s
            )
            async for events in batches:
                records = [
                    IngressRecord(
                        partition=e.message.partition,
                        offset=e.message.offset,
                        # a tombstone has no value: refused as empty, never a crash
                        value=e.message.value or b"",
                        key=e.message.key,
                    )
                    for e in events
                ]
                read_to = {
                    r.partition: at
                    for r in records
                    if (at := proc.next_offset(r.partition)) is not None
                }
                for run in split_at_gaps(records, read_to):
                    try:
                        await removed_ahead(proc, run, source.get_topic_name())
                        report = await with_database_retry(partial(proc.process, run))
                    except (BatchFailedError, TopicRewoundError) as exc:
                        if on_failure is None:
                            raise
                        on_failure(exc)
                    if config.forward:
                        await _forward(report, verified, quarantine)
                    if on_batch is not None:
                        on_batch(report)
                yield None

        verify.__name__ = verify.__qualname__ = f"verify_{lane}"
        app.agent(source, name=f"verify_{lane}")(verify)

    for lane in config.lanes:
        lane_agent(lane)

    return app


async def _forward(report: BatchReport, verified: Any, quarantine: Any) -> None:
    """Copy outcomes to the verified and quarantine topics, after the commit."""
    futures = []
    for item in report.accepted:
        futures.append(
            await verified.send(key=item.stream.encode("utf-8"), value=item.record.value)
        )
    for bad in report.quarantined:
        futures.append(
            await quarantine.send(
                key=bad.record.key,
                value=bad.record.value,
                headers=[
                    ("reason_code", bad.code.encode()),
                    ("source_partition", str(bad.record.partition).encode()),
                    ("source_offset", str(bad.record.offset).encode()),
                ],
            )
        )
    if futures:
        await asyncio.gather(*futures)


def run_faust_worker(
    config: ProcessorConfig,
    *,
    on_batch: Callable[[BatchReport], None] | None = None,
    on_failure: Callable[[BatchFailedError | TopicRewoundError], NoReturn] | None = None,
    status_line: Callable[[], str] | None = None,
    loglevel: str = "warning",
) -> None:
    """Run the faust worker until interrupted (blocking); with ``status_line``,
    print it to stderr every second."""
    app = create_app(config, on_batch=on_batch, on_failure=on_failure)
    if status_line is not None:
        line = status_line

        @app.timer(1.0)  # type: ignore[untyped-decorator]
        async def _print_status() -> None:
            sys.stderr.write("\r" + line())
            sys.stderr.flush()

    # a command that set logging up keeps it (faust and mode records then go
    # through its handler); otherwise faust sets up its own, as it always did
    configured = bool(logging.getLogger().handlers)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, override_logging=not configured)
    worker.execute_from_commandline()
