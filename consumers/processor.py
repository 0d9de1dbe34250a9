"""The verifying processor: a thin adapter between an engine and a ledger store.

It owns the in-memory ledger state and partition positions, runs the pure
verification for a batch of ingress records (:mod:`ledger.verify`), plans the
commit (:mod:`ledger.batch`) and hands it to a :class:`~storage.protocol.LedgerStore`.
It knows nothing about the Kafka client that feeds it: the aiokafka engine
(:mod:`consumers.kafka_engine`), the faust engine (:mod:`consumers.faust_engine`)
and the tests hand it plain :class:`IngressRecord` values, and ask it (never
the store) for positions and for the outcomes still to copy.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from consumers.config import DEFAULT_CONTROL_CACHE_SIZE, ProcessorConfig
from consumers.control_view import ControlView
from consumers.failures import rewound_error
from consumers.heartbeat import Heartbeat
from ledger.batch import (
    AcceptedRecord,
    BatchPlan,
    BatchReport,
    IngressRecord,
    Outcome,
    PartitionPosition,
    PendingBatch,
    QuarantinedRecord,
    lost_records,
    next_offsets,
    pending_records,
    plan_batch,
    rewound_partitions,
)
from ledger.errors import ConfigError, ReasonCode, StaleBatchError
from ledger.registry import DEFAULT_RULE_SETTINGS, Lane, RuleSettings
from ledger.verify import DEFAULT_MAX_MESSAGE_BYTES, Rejected, Verified, verify_message
from storage.protocol import (
    BatchCommit,
    CommitTimings,
    LedgerStore,
    OffsetMarks,
)

__all__ = [
    "AcceptedRecord",
    "BatchReport",
    "IngressRecord",
    "QuarantinedRecord",
    "VerifyingProcessor",
    "open_processor",
]

log = logging.getLogger("claw_ledger.processor")


class VerifyingProcessor:
    """Verify and commit batches of ingress records, exactly once per offset."""

    def __init__(
        self,
        store: LedgerStore,
        *,
        group: str,
        topic: str,
        trust_root: str | None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        copies_tracked: bool = True,
        rule_settings: RuleSettings = DEFAULT_RULE_SETTINGS,
        control_cache_size: int | None = DEFAULT_CONTROL_CACHE_SIZE,
        control_check: Literal["start", "background"] = "start",
    ) -> None:
        self.rule_settings = rule_settings
        #: "start": the bounded tables' digests are checked before start returns;
        #: "background": while batches that read neither table commit (ADR 0020)
        self.control_check = control_check
        #: False: the engine's copies to the verified/quarantine topics are best
        #: effort, and a commit counts its outcomes as copied (ADR 0008)
        self.copies_tracked = copies_tracked
        self._store = store
        self.group = group
        self.topic = topic
        self.control = ControlView(store, trust_root, control_cache_size)
        self._digest_check = self.control.digest_check
        self.max_message_bytes = max_message_bytes
        # one thread, so that verifying the next batch overlaps this batch's commit;
        # more threads only contend for the GIL (ADR 0003): scale with processes
        self._batch_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch")
        self.positions: dict[int, PartitionPosition] = {}
        #: plans thrown away because a rule read a key the batch did not list
        self.control_replans = 0
        self.committed = 0
        self.quarantined = 0
        self._heartbeat = Heartbeat(store, group, topic)

    async def heartbeat(self, *, force: bool = False) -> None:
        """Record that this processor is alive and which control version its state
        holds; engines call it after each commit and while idle (:class:`Heartbeat`
        writes at most every :data:`HEARTBEAT_INTERVAL_SECONDS`)."""
        await self._heartbeat.beat(self.control.version, force=force)

    @property
    def worker_id(self) -> str:
        """Names this process's heartbeat row (several processors share a ledger)."""
        return self._heartbeat.worker_id

    @property
    def commit_timings(self) -> CommitTimings:
        """Batches committed so far and what they took (decide + commit transaction)."""
        return self._heartbeat.timings

    async def start(self) -> None:
        others = await self._store.other_groups(self.group, self.topic)
        if others:
            raise ConfigError(
                f"this ledger is already fed from {self.topic} by consumer group(s) "
                f"{', '.join(others)}; a second group would record every event twice",
                hint=f"run the processor with --group {others[0]}",
            )
        background = self.control_check == "background" and bool(self.control.bounded)
        # started again: a check in progress is replaced. A background check begins
        # after the first commit, so that hashing (CPU, on this event loop) does not
        # slow down joining the group and the first batch
        self._digest_check.schedule(background)
        await self._reload(check_streamed=not background)

    @property
    def control_checked(self) -> bool:
        """Whether every control table has been checked against its digest."""
        return self._digest_check.passed

    async def close(self) -> None:
        """Close the store (the processor is not used afterwards)."""
        await self._digest_check.close()
        await self._store.close()
        self._batch_executor.shutdown(wait=False)

    async def _reload(self, *, check_streamed: bool = False) -> None:
        await self.control.load(check_streamed=check_streamed)
        self.positions = await self._store.load_positions(self.group, self.topic)

    async def assigned(self, partitions: Iterable[int]) -> dict[int, int | None]:
        """After a partition assignment: reload the stored positions (another
        worker may have moved them) and return where to seek each partition
        (``None``: nothing of it is in the ledger, read it from the start)."""
        self.positions = await self._store.load_positions(self.group, self.topic)
        return {p: self.next_offset(p) for p in partitions}

    async def reconcile(
        self, starts: Mapping[int, int], ends: Mapping[int, int]
    ) -> dict[int, int | None]:
        """Check the assigned partitions' logs (``starts``, ``ends``: where each now
        begins and ends) against the ledger's positions, after :meth:`assigned`;
        return where to seek each (``None``: from its start). A log that ends below
        its position raises :class:`TopicRewoundError`; records Kafka removed before
        the ledger read them are committed as ``RECORDS_LOST`` rows (ADR 0033)."""
        read_to = next_offsets(self.positions)
        rewound = rewound_partitions(read_to, ends)
        if rewound:
            raise rewound_error(self.topic, rewound)
        records, refusals = lost_records(self.topic, read_to, starts)
        if records:
            await self.commit_verified(records, refusals)
        for refusal in refusals:  # once committed: a retried commit logs it once
            log.error("%s: %s", ReasonCode.RECORDS_LOST.value, refusal.detail)
        return {p: self.next_offset(p) for p in starts}

    def next_offset(self, partition: int) -> int | None:
        position = self.positions.get(partition)
        return position.next_offset if position else None

    async def unforwarded_outcomes(self, partition: int) -> tuple[int, list[Outcome]]:
        """The committed outcomes of ``partition`` not yet acknowledged on their
        topics (offset order), and the mark to record once they are."""
        return await self._store.unforwarded_outcomes(self.group, self.topic, partition)

    async def record_forwarded(
        self, marks: OffsetMarks, *, since: OffsetMarks | None = None
    ) -> None:
        """Every outcome below ``marks[partition]`` is acknowledged on its topic
        (with ``since``: those from ``since[partition]`` on, see the store)."""
        await self._store.record_forwarded(self.group, self.topic, marks, since=since)

    async def process(self, records: Sequence[IngressRecord]) -> BatchReport:
        """Verify and commit ``records`` (any partitions, each partition in order)."""
        return await self.commit_verified(records, await self.verify(records))

    async def verify(self, records: Sequence[IngressRecord]) -> list[Verified | Rejected]:
        """The stateless steps for a batch, off the event loop (in worker threads).

        Runs concurrently with the commit of the previous batch; it touches no state.
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._batch_executor, self._verify_all, records)

    async def commit_verified(
        self, records: Sequence[IngressRecord], verdicts: Sequence[Verified | Rejected]
    ) -> BatchReport:
        """Decide and commit a verified batch, in order after the previous one.

        One batch is one store transaction: the ledger rows, quarantine rows,
        projection rows and the new position of every partition in it.
        """
        started = time.perf_counter()
        for attempt in range(3):
            try:
                report = await self._process(records, verdicts)
            except StaleBatchError as exc:
                # another worker of the group committed a partition: catch up, retry
                log.warning("%s; reloading state and positions", exc)
                await self._reload()
                if attempt == 2:
                    raise
            except BaseException:
                # the in-memory state may hold changes that were rolled back
                await self._reload()
                raise
            else:
                if report.accepted or report.quarantined:
                    self._heartbeat.committed(time.perf_counter() - started)
                return report
        raise AssertionError("unreachable")

    async def _process(
        self, records: Sequence[IngressRecord], verdicts: Sequence[Verified | Rejected]
    ) -> BatchReport:
        if self._digest_check.finished:
            # a finished check: a tampered table stops the processor at its next
            # batch, whether or not that batch needs the table
            await self._digest_check.wait()
        pending = pending_records(self.positions, records, verdicts)
        if not pending.by_partition:
            return BatchReport(skipped=pending.skipped)
        if _has_full_stop_of_all(pending):
            # its plan reads the whole token table, which any token commit in its
            # window would change: planned and committed holding the control order,
            # so that nothing lands in between (ADR 0030). The digest check first:
            # it seals with the same lock
            self._digest_check.begin()
            await self._digest_check.wait()
            async with self._store.hold_control_order() as held:
                self.control.holding = True
                try:
                    plan = await self._plan(pending)
                    version = await held.commit(self._batch_commit(plan))
                finally:
                    self.control.holding = False
        else:
            plan = await self._plan(pending)
            version = await self._store.commit_batch(self._batch_commit(plan))
        if version is not None and version == self.control.version + 1:
            # our own bump, and nobody else's in between: the state is at `version`.
            # Otherwise it also holds our changes but lacks another processor's,
            # and stays at the old version: the next batch catches up from there
            # (re-reading our own rows, which are what memory already holds).
            self.control.version = version
        for batch in plan.batches:
            self.positions[batch.partition] = batch.new_position
            self.committed += len(batch.events)
            self.quarantined += len(batch.quarantined)
        self.control.trim()
        self._digest_check.begin()
        return plan.report

    async def _plan(self, pending: PendingBatch) -> BatchPlan:
        """Catch up on the control state, fetch the rows the batch reads, and plan it
        (again, until no rule read a row the batch did not list)."""
        control = self.control
        recorded = await control.refresh(pending, event_ids=pending.event_ids())
        if control.bounded and _has_full_stop_of_all(pending):
            # a full-stop halt of * revokes every token: its rule reads the whole table,
            # so it comes whole for this batch (trimmed back after it)
            for table, rows in (await control.whole_tables(["tokens"])).items():
                control.cache(table).fill_all(rows)
        control.take_misses()  # reads made while listing and fetching are not the plan's
        extra: dict[str, set[str]] = {}
        while True:
            for table in control.bounded:
                control.cache(table).touched = False
            control.clear_reads()
            plan = plan_batch(control.state, self.positions, pending, recorded, self.rule_settings)
            misses = control.take_misses()
            iterated = [t for t in control.bounded if control.cache(t).iterated]
            if iterated:
                # a rule needs a whole bounded table (a full-stop halt revokes every token
                # in its scope): plan again with that table loaded whole for this batch
                self.control_replans += 1
                await control.load(check_streamed=False)
                await control.refresh(pending, extra)
                # read after the state's version: a row it holds that is newer than the
                # plan's base is seen by the commit's check (ADR 0030), an older one
                # is what the base holds
                extra_tables = await control.whole_tables(iterated)
                for table, rows in extra_tables.items():
                    control.cache(table).fill_all(rows)
                control.take_misses()
                continue
            if not misses:
                break
            # a rule read a row the batch did not list: the plan (and the state
            # it changed) is void; start from the stored state with that row too
            self.control_replans += 1
            log.warning("control rows read but not listed, planning again: %s", misses)
            for table, keys in misses.items():
                extra.setdefault(table, set()).update(keys)
            await control.load(check_streamed=False)
            await control.refresh(pending, extra)
            control.take_misses()
        if any(control.cache(t).touched for t in control.bounded):
            # no decision that rests on a token or job row is committed before
            # those tables are known to be the ones the processors wrote
            self._digest_check.begin()
            await self._digest_check.wait()
        return plan

    def _batch_commit(self, plan: BatchPlan) -> BatchCommit:
        return BatchCommit(
            group=self.group,
            topic=self.topic,
            batches=plan.batches,
            projections=plan.projections,
            copies_tracked=self.copies_tracked,
            # the version the plan's state was read at, and what it read: a
            # control row another lane or processor changed since, that the plan
            # read or writes, refuses the batch (planned again; ADR 0029, 0030)
            control_base=self.control.version,
            control_reads=self.control.plan_reads(),
        )

    def _verify_all(self, records: Sequence[IngressRecord]) -> list[Verified | Rejected]:
        limit = self.max_message_bytes
        return [verify_message(r.value, max_bytes=limit) for r in records]


async def open_processor(
    config: ProcessorConfig, *, copies_tracked: bool = True, lane: Lane = "ingress"
) -> VerifyingProcessor:
    """A started processor of one lane (ADR 0024) on the Postgres store of
    ``config`` (what both engines run, once per lane)."""
    from storage.postgres import PostgresLedgerStore

    store = await PostgresLedgerStore.open(config.database_url, min_size=1, max_size=2)
    processor = VerifyingProcessor(
        store,
        group=config.group,
        topic=config.topic_of(lane),
        trust_root=None,
        max_message_bytes=config.max_message_bytes,
        copies_tracked=copies_tracked,
        rule_settings=config.rule_settings,
        control_cache_size=config.control_cache_size,
        control_check=config.control_check,
    )
    try:
        await processor.start()
        await processor.heartbeat(force=True)
    except BaseException:
        await store.close()
        raise
    return processor


def _has_full_stop_of_all(pending: PendingBatch) -> bool:
    """Whether the batch holds a halt of ``*`` that denies both tools and model egress."""
    return any(
        verdict.event.event_type == "agent.halted"
        and getattr(verdict.body, "target", None) == "*"
        and getattr(verdict.body, "full_stop", False)
        for items in pending.by_partition.values()
        for _, verdict in items
        if isinstance(verdict, Verified)
    )
