"""Copies of committed outcomes on the verified and quarantine topics (the
aiokafka engine; ADR 0008 for when they are sent, ADR 0032 for where).

A copy goes to the partition number its record came from on its lane's topic:
the ledger's topics are created with one partition count, so the same key
hashes to the same number on each and every stream stays in order on its copy
topic. Partitions can be added to a live ledger (``claw-ledger services
topics --partitions N``), and for a moment, or for good when a topic was grown
by hand, a copy topic may not have the partition a record came from. Then:

1. the producer's metadata is read again (at most once per
   :data:`REFRESH_INTERVAL_S` per topic): a topic grown a moment ago is seen;
2. a partition still missing is mapped to ``partition mod count``
   (:func:`copy_partition`), one fixed partition per source partition, so
   each stream still stays in order; the first such copy is logged with what
   to run.

Never an error: a copy the producer cannot place would stop the processor at
every restart (the copies are re-sent after each assignment).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Collection
from typing import Any

from aiokafka import AIOKafkaProducer

from consumers.config import ProcessorConfig
from ledger.batch import BatchReport, Outcome

__all__ = ["REFRESH_INTERVAL_S", "Copier", "copy_partition", "outcomes_of"]

log = logging.getLogger("claw_ledger.processor")

#: the least time between two forced metadata reads for one copy topic
REFRESH_INTERVAL_S = 5.0


def copy_partition(partition: int, known: Collection[int]) -> int:
    """The partition of a copy topic (whose partitions are ``known``) that takes the
    copies of source ``partition``: the same number when it exists."""
    if partition in known:
        return partition
    ordered = sorted(known)
    return ordered[partition % len(ordered)]


def outcomes_of(report: BatchReport) -> list[Outcome]:
    """A committed batch's outcomes, accepted first, as the copies to send."""
    accepted = [
        Outcome(item.record.partition, item.record.offset, item.record.key, item.record.value)
        for item in report.accepted
    ]
    refused = [
        Outcome(bad.record.partition, bad.record.offset, bad.record.key, bad.record.value, bad.code)
        for bad in report.quarantined
    ]
    return accepted + refused


class Copier:
    """Sends outcomes to the copy topics as whole record batches."""

    def __init__(self, producer: AIOKafkaProducer, config: ProcessorConfig) -> None:
        self._producer = producer
        self._config = config
        self._refreshed: dict[str, float] = {}
        #: (copy topic, source partition) pairs already logged as mapped elsewhere
        self._mapped: set[tuple[str, int]] = set()

    async def send(self, outcomes: list[Outcome]) -> list[Any]:
        """Send ``outcomes``; returns the send futures (the copies are acknowledged
        when they resolve)."""
        producer = self._producer
        builders: dict[tuple[str, int], Any] = {}
        targets: dict[tuple[str, int], int] = {}
        futures: list[Any] = []
        for outcome in outcomes:
            if outcome.reason_code is None:
                topic, headers = self._config.verified_topic, []
            else:
                topic = self._config.quarantine_topic
                headers = [
                    ("reason_code", outcome.reason_code.encode()),
                    ("source_partition", str(outcome.partition).encode()),
                    ("source_offset", str(outcome.offset).encode()),
                ]
            source = (topic, outcome.partition)
            target = targets.get(source)
            if target is None:
                target = targets[source] = await self._target(topic, outcome.partition)
            key, value = outcome.key, outcome.value
            builder = builders.get(source)
            if builder is None:
                builder = builders[source] = producer.create_batch()
            # None: the batch is full; send it and start the next
            if builder.append(key=key, value=value, timestamp=None, headers=headers) is None:
                futures.append(await producer.send_batch(builder, topic, partition=target))
                builder = builders[source] = producer.create_batch()
                builder.append(key=key, value=value, timestamp=None, headers=headers)
        for (topic, partition), builder in builders.items():
            if builder.record_count():
                futures.append(
                    await producer.send_batch(builder, topic, partition=targets[topic, partition])
                )
        return futures

    async def _target(self, topic: str, partition: int) -> int:
        known = self._producer.client.cluster.partitions_for_topic(topic)
        if not known or partition not in known:
            last = self._refreshed.get(topic, -math.inf)
            if time.monotonic() - last >= REFRESH_INTERVAL_S:
                self._refreshed[topic] = time.monotonic()
                await self._producer.client.force_metadata_update()
            known = await self._producer.partitions_for(topic)
        target = copy_partition(partition, known)
        if target != partition and (topic, partition) not in self._mapped:
            self._mapped.add((topic, partition))
            log.warning(
                "%s has %d partition(s), none numbered %d: copies from partition %d go to"
                " partition %d; give the ledger topics one partition count with"
                " `claw-ledger services topics --partitions N`",
                topic,
                len(known),
                partition,
                partition,
                target,
            )
        return target
