"""The verifying processor as a faust-streaming app.

faust feeds batches from the ingress topic; all decisions and all effects are
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
from dataclasses import dataclass
from functools import partial
from typing import Any

import asyncpg
import faust
from faust.types import TP

from consumers import store
from consumers.failures import with_database_retry
from consumers.processor import BatchReport, IngressRecord, VerifyingProcessor
from ledger.registry import DEFAULT_RULE_SETTINGS, RuleSettings

__all__ = ["ProcessorConfig", "create_app", "run_faust_worker"]

log = logging.getLogger("claw_ledger.processor")


@dataclass(frozen=True)
class ProcessorConfig:
    kafka_bootstrap: str
    database_url: str
    ingress_topic: str
    verified_topic: str
    quarantine_topic: str
    group: str = "claw-ledger-verifier"
    batch_size: int = 2000
    batch_within_s: float = 0.05
    max_message_bytes: int = 1_048_576
    forward: bool = True
    datadir: str | None = None
    rule_settings: RuleSettings = DEFAULT_RULE_SETTINGS


async def _connection_init(conn: asyncpg.Connection) -> None:
    await store.init_connection(conn)


def create_app(
    config: ProcessorConfig, on_batch: Callable[[BatchReport], None] | None = None
) -> faust.App:
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
        datadir=config.datadir or ".claw-ledger/processor",
    )
    ingress = app.topic(config.ingress_topic, value_type=bytes, key_type=bytes)
    verified = app.topic(config.verified_topic, value_type=bytes, key_type=bytes)
    quarantine = app.topic(config.quarantine_topic, value_type=bytes, key_type=bytes)
    holder: dict[str, Any] = {}

    async def processor() -> VerifyingProcessor:
        if "processor" not in holder:
            pool = await asyncpg.create_pool(
                config.database_url, min_size=1, max_size=2, init=_connection_init
            )
            proc = VerifyingProcessor(
                pool,
                group=config.group,
                topic=config.ingress_topic,
                trust_root=None,
                max_message_bytes=config.max_message_bytes,
                # this engine's copies stay best effort (ADR 0008)
                copies_tracked=False,
                rule_settings=config.rule_settings,
            )
            await proc.start()
            holder["pool"] = pool
            holder["processor"] = proc
        result: VerifyingProcessor = holder["processor"]
        return result

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def _seek_to_ledger_positions(sender: Any, assigned: set[TP], **_: Any) -> None:
        proc = await processor()
        async with holder["pool"].acquire() as conn:
            proc.positions = await store.load_positions(conn, config.group, config.ingress_topic)
        for tp in assigned:
            if tp.topic != config.ingress_topic:
                continue
            offset = proc.next_offset(tp.partition)
            if offset is not None:
                await app.consumer.seek(tp, offset)

    @app.agent(ingress)
    async def verify(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        proc = await processor()
        batches = stream.take_events(  # type: ignore[attr-defined]
            config.batch_size, within=config.batch_within_s
        )
        async for events in batches:
            records = [
                IngressRecord(
                    partition=e.message.partition,
                    offset=e.message.offset,
                    value=e.message.value,
                    key=e.message.key,
                )
                for e in events
            ]
            report = await with_database_retry(partial(proc.process, records))
            if config.forward:
                await _forward(report, verified, quarantine)
            if on_batch is not None:
                on_batch(report)
            yield None

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
    config: ProcessorConfig, *, status: bool = False, loglevel: str = "warning"
) -> None:
    """Run the faust worker until interrupted (blocking)."""
    from consumers.runner import StatusLine

    counters = StatusLine()
    app = create_app(config, on_batch=counters.add)
    if status:

        @app.timer(1.0)  # type: ignore[untyped-decorator]
        async def _print_status() -> None:
            sys.stderr.write("\r" + counters.line())
            sys.stderr.flush()

    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
