"""The verifying processor: a thin adapter around :mod:`ledger.verify`.

It owns the in-memory ledger state and partition positions, runs the pure
verification for a batch of ingress records, and commits the effects with
:func:`consumers.store.commit_batch`. It knows nothing about the Kafka client
that feeds it: the aiokafka engine (:mod:`consumers.engine`), the faust app
(:mod:`consumers.app`) and the tests hand it plain :class:`IngressRecord` values.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg

from consumers import store
from ledger.chain import chain_hash
from ledger.errors import ConfigError
from ledger.registry import DEFAULT_RULE_SETTINGS, RuleSettings
from ledger.state import LedgerState, ProjectionRow
from ledger.verify import (
    DEFAULT_MAX_MESSAGE_BYTES,
    Accepted,
    Duplicate,
    Rejected,
    Verified,
    decide,
    verify_message,
)

__all__ = ["BatchReport", "IngressRecord", "VerifyingProcessor"]

log = logging.getLogger("claw_ledger.processor")


# Tuples, not dataclasses: one of each is built per event on the hot path.


class IngressRecord(NamedTuple):
    partition: int
    offset: int
    value: bytes
    key: bytes | None = None


class AcceptedRecord(NamedTuple):
    record: IngressRecord
    stream: str
    event_id: str


class QuarantinedRecord(NamedTuple):
    record: IngressRecord
    code: str
    detail: str


@dataclass
class BatchReport:
    accepted: list[AcceptedRecord] = field(default_factory=list)
    quarantined: list[QuarantinedRecord] = field(default_factory=list)
    duplicates: int = 0
    skipped: int = 0


class VerifyingProcessor:
    """Verify and commit batches of ingress records, exactly once per offset."""

    def __init__(
        self,
        pool: asyncpg.Pool,
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
        self._pool = pool
        self.group = group
        self.topic = topic
        self._configured_trust_root = trust_root
        self.trust_root = trust_root
        self.max_message_bytes = max_message_bytes
        # one thread, so that verifying the next batch overlaps this batch's commit;
        # more threads only contend for the GIL (ADR 0003): scale with processes
        self._batch_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch")
        self.state = LedgerState(trust_root=trust_root)
        self.positions: dict[int, store.PartitionPosition] = {}
        #: the control version this state reflects (-1: none, load it whole)
        self._control_version = -1
        #: how often the whole control state was read (not just what changed)
        self.full_state_loads = 0
        self.committed = 0
        self.quarantined = 0

    async def start(self) -> None:
        async with self._pool.acquire() as conn:
            others = await store.other_groups(conn, self.group, self.topic)
            if others:
                raise ConfigError(
                    f"this ledger is already fed from {self.topic} by consumer group(s) "
                    f"{', '.join(others)}; a second group would record every event twice",
                    hint=f"run the processor with --group {others[0]}",
                )
            await self._reload(conn)

    async def _reload(self, conn: asyncpg.Connection) -> None:
        await self._load_state(conn)
        self.positions = await store.load_positions(conn, self.group, self.topic)

    async def _load_state(self, conn: asyncpg.Connection) -> None:
        """The whole control state, and the version it belongs to."""
        version, state = await store.load_state_snapshot(conn, self._configured_trust_root)
        self._control_version = version
        self.trust_root = state.trust_root
        self.state = state
        self.full_state_loads += 1

    async def _catch_up_state(self, conn: asyncpg.Connection) -> None:
        """Apply the control rows written since the version this state reflects."""
        if self._control_version < 0:
            await self._load_state(conn)
            return
        version, _ = await store.load_state_snapshot(
            conn, self._configured_trust_root, since=self._control_version, into=self.state
        )
        self._control_version = version
        self.trust_root = self.state.trust_root

    def next_offset(self, partition: int) -> int | None:
        position = self.positions.get(partition)
        return position.next_offset if position else None

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

        One batch is one Postgres transaction: the ledger rows, quarantine rows,
        projection rows and the new position of every partition in it.
        """
        async with self._pool.acquire() as conn:
            for attempt in range(3):
                try:
                    return await self._process(conn, records, verdicts)
                except (store.StaleBatchError, asyncpg.UniqueViolationError) as exc:
                    # another worker of the group committed a partition: catch up, retry
                    log.warning("%s; reloading state and positions", exc)
                    await self._reload(conn)
                    if attempt == 2:
                        raise
                except BaseException:
                    # the in-memory state may hold changes that were rolled back
                    await self._reload(conn)
                    raise
        raise AssertionError("unreachable")

    async def _process(
        self,
        conn: asyncpg.Connection,
        records: Sequence[IngressRecord],
        all_verdicts: Sequence[Verified | Rejected],
    ) -> BatchReport:
        report = BatchReport()
        positions = self.positions
        by_partition: dict[int, list[tuple[IngressRecord, Verified | Rejected]]] = {}
        for record, verdict in zip(records, all_verdicts, strict=True):
            position = positions.get(record.partition)
            if position is not None and record.offset < position.next_offset:
                report.skipped += 1  # already in the ledger: a re-delivery
                continue
            items = by_partition.get(record.partition)
            if items is None:
                items = by_partition[record.partition] = []
            items.append((record, verdict))
        if not by_partition:
            return report
        ids = [
            verdict.event.event_id
            for items in by_partition.values()
            for _, verdict in items
            if isinstance(verdict, Verified)
        ]
        recorded = await store.existing_payload_hashes(conn, ids)
        if await store.control_version(conn) != self._control_version:
            await self._catch_up_state(conn)

        state = self.state
        rule_settings = self.rule_settings
        topic = self.topic
        batches: list[store.PartitionBatch] = []
        projections: dict[tuple[str, Any], ProjectionRow] = {}
        accepted: list[AcceptedRecord] = []
        rejected: list[QuarantinedRecord] = []
        for partition, items in by_partition.items():
            position = positions.get(partition)
            ledger_seq = position.ledger_seq if position else 0
            prev_hash = position.chain_hash if position else None
            events: list[store.EventRow] = []
            quarantined: list[store.QuarantineRow] = []
            for record, verdict in items:
                if isinstance(verdict, Verified):
                    outcome = decide(
                        state, verdict, recorded.get(verdict.event.event_id), rule_settings
                    )
                else:
                    outcome = verdict
                if isinstance(outcome, Accepted):
                    event = outcome.verified.event
                    envelope = outcome.verified.envelope
                    ledger_seq += 1
                    envelope_sha256 = outcome.verified.envelope_sha256
                    link = chain_hash(
                        prev_hash, partition, ledger_seq, event.event_id, envelope_sha256
                    )
                    events.append(
                        store.EventRow(
                            event.event_id,
                            event.event_type,
                            event.stream,
                            event.producer,
                            datetime.fromisoformat(event.occurred_at),
                            envelope.payload_hash_b64u,
                            envelope_sha256,
                            record.value,
                            outcome.verified.payload_json,
                            record.offset,
                            ledger_seq,
                            prev_hash,
                            link,
                        )
                    )
                    prev_hash = link
                    recorded[event.event_id] = envelope.payload_hash_b64u
                    for row in outcome.rows:
                        # the latest state of a row is what the projection keeps
                        projections[(row.table, row.values[row.key_column])] = row
                    accepted.append(AcceptedRecord(record, event.stream, event.event_id))
                elif isinstance(outcome, Duplicate):
                    report.duplicates += 1
                else:
                    quarantined.append(_quarantine_row(record, outcome))
                    rejected.append(QuarantinedRecord(record, outcome.code.value, outcome.detail))
            position_before = positions.get(partition)
            batches.append(
                store.PartitionBatch(
                    partition=partition,
                    expected_next_offset=position_before.next_offset if position_before else None,
                    first_offset=items[0][0].offset,
                    new_position=store.PartitionPosition(
                        items[-1][0].offset + 1, ledger_seq, prev_hash
                    ),
                    events=events,
                    quarantined=quarantined,
                )
            )
        version = await store.commit_batch(
            conn,
            group=self.group,
            topic=topic,
            batches=batches,
            projections=list(projections.values()),
            copies_tracked=self.copies_tracked,
        )
        if version is not None and version == self._control_version + 1:
            # our own bump, and nobody else's in between: the state is at `version`.
            # Otherwise it also holds our changes but lacks another processor's,
            # and stays at the old version: the next batch catches up from there
            # (re-reading our own rows, which are what memory already holds).
            self._control_version = version
        for batch in batches:
            positions[batch.partition] = batch.new_position
            self.committed += len(batch.events)
            self.quarantined += len(batch.quarantined)
        report.accepted.extend(accepted)
        report.quarantined.extend(rejected)
        return report

    def _verify_all(self, records: Sequence[IngressRecord]) -> list[Verified | Rejected]:
        limit = self.max_message_bytes
        return [verify_message(r.value, max_bytes=limit) for r in records]


def _text(value: str | None, limit: int = 2000) -> str | None:
    """Postgres text cannot hold NUL; hostile input must not make a commit fail."""
    if value is None:
        return None
    value = value.replace("\x00", "\\x00")
    return value if len(value) <= limit else value[:limit] + "…"


def _quarantine_row(record: IngressRecord, rejected: Rejected) -> store.QuarantineRow:
    return store.QuarantineRow(
        reason_code=rejected.code.value,
        detail=_text(rejected.detail) or "",
        raw=record.value,
        event_id=_text(rejected.event_id, 200),
        signer_did=_text(rejected.signer_did, 200),
        kafka_offset=record.offset,
    )
