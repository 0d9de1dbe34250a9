"""The authorize service's reader of the control lane: deny early (ADR 0025).

:class:`ControlFollower` reads ``<prefix>.control`` itself, joining no group
and committing nothing, from the positions the ledger's processors committed
for it (``consumer_positions``; the beginning when there are none), so no
control event the ledger has not decided on yet is missed after a restart.
Each record gets the processor's stateless checks
(:func:`ledger.verify.verify_message`) and the signer check against the
committed state (:func:`ledger.seen_controls.judge_seen`); a restricting one
goes into the service's :class:`ledger.seen_controls.SeenControls` and denies
from the next decision on. A refused record (bad signature, unknown or revoked
key, wrong role) has no effect; it is counted and logged.

The follower failing (Kafka unreachable) never turns a deny into an allow:
what it holds stays in force, the decisions fall back to the committed state
for what it has not read, and it reconnects from where it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ledger.attributes import attributes
from ledger.seen_controls import Ignored, SeenControl, SeenControls, judge_seen
from ledger.state import LedgerState
from ledger.verify import Rejected, verify_message

__all__ = ["ControlFollower"]

log = logging.getLogger("claw_ledger.authorize.control")

#: the longest a fetch waits on an idle lane (the lane's latency floor when busy is ~0)
_FETCH_WAIT_MS = 50
#: how often the topic's partitions are counted again: partitions added to a
#: live ledger are followed from then on (ADR 0032)
PARTITION_CHECK_S = 5.0


class ControlFollower:
    """Follows one control topic into ``seen``; ``run`` until cancelled."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        seen: SeenControls,
        state: Callable[[], LedgerState],
        positions: Callable[[], Awaitable[dict[int, int]]],
        *,
        ready: Callable[[], bool] = lambda: True,
        retry_seconds: float = 1.0,
        partition_check_seconds: float = PARTITION_CHECK_S,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.seen = seen
        self._state = state
        self._positions = positions
        self._ready = ready
        self._retry = retry_seconds
        self._partition_check = partition_check_seconds
        #: next offset to read per partition, once known (kept across reconnects)
        self._next: dict[int, int] = {}
        self._ends: dict[int, int] = {}
        self.records = 0
        self.error: str | None = None
        self.connected = False
        #: set once every partition was read up to its end at least once
        self.caught_up = asyncio.Event()
        #: set once caught up, or once the lane could not be read (no one waits on a dead lane)
        self.settled = asyncio.Event()

    @property
    def lag(self) -> int | None:
        """Records on the lane not read yet (``None`` before the first fetch)."""
        if not self._ends:
            return None
        return sum(max(0, end - self._next.get(p, 0)) for p, end in self._ends.items())

    def status(self) -> dict[str, Any]:
        lane = attributes(self, "topic", "connected", "lag", "records", "error")
        return lane | self.seen.status()

    async def run(self) -> None:
        # signers are judged against the committed state: none loaded yet would
        # refuse every record as from an unknown key, for good
        while not self._ready():
            await asyncio.sleep(0.05)
        while True:
            try:
                # a return: the topic has more partitions than were assigned
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.connected = False
                if self.error is None:
                    log.warning("control lane %s not followed (%s); retrying", self.topic, exc)
                self.error = f"{type(exc).__name__}: {exc}"
                self.settled.set()
                await asyncio.sleep(self._retry)

    async def _follow(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            # every partition is sought explicitly; a position that retention removed
            # under the follower reads on from the log's start, never from its end
            # (aiokafka's default), which would skip halts still in the log
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            fetch_max_wait_ms=_FETCH_WAIT_MS,
            client_id="claw-ledger-authorize-control",
        )
        try:
            await consumer.start()
            partitions = await self._partitions(consumer)
            if not partitions:
                raise RuntimeError(f"topic {self.topic} does not exist")
            if self._next and len(partitions) > len(self._next):
                log.info("control lane %s now has %d partitions", self.topic, len(partitions))
            tps = [TopicPartition(self.topic, p) for p in partitions]
            consumer.assign(tps)
            committed = await self._positions() if len(self._next) < len(tps) else {}
            begin = await consumer.beginning_offsets(tps)
            for tp in tps:
                start = self._next.get(tp.partition, committed.get(tp.partition, 0))
                self._next[tp.partition] = start = max(start, begin[tp])
                consumer.seek(tp, start)
            ends = await consumer.end_offsets(tps)
            self._ends = {tp.partition: ends[tp] for tp in tps}
            self.connected, self.error = True, None
            self._check_caught_up()
            counted = time.monotonic()
            while True:
                if time.monotonic() - counted >= self._partition_check:
                    counted = time.monotonic()
                    if len(await self._partitions(consumer)) > len(tps):
                        return
                fetched = await consumer.getmany(*tps, timeout_ms=200, max_records=500)
                for tp, records in fetched.items():
                    for record in records:
                        if record.value is not None:
                            self._take(record.value, tp.partition, record.offset)
                        self._next[tp.partition] = record.offset + 1
                for tp in tps:
                    high = consumer.highwater(tp)
                    if high is not None:
                        self._ends[tp.partition] = high
                self._check_caught_up()
        finally:
            self.connected = False
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def _partitions(self, consumer: Any) -> list[int]:
        # partitions_for_topic() knows only subscribed topics; a full metadata read does
        cluster = await consumer._client.fetch_all_metadata()
        return sorted(cluster.partitions_for_topic(self.topic) or ())

    def _check_caught_up(self) -> None:
        if self.lag == 0:
            self.caught_up.set()
            self.settled.set()

    def _take(self, raw: bytes, partition: int, offset: int) -> SeenControl | None:
        self.records += 1
        verified = verify_message(raw)
        if isinstance(verified, Rejected):
            self._refused(verified, partition, offset)
            return None
        judged = judge_seen(self._state(), verified, time.time())
        if isinstance(judged, Rejected):
            self._refused(judged, partition, offset)
            return None
        if isinstance(judged, Ignored):
            self.seen.counts["ignored"] += 1
            return None
        if self.seen.add(judged):
            log.info(
                "%s %s seen on the control lane (event %s): denying before commit",
                judged.event_type,
                judged.subject,
                judged.event_id,
            )
        elif judged.event_id not in self.seen:
            log.error(
                "seen control event %s not held (%d held, the bound): it acts on commit only",
                judged.event_id,
                len(self.seen),
            )
        return judged

    def _refused(self, rejected: Rejected, partition: int, offset: int) -> None:
        self.seen.counts["refused"] += 1
        log.warning(
            "control record %s/%d@%d (event %s, signer %s) has no effect: %s %s",
            self.topic,
            partition,
            offset,
            rejected.event_id,
            rejected.signer_did,
            rejected.code.value,
            rejected.detail,
        )
