"""Planning the commit of one batch of ingress records: pure, no I/O.

The processor hands a verified batch here and gets back everything one
transaction writes (ledger rows with their chain links, quarantine rows, the
latest projection rows, each partition's new position) and the report of what
happened. The store (Postgres or memory) writes it; nothing here knows how.

Tuples, not dataclasses, for what is built once per event on the hot path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from ledger.chain import chain_hash
from ledger.errors import ReasonCode
from ledger.registry import DEFAULT_RULE_SETTINGS, RuleSettings
from ledger.state import LedgerState, ProjectionRow
from ledger.verify import Accepted, Duplicate, Rejected, Verified, decide

__all__ = [
    "AcceptedRecord",
    "BatchPlan",
    "BatchReport",
    "EventRow",
    "IngressRecord",
    "Outcome",
    "PartitionBatch",
    "PartitionPosition",
    "PendingBatch",
    "QuarantineRow",
    "QuarantinedRecord",
    "lost_records",
    "next_offsets",
    "pending_records",
    "plan_batch",
    "quarantine_row",
    "rewound_partitions",
    "split_at_gaps",
]


class IngressRecord(NamedTuple):
    """One message of the ingress topic, as an engine hands it over."""

    partition: int
    offset: int
    value: bytes
    key: bytes | None = None


@dataclass(frozen=True)
class PartitionPosition:
    """Where a partition stands in the ledger: the next offset to read, and the
    ``ledger_seq`` and chain hash of its last ledger row."""

    next_offset: int
    ledger_seq: int
    chain_hash: str | None


class EventRow(NamedTuple):
    """One ledger row. A tuple in the ``events`` COPY column order (less the
    topic and partition, which the batch supplies): built once per event."""

    event_id: str
    event_type: str
    stream: str
    producer: str
    occurred_at: datetime
    payload_hash_b64u: str
    envelope_sha256: str
    envelope_raw: bytes
    payload_json: bytes
    kafka_offset: int
    ledger_seq: int
    prev_chain_hash: str | None
    chain_hash: str


@dataclass(frozen=True)
class QuarantineRow:
    reason_code: str
    detail: str
    raw: bytes
    event_id: str | None
    signer_did: str | None
    kafka_offset: int


class Outcome(NamedTuple):
    """A committed outcome to copy to the verified topic (``reason_code`` is
    ``None``) or the quarantine topic. A tuple: one is built per event."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes
    reason_code: str | None = None


@dataclass(frozen=True)
class PartitionBatch:
    """What one partition contributes to a commit."""

    partition: int
    expected_next_offset: int | None
    #: the lowest ingress offset in the batch (where forwarding starts for a new partition)
    first_offset: int
    new_position: PartitionPosition
    events: Sequence[EventRow]
    quarantined: Sequence[QuarantineRow]


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


@dataclass
class PendingBatch:
    """The records of a batch not yet in the ledger, by partition in offset order."""

    by_partition: dict[int, list[tuple[IngressRecord, Verified | Rejected]]]
    #: re-delivered records (below their partition's stored next offset)
    skipped: int

    def event_ids(self) -> list[str]:
        """The ids of the verified events, whose recorded payload hashes decide duplicates."""
        return [
            verdict.event.event_id
            for items in self.by_partition.values()
            for _, verdict in items
            if isinstance(verdict, Verified)
        ]


@dataclass
class BatchPlan:
    """One transaction's worth: what to write, and what it means for the engine."""

    batches: list[PartitionBatch]
    projections: list[ProjectionRow]
    report: BatchReport


def pending_records(
    positions: Mapping[int, PartitionPosition],
    records: Sequence[IngressRecord],
    verdicts: Sequence[Verified | Rejected],
) -> PendingBatch:
    """Drop re-deliveries (offsets below the stored next offset) and group the rest."""
    skipped = 0
    by_partition: dict[int, list[tuple[IngressRecord, Verified | Rejected]]] = {}
    for record, verdict in zip(records, verdicts, strict=True):
        position = positions.get(record.partition)
        if position is not None and record.offset < position.next_offset:
            skipped += 1  # already in the ledger: a re-delivery
            continue
        items = by_partition.get(record.partition)
        if items is None:
            items = by_partition[record.partition] = []
        items.append((record, verdict))
    return PendingBatch(by_partition, skipped)


def next_offsets(positions: Mapping[int, PartitionPosition]) -> dict[int, int]:
    """The offset the ledger reads next in each partition it has read."""
    return {partition: position.next_offset for partition, position in positions.items()}


def lost_records(
    topic: str, read_to: Mapping[int, int], starts: Mapping[int, int]
) -> tuple[list[IngressRecord], list[Rejected]]:
    """The account of records Kafka removed before the ledger read them.

    ``read_to`` holds the next offset to read in each partition: the ledger's
    (:func:`next_offsets`) at an assignment, the consumer's while it reads.
    ``starts`` holds the offset each partition's log now starts at. Where that is
    past the next offset to read (0 for a partition not read), the
    records in between are gone: removed by retention or deletion. For each
    such partition this gives one empty record at the last removed offset,
    refused as ``RECORDS_LOST``. Committed like any refusal, it is a quarantine
    row naming the range, and it moves the partition's position to the start,
    in one transaction. So the loss is recorded once and never silently.
    """
    records: list[IngressRecord] = []
    refusals: list[Rejected] = []
    for partition, start in sorted(starts.items()):
        expected = read_to.get(partition, 0)
        if start <= expected:
            continue
        records.append(IngressRecord(partition, start - 1, b""))
        refusals.append(
            Rejected(
                ReasonCode.RECORDS_LOST,
                f"offsets {expected} to {start - 1} of {topic} partition {partition}"
                f" ({start - expected} record(s)) were removed from Kafka (retention or"
                f" deletion) before the ledger read them; the partition now starts at {start}",
            )
        )
    return records, refusals


