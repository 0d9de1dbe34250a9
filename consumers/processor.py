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
import os
import socket
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from consumers.config import ProcessorConfig
from ledger.batch import (
    AcceptedRecord,
    BatchReport,
    IngressRecord,
    Outcome,
    PartitionPosition,
    QuarantinedRecord,
    pending_records,
    plan_batch,
)
from ledger.control_digest import CONTROL_DIGEST_TABLES, digest_hex, state_digests
from ledger.errors import ConfigError, ControlPlaneTamperedError, StaleBatchError
from ledger.registry import DEFAULT_RULE_SETTINGS, RuleSettings
from ledger.state import LedgerState
from ledger.verify import DEFAULT_MAX_MESSAGE_BYTES, Rejected, Verified, verify_message
from storage.protocol import BatchCommit, LedgerStore

__all__ = [
    "AcceptedRecord",
    "BatchReport",
    "IngressRecord",
    "QuarantinedRecord",
    "VerifyingProcessor",
    "open_processor",
]

log = logging.getLogger("claw_ledger.processor")

#: at most one heartbeat row write per this many seconds (ADR 0015)
HEARTBEAT_INTERVAL_SECONDS = 0.5


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
    ) -> None:
        self.rule_settings = rule_settings
        #: False: the engine's copies to the verified/quarantine topics are best
        #: effort, and a commit counts its outcomes as copied (ADR 0008)
        self.copies_tracked = copies_tracked
        self._store = store
        self.group = group
        self.topic = topic
        self._configured_trust_root = trust_root
        self.trust_root = trust_root
        self.max_message_bytes = max_message_bytes
        # one thread, so that verifying the next batch overlaps this batch's commit;
        # more threads only contend for the GIL (ADR 0003): scale with processes
        self._batch_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch")
        self.state = LedgerState(trust_root=trust_root)
        self.positions: dict[int, PartitionPosition] = {}
        #: the control version this state reflects (-1: none, load it whole)
        self._control_version = -1
        #: how often the whole control state was read (not just what changed)
        self.full_state_loads = 0
        self.committed = 0
        self.quarantined = 0
        #: names this process's heartbeat row (several processors share a ledger)
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._last_beat = -HEARTBEAT_INTERVAL_SECONDS

    async def heartbeat(self, *, force: bool = False) -> None:
        """Record that this processor is alive and which control version its
        state holds; engines call it after each commit and while idle, and it
        writes at most every :data:`HEARTBEAT_INTERVAL_SECONDS`. A failure is
        logged only: a missing beat is what makes authorize fail closed."""
        moment = time.monotonic()
        if not force and moment - self._last_beat < HEARTBEAT_INTERVAL_SECONDS:
            return
        self._last_beat = moment
        try:
            await self._store.heartbeat(self.worker_id, self.group, self._control_version)
        except Exception as exc:
            log.warning("heartbeat not written: %s", exc)

    async def start(self) -> None:
        others = await self._store.other_groups(self.group, self.topic)
        if others:
            raise ConfigError(
                f"this ledger is already fed from {self.topic} by consumer group(s) "
                f"{', '.join(others)}; a second group would record every event twice",
                hint=f"run the processor with --group {others[0]}",
            )
        await self._reload()

    async def close(self) -> None:
        """Close the store (the processor is not used afterwards)."""
        await self._store.close()
        self._batch_executor.shutdown(wait=False)

    async def _reload(self) -> None:
        await self._load_state()
        self.positions = await self._store.load_positions(self.group, self.topic)

    async def _load_state(self) -> None:
        """The whole control state, and the version it belongs to.

        Refuses (:class:`ControlPlaneTamperedError`) a state whose tables do
        not sum to the digests kept while writing them: rows this processor
        (or another of its group) did not write are never obeyed.
        """
        version, state, stored = await self._store.load_state_with_digests(
            self._configured_trust_root
        )
        computed = state_digests(state)
        tampered = {
            table: (digest_hex(digest), digest_hex(computed[table]))
            for table in CONTROL_DIGEST_TABLES
            if (digest := stored.get(table)) is not None and digest != computed[table]
        }
        if tampered:
            raise ControlPlaneTamperedError(tampered)
        unsealed = {t: computed[t] for t in CONTROL_DIGEST_TABLES if stored.get(t) is None}
        if unsealed and await self._store.seal_control_digests(version, unsealed):
            log.warning("sealed the control-plane digest of %s", ", ".join(sorted(unsealed)))
        self._control_version = version
        self.trust_root = state.trust_root
        self.state = state
        self.full_state_loads += 1

    async def _catch_up_state(self) -> None:
        """Apply the control rows written since the version this state reflects."""
        if self._control_version < 0:
            await self._load_state()
            return
        version, _ = await self._store.load_state_snapshot(
            self._configured_trust_root, since=self._control_version, into=self.state
        )
        self._control_version = version
        self.trust_root = self.state.trust_root

    async def assigned(self, partitions: Iterable[int]) -> dict[int, int | None]:
        """After a partition assignment: reload the stored positions (another
        worker may have moved them) and return where to seek each partition
        (``None``: nothing of it is in the ledger, read it from the start)."""
        self.positions = await self._store.load_positions(self.group, self.topic)
        return {p: self.next_offset(p) for p in partitions}

    def next_offset(self, partition: int) -> int | None:
        position = self.positions.get(partition)
        return position.next_offset if position else None

    async def unforwarded_outcomes(self, partition: int) -> tuple[int, list[Outcome]]:
        """The committed outcomes of ``partition`` not yet acknowledged on their
        topics (offset order), and the mark to record once they are."""
        return await self._store.unforwarded_outcomes(self.group, self.topic, partition)

    async def record_forwarded(self, marks: Mapping[int, int]) -> None:
        """Every outcome below ``marks[partition]`` is acknowledged on its topic."""
        await self._store.record_forwarded(self.group, self.topic, marks)

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
        for attempt in range(3):
            try:
                return await self._process(records, verdicts)
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
        raise AssertionError("unreachable")

    async def _process(
        self, records: Sequence[IngressRecord], verdicts: Sequence[Verified | Rejected]
    ) -> BatchReport:
        pending = pending_records(self.positions, records, verdicts)
        if not pending.by_partition:
            return BatchReport(skipped=pending.skipped)
        recorded = await self._store.existing_payload_hashes(pending.event_ids())
        if await self._store.control_version() != self._control_version:
            await self._catch_up_state()
        plan = plan_batch(self.state, self.positions, pending, recorded, self.rule_settings)
        version = await self._store.commit_batch(
            BatchCommit(
                group=self.group,
                topic=self.topic,
                batches=plan.batches,
                projections=plan.projections,
                copies_tracked=self.copies_tracked,
            )
        )
        if version is not None and version == self._control_version + 1:
            # our own bump, and nobody else's in between: the state is at `version`.
            # Otherwise it also holds our changes but lacks another processor's,
            # and stays at the old version: the next batch catches up from there
            # (re-reading our own rows, which are what memory already holds).
            self._control_version = version
        for batch in plan.batches:
            self.positions[batch.partition] = batch.new_position
            self.committed += len(batch.events)
            self.quarantined += len(batch.quarantined)
        return plan.report

    def _verify_all(self, records: Sequence[IngressRecord]) -> list[Verified | Rejected]:
        limit = self.max_message_bytes
        return [verify_message(r.value, max_bytes=limit) for r in records]


async def open_processor(
    config: ProcessorConfig, *, copies_tracked: bool = True
) -> VerifyingProcessor:
    """A started processor on the Postgres store of ``config`` (what both engines run)."""
    from storage.postgres import PostgresLedgerStore

    store = await PostgresLedgerStore.open(config.database_url, min_size=1, max_size=2)
    processor = VerifyingProcessor(
        store,
        group=config.group,
        topic=config.ingress_topic,
        trust_root=None,
        max_message_bytes=config.max_message_bytes,
        copies_tracked=copies_tracked,
        rule_settings=config.rule_settings,
    )
    try:
        await processor.start()
        await processor.heartbeat(force=True)
    except BaseException:
        await store.close()
        raise
    return processor
