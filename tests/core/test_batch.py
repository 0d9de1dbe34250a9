"""Batch planning (ledger.batch): what one commit writes, decided without any server."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ledger.batch import (
    BatchPlan,
    IngressRecord,
    PartitionPosition,
    lost_records,
    next_offsets,
    pending_records,
    plan_batch,
    quarantine_row,
    rewound_partitions,
    split_at_gaps,
)
from ledger.chain import chain_hash
from ledger.crypto import KeyPair
from ledger.errors import ReasonCode
from ledger.events import build_event, sign_event
from ledger.state import LedgerState
from ledger.verify import Rejected, Verified, verify_message

from ._helpers import RESUME_WPC, key, seeded_policy

ADMIN = key(1, "admin")
OPERATOR = key(2, "operator")


def _raw(
    signer: KeyPair, event_type: str, stream: str, body: Mapping[str, Any], **kw: Any
) -> bytes:
    return sign_event(build_event(event_type, stream, body, signer, **kw), signer).to_bytes()


def _register(did: str, name: str, role: str) -> bytes:
    return _raw(ADMIN, "key.registered", f"key:{did}", {"did": did, "name": name, "roles": [role]})


def _halt(target: str, *, event_id: str | None = None, reason: str = "drill") -> bytes:
    body = {"target": target, "reason": reason}
    return _raw(OPERATOR, "agent.halted", f"halt:{target}", body, event_id=event_id)


def _resume(target: str) -> bytes:
    body = {"target": target, "reason": "ok", "policy_hash_b64u": RESUME_WPC}
    return _raw(OPERATOR, "agent.resumed", f"halt:{target}", body)


def _setup() -> list[bytes]:
    return [_register(ADMIN.did, "admin", "admin"), _register(OPERATOR.did, "operator", "operator")]


def _plan(
    state: LedgerState,
    positions: Mapping[int, PartitionPosition],
    records: Sequence[IngressRecord],
    recorded: Mapping[str, str] | None = None,
) -> BatchPlan:
    verdicts = [verify_message(r.value) for r in records]
    pending = pending_records(positions, records, verdicts)
    return plan_batch(state, positions, pending, recorded or {})


def _records(partition: int, values: Sequence[bytes], first_offset: int = 0) -> list[IngressRecord]:
    return [IngressRecord(partition, first_offset + i, v) for i, v in enumerate(values)]


def _apply(positions: dict[int, PartitionPosition], plan: BatchPlan) -> None:
    for batch in plan.batches:
        positions[batch.partition] = batch.new_position


def test_a_batch_gets_contiguous_ledger_seqs_and_a_linked_chain() -> None:
    plan = _plan(LedgerState(trust_root=ADMIN.did), {}, _records(0, _setup()))
    [batch] = plan.batches
    assert [e.ledger_seq for e in batch.events] == [1, 2]
    first, second = batch.events
    assert first.prev_chain_hash is None
    assert first.chain_hash == chain_hash(None, 0, 1, first.event_id, first.envelope_sha256)
    assert second.prev_chain_hash == first.chain_hash
    assert second.chain_hash == chain_hash(
        first.chain_hash, 0, 2, second.event_id, second.envelope_sha256
    )
    assert batch.expected_next_offset is None and batch.first_offset == 0
    assert batch.new_position == PartitionPosition(2, 2, second.chain_hash)
    assert len(plan.report.accepted) == 2 and plan.report.quarantined == []


def test_re_deliveries_below_the_stored_position_are_skipped() -> None:
    state = LedgerState(trust_root=ADMIN.did)
    positions: dict[int, PartitionPosition] = {}
    _apply(positions, _plan(state, positions, _records(0, _setup())))
    again = _records(0, [*_setup(), _halt("job:1")])
    plan = _plan(state, positions, again)
    assert plan.report.skipped == 2
    [batch] = plan.batches
    assert [e.kafka_offset for e in batch.events] == [2]
    assert batch.expected_next_offset == 2 and batch.first_offset == 2
    assert batch.new_position.next_offset == 3


def test_a_batch_of_only_re_deliveries_plans_nothing() -> None:
    positions = {0: PartitionPosition(5, 3, "h")}
    records = _records(0, [b"x", b"y"], first_offset=3)
    pending = pending_records(positions, records, [verify_message(r.value) for r in records])
    assert pending.by_partition == {} and pending.skipped == 2
    plan = plan_batch(LedgerState(), positions, pending, {})
    assert plan.batches == [] and plan.report.skipped == 2


def test_the_chain_continues_across_batches() -> None:
    state = LedgerState(trust_root=ADMIN.did)
    positions: dict[int, PartitionPosition] = {}
    first = _plan(state, positions, _records(0, _setup()))
    _apply(positions, first)
    second = _plan(state, positions, _records(0, [_halt("job:1")], first_offset=2))
    [event] = second.batches[0].events
    assert event.ledger_seq == 3
    assert event.prev_chain_hash == first.batches[0].events[-1].chain_hash
    assert event.chain_hash == chain_hash(
        event.prev_chain_hash, 0, 3, event.event_id, event.envelope_sha256
    )


def test_the_same_event_twice_in_a_batch_is_one_row_and_a_duplicate() -> None:
    halt = _halt("job:1")
    plan = _plan(LedgerState(trust_root=ADMIN.did), {}, _records(0, [*_setup(), halt, halt]))
    [batch] = plan.batches
    assert len(batch.events) == 3 and plan.report.duplicates == 1
    # the duplicate still moves the position past its offset
    assert batch.new_position.next_offset == 4 and batch.new_position.ledger_seq == 3


def test_an_event_id_reused_with_other_content_is_quarantined() -> None:
    event_id = "0b7c1c4e-9d8a-4a57-9a34-5c1a4f6a1f01"
    one = _halt("job:1", event_id=event_id, reason="first")
    other = _halt("job:1", event_id=event_id, reason="second")
    plan = _plan(LedgerState(trust_root=ADMIN.did), {}, _records(0, [*_setup(), one, other]))
    [batch] = plan.batches
    assert len(batch.events) == 3
    [row] = batch.quarantined
    assert row.reason_code == ReasonCode.DUPLICATE_EVENT_CONFLICT.value
    assert row.event_id == event_id and row.kafka_offset == 3
    assert [q.code for q in plan.report.quarantined] == ["DUPLICATE_EVENT_CONFLICT"]


def test_payload_hashes_recorded_in_the_ledger_decide_duplicates() -> None:
    halt = _halt("job:1")
    verified = verify_message(halt)
    assert isinstance(verified, Verified)
    event_id = verified.event.event_id
    same = {event_id: verified.envelope.payload_hash_b64u}
    plan = _plan(LedgerState(trust_root=ADMIN.did), {}, _records(0, [*_setup(), halt]), same)
    assert plan.report.duplicates == 1 and len(plan.batches[0].events) == 2
    plan = _plan(
        LedgerState(trust_root=ADMIN.did), {}, _records(0, [*_setup(), halt]), {event_id: "x"}
    )
    assert [q.code for q in plan.report.quarantined] == ["DUPLICATE_EVENT_CONFLICT"]


def test_each_partition_has_its_own_sequence_and_position() -> None:
    state = LedgerState(trust_root=ADMIN.did)
    positions = {1: PartitionPosition(10, 4, "head-1")}
    records = [
        IngressRecord(0, 0, _register(ADMIN.did, "admin", "admin")),
        IngressRecord(1, 10, _register(OPERATOR.did, "operator", "operator")),
        IngressRecord(0, 1, b"not json"),
        IngressRecord(1, 11, _halt("job:2")),
    ]
    plan = _plan(state, positions, records)
    by_partition = {b.partition: b for b in plan.batches}
    zero, one = by_partition[0], by_partition[1]
    assert [e.ledger_seq for e in zero.events] == [1]
    assert [q.reason_code for q in zero.quarantined] == ["MALFORMED_JSON"]
    assert zero.new_position == PartitionPosition(2, 1, zero.events[0].chain_hash)
    assert [e.ledger_seq for e in one.events] == [5, 6]
    assert one.events[0].prev_chain_hash == "head-1"
    assert one.expected_next_offset == 10 and one.new_position.next_offset == 12


def test_only_the_latest_projection_row_of_a_key_is_written() -> None:
    records = _records(0, [*_setup(), _halt("job:1"), _resume("job:1"), _halt("job:2")])
    state = LedgerState(trust_root=ADMIN.did, policies={RESUME_WPC: seeded_policy()})
    plan = _plan(state, {}, records)
    halts = {r.values["target"]: r.values for r in plan.projections if r.table == "halts"}
    assert set(halts) == {"job:1", "job:2"}
    assert halts["job:1"]["active"] is False and halts["job:2"]["active"] is True
    assert len([r for r in plan.projections if r.table == "halts"]) == 2
    assert {r.values["did"] for r in plan.projections if r.table == "keys"} == {
        ADMIN.did,
        OPERATOR.did,
    }


def test_pending_event_ids_are_those_of_verified_records() -> None:
    halt = _halt("job:1")
    records = _records(0, [b"not json", halt])
    verdicts = [verify_message(r.value) for r in records]
    assert isinstance(verdicts[1], Verified)
    assert pending_records({}, records, verdicts).event_ids() == [verdicts[1].event.event_id]


def test_quarantine_rows_hold_no_nul_and_bounded_text() -> None:
    record = IngressRecord(3, 7, b"raw")
    rejected = Rejected(ReasonCode.MALFORMED_ENVELOPE, "a\x00b" + "x" * 3000, "e\x00", "d" * 300)
    row = quarantine_row(record, rejected)
    assert "\x00" not in row.detail and row.detail.startswith("a\\x00b")
    assert len(row.detail) == 2001 and row.detail.endswith("…")
    assert row.event_id == "e\\x00"
    assert row.signer_did is not None and len(row.signer_did) == 201
    assert (row.raw, row.kafka_offset) == (b"raw", 7)


def test_records_removed_before_they_were_read_are_one_quarantine_row_per_partition() -> None:
    positions = {0: PartitionPosition(5, 3, "h"), 1: PartitionPosition(7, 1, "g")}
    # partition 0 lost 5..8, 1 lost nothing, 2 (never read) lost 0..3, 3 starts at 0
    starts = {0: 9, 1: 7, 2: 4, 3: 0}
    records, refusals = lost_records("claw.ingress", next_offsets(positions), starts)
    assert [(r.partition, r.offset, r.value) for r in records] == [(0, 8, b""), (2, 3, b"")]
    assert [r.code for r in refusals] == [ReasonCode.RECORDS_LOST] * 2
    assert "offsets 5 to 8 of claw.ingress partition 0 (4 record(s))" in refusals[0].detail
    assert "the partition now starts at 4" in refusals[1].detail
    # committed like any refusal: a quarantine row, and the position moves to the start
    plan = plan_batch(LedgerState(), positions, pending_records(positions, records, refusals), {})
    by_partition = {b.partition: b for b in plan.batches}
    assert by_partition[0].new_position == PartitionPosition(9, 3, "h")  # the chain is untouched
    assert by_partition[2].new_position.next_offset == 4
    (row,) = by_partition[0].quarantined
    assert (row.reason_code, row.kafka_offset, row.raw) == ("RECORDS_LOST", 8, b"")
    # once the position is at the start, nothing more is lost
    moved = {p: b.new_position for p, b in by_partition.items()} | {1: positions[1]}
    assert lost_records("claw.ingress", next_offsets(moved), starts) == ([], [])
    # while a consumer reads, from where it has read to (ahead of the ledger)
    (ahead,), _ = lost_records("claw.ingress", {0: 7}, {0: 9})
    assert (ahead.partition, ahead.offset) == (0, 8)


def test_a_batch_is_cut_before_each_record_that_skips_offsets() -> None:
    def runs(
        records: list[tuple[int, int]], read_to: dict[int, int]
    ) -> list[list[tuple[int, int]]]:
        given = [IngressRecord(p, o, b"") for p, o in records]
        return [[(r.partition, r.offset) for r in run] for run in split_at_gaps(given, read_to)]

    assert runs([], {0: 3}) == []
    # contiguous in each partition, interleaved: one run
    assert runs([(0, 3), (1, 0), (0, 4), (1, 1)], {0: 3}) == [[(0, 3), (1, 0), (0, 4), (1, 1)]]
    # a gap mid-batch (a consumer reset to a log's new start): cut before it
    assert runs([(0, 3), (1, 5), (0, 9), (0, 10), (1, 6)], {0: 3, 1: 5}) == [
        [(0, 3), (1, 5)],
        [(0, 9), (0, 10), (1, 6)],
    ]
    # the first record past the position: one run (the caller asks about it)
    assert runs([(0, 7), (0, 8)], {0: 3}) == [[(0, 7), (0, 8)]]
    # re-delivered records below the position are no gap, nor is a partition not read
    assert runs([(0, 1), (0, 2), (0, 3), (2, 40), (2, 41)], {0: 3}) == [
        [(0, 1), (0, 2), (0, 3), (2, 40), (2, 41)]
    ]
    assert runs([(2, 40), (2, 42)], {}) == [[(2, 40)], [(2, 42)]]


def test_a_partition_that_ends_below_the_ledgers_position_was_rewound() -> None:
    read_to = next_offsets({0: PartitionPosition(5, 3, "h"), 1: PartitionPosition(2, 1, "g")})
    # 0 was created again (ends at 1 < 5); 1 ends where the ledger stands; 2 is new
    assert rewound_partitions(read_to, {0: 1, 1: 2, 2: 0}) == {0: (1, 5)}
    assert rewound_partitions(read_to, {0: 9, 1: 3}) == {}