def split_at_gaps(
    records: Sequence[IngressRecord], read_to: Mapping[int, int]
) -> list[list[IngressRecord]]:
    """``records`` cut before each record whose offset skips past the next one
    expected in its partition (the previous record's, or ``read_to``, as for
    :func:`lost_records`, at the first): the runs in order, each without a gap.

    A consumer that resets to a log's new start mid-batch hands over records
    from both sides of the removed ones. Deciding each run before the next
    lets the gap between them be recorded in offset order (:func:`lost_records`,
    with the log's start asked for after the run before it). A gap is only a
    question: a producer's transaction markers skip an offset too.
    """
    expected: dict[int, int] = dict(read_to)
    runs: list[list[IngressRecord]] = [[]]
    for record in records:
        want = expected.get(record.partition)
        if want is not None and record.offset > want and runs[-1]:
            runs.append([])
        runs[-1].append(record)
        expected[record.partition] = max(want or 0, record.offset + 1)
    return runs if runs[0] else []


def rewound_partitions(
    read_to: Mapping[int, int], ends: Mapping[int, int]
) -> dict[int, tuple[int, int]]:
    """Partitions whose log (``ends``: the offset after its last record) ends below
    the next offset to read (``read_to``, as for :func:`lost_records`):
    ``{partition: (end, next offset)}``. Offsets of one topic never go back, so
    such a topic was deleted and created again, or truncated."""
    rewound: dict[int, tuple[int, int]] = {}
    for partition, end in sorted(ends.items()):
        expected = read_to.get(partition)
        if expected is not None and end < expected:
            rewound[partition] = (end, expected)
    return rewound


def plan_batch(
    state: LedgerState,
    positions: Mapping[int, PartitionPosition],
    pending: PendingBatch,
    recorded_payload_hashes: Mapping[str, str],
    settings: RuleSettings = DEFAULT_RULE_SETTINGS,
    *,
    stop_at_refusal: bool = False,
) -> BatchPlan:
    """Decide each pending record in partition order and lay out the commit.

    ``recorded_payload_hashes`` maps the event ids already in the ledger to their
    payload hashes; an id seen earlier in this batch counts as recorded too.
    Accepted events get the partition's next ``ledger_seq`` and chain link; the
    rules get ``settings``. Like
    :func:`~ledger.verify.decide`, this applies accepted events to ``state``.

    ``stop_at_refusal``: the first record not accepted (refused or a duplicate)
    is the last one decided; the records after it stay undecided, out of the
    plan, and the partition's new position is just past it (a verified replay
    stops there).
    """
    report = BatchReport(skipped=pending.skipped)
    recorded = dict(recorded_payload_hashes)
    batches: list[PartitionBatch] = []
    projections: dict[tuple[str, Any], ProjectionRow] = {}
    accepted = report.accepted
    rejected = report.quarantined
    for partition, items in pending.by_partition.items():
        position = positions.get(partition)
        ledger_seq = position.ledger_seq if position else 0
        prev_hash = position.chain_hash if position else None
        events: list[EventRow] = []
        quarantined: list[QuarantineRow] = []
        stopped = False
        decided = 0
        for record, verdict in items:
            if stopped:
                break
            decided += 1
            if isinstance(verdict, Verified):
                outcome = decide(state, verdict, recorded.get(verdict.event.event_id), settings)
            else:
                outcome = verdict
            if isinstance(outcome, Accepted):
                event = outcome.verified.event
                envelope = outcome.verified.envelope
                ledger_seq += 1
                envelope_sha256 = outcome.verified.envelope_sha256
                link = chain_hash(prev_hash, partition, ledger_seq, event.event_id, envelope_sha256)
                events.append(
                    EventRow(
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
                stopped = stop_at_refusal
            else:
                quarantined.append(quarantine_row(record, outcome))
                rejected.append(QuarantinedRecord(record, outcome.code.value, outcome.detail))
                stopped = stop_at_refusal
        batches.append(
            PartitionBatch(
                partition=partition,
                expected_next_offset=position.next_offset if position else None,
                first_offset=items[0][0].offset,
                new_position=PartitionPosition(
                    items[decided - 1][0].offset + 1, ledger_seq, prev_hash
                ),
                events=events,
                quarantined=quarantined,
            )
        )
        if stopped:
            break
    return BatchPlan(batches, list(projections.values()), report)


def _text(value: str | None, limit: int = 2000) -> str | None:
    """Postgres text cannot hold NUL; hostile input must not make a commit fail."""
    if value is None:
        return None
    value = value.replace("\x00", "\\x00")
    return value if len(value) <= limit else value[:limit] + "…"


def quarantine_row(record: IngressRecord, rejected: Rejected) -> QuarantineRow:
    """The quarantine row of a refused record; untrusted text is made storable."""
    return QuarantineRow(
        reason_code=rejected.code.value,
        detail=_text(rejected.detail) or "",
        raw=record.value,
        event_id=_text(rejected.event_id, 200),
        signer_did=_text(rejected.signer_did, 200),
        kafka_offset=record.offset,
    )
