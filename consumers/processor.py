"""The verifying processor: a thin adapter around :mod:`ledger.verify`.

It owns the in-memory ledger state and partition positions, runs the pure
verification for a batch of ingress records, and commits the effects with
:func:`consumers.store.commit_batch`. It knows nothing about the Kafka client
that feeds it: the faust app (:mod:`consumers.app`) and the tests call
:meth:`VerifyingProcessor.process` with plain :class:`IngressRecord` values.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from consumers import store
from ledger.chain import chain_hash
from ledger.errors import ReasonCode
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


def _load_primitive_rules() -> None:
    # The claw primitives (policies, tokens, runs, halts) register their rules on import.
    try:
        import ledger.primitive_rules  # noqa: F401
    except ModuleNotFoundError as exc:  # only while that module does not exist yet
        if exc.name != "ledger.primitive_rules":
            raise


_load_primitive_rules()


@dataclass(frozen=True, slots=True)
class IngressRecord:
    partition: int
    offset: int
    value: bytes
    key: bytes | None = None


@dataclass(frozen=True, slots=True)
class AcceptedRecord:
    record: IngressRecord
    stream: str
    event_id: str


@dataclass(frozen=True, slots=True)
class QuarantinedRecord:
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
    ) -> None:
        self._pool = pool
        self.group = group
        self.topic = topic
        self._configured_trust_root = trust_root
        self.trust_root = trust_root
        self.max_message_bytes = max_message_bytes
        self.state = LedgerState(trust_root=trust_root)
        self.positions: dict[int, store.PartitionPosition] = {}
        self._control_version = -1
        self.committed = 0
        self.quarantined = 0

    async def start(self) -> None:
        async with self._pool.acquire() as conn:
            await self._reload(conn)

    async def _reload(self, conn: asyncpg.Connection) -> None:
        self._control_version = await store.control_version(conn)
        await self._load_state(conn)
        self.positions = await store.load_positions(conn, self.group, self.topic)

    async def _load_state(self, conn: asyncpg.Connection) -> None:
        trust_root = self._configured_trust_root or await store.trust_root(conn)
        self.trust_root = trust_root
        self.state = await store.load_state(conn, trust_root)

    def next_offset(self, partition: int) -> int | None:
        position = self.positions.get(partition)
        return position.next_offset if position else None

    async def process(self, records: Sequence[IngressRecord]) -> BatchReport:
        """Verify and commit ``records`` (any partitions, each partition in order)."""
        by_partition: dict[int, list[IngressRecord]] = defaultdict(list)
        for record in records:
            by_partition[record.partition].append(record)
        report = BatchReport()
        async with self._pool.acquire() as conn:
            for partition, items in by_partition.items():
                for attempt in range(3):
                    try:
                        await self._process_partition(conn, partition, items, report)
                        break
                    except store.StaleBatchError as exc:
                        # another worker of the group committed this partition: catch up, retry
                        log.warning("%s; reloading state and positions", exc)
                        await self._reload(conn)
                        if attempt == 2:
                            raise
                    except BaseException:
                        # the in-memory state may hold changes that were rolled back
                        await self._reload(conn)
                        raise
        return report

    async def _process_partition(
        self,
        conn: asyncpg.Connection,
        partition: int,
        items: list[IngressRecord],
        report: BatchReport,
    ) -> None:
        position = self.positions.get(partition)
        expected = position.next_offset if position else None
        fresh = [r for r in items if expected is None or r.offset >= expected]
        skipped = len(items) - len(fresh)
        if not fresh:
            report.skipped += skipped
            return
        verdicts = [verify_message(r.value, max_bytes=self.max_message_bytes) for r in fresh]
        ids = [v.event.event_id for v in verdicts if isinstance(v, Verified)]
        recorded = await store.existing_payload_hashes(conn, ids)
        version = await store.control_version(conn)
        if version != self._control_version:
            self._control_version = version
            await self._load_state(conn)

        ledger_seq = position.ledger_seq if position else 0
        prev_hash = position.chain_hash if position else None
        events: list[store.EventRow] = []
        quarantined: list[store.QuarantineRow] = []
        projections: list[ProjectionRow] = []
        accepted: list[AcceptedRecord] = []
        rejected: list[QuarantinedRecord] = []
        duplicates = 0
        for record, verdict in zip(fresh, verdicts, strict=True):
            if isinstance(verdict, Verified):
                outcome = decide(self.state, verdict, recorded.get(verdict.event.event_id))
            else:
                outcome = verdict
            if isinstance(outcome, Accepted):
                event = outcome.verified.event
                ledger_seq += 1
                link = chain_hash(
                    prev_hash,
                    partition,
                    ledger_seq,
                    event.event_id,
                    outcome.verified.envelope_sha256,
                )
                events.append(
                    store.EventRow(
                        event_id=event.event_id,
                        event_type=event.event_type,
                        stream=event.stream,
                        producer=event.producer,
                        occurred_at=_parse_time(event.occurred_at),
                        payload_hash_b64u=outcome.verified.envelope.payload_hash_b64u,
                        envelope_sha256=outcome.verified.envelope_sha256,
                        envelope_raw=record.value,
                        payload_json=json.dumps(event.to_payload(), separators=(",", ":")).encode(
                            "utf-8"
                        ),
                        kafka_offset=record.offset,
                        ledger_seq=ledger_seq,
                        prev_chain_hash=prev_hash,
                        chain_hash=link,
                    )
                )
                prev_hash = link
                recorded[event.event_id] = outcome.verified.envelope.payload_hash_b64u
                projections.extend(outcome.rows)
                accepted.append(AcceptedRecord(record, event.stream, event.event_id))
            elif isinstance(outcome, Duplicate):
                duplicates += 1
            else:
                quarantined.append(_quarantine_row(record, outcome))
                rejected.append(QuarantinedRecord(record, outcome.code.value, outcome.detail))
        new_position = store.PartitionPosition(fresh[-1].offset + 1, ledger_seq, prev_hash)
        await store.commit_batch(
            conn,
            group=self.group,
            topic=self.topic,
            partition=partition,
            expected_next_offset=expected,
            new_position=new_position,
            events=events,
            quarantined=quarantined,
            projections=projections,
        )
        if projections:
            self._control_version = await store.control_version(conn)
        self.positions[partition] = new_position
        self.committed += len(events)
        self.quarantined += len(quarantined)
        report.accepted.extend(accepted)
        report.quarantined.extend(rejected)
        report.duplicates += duplicates
        report.skipped += skipped


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


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# Re-exported for callers that match on codes.
QUARANTINE_CODES = tuple(code.value for code in ReasonCode)
