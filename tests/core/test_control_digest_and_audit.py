"""The control-plane digest's row encoding and the audit's pure checks."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from ledger.audit import (
    ProblemKind,
    check_control_digests,
    check_event_columns,
    check_event_envelope,
    check_quarantine_row,
    same_json,
)
from ledger.control_digest import (
    DIGEST_MODULUS,
    canonical_row,
    digest_delta,
    row_hash,
    state_digests,
    table_digest,
)
from ledger.crypto import KeyPair
from ledger.events import build_event, sign_event
from ledger.state import KeyRecord, LedgerState, ProjectionRow
from ledger.verify import Verified, verify_message

OPERATOR = KeyPair.from_seed(bytes([2]) * 32, "operator")


def test_the_row_encoding_ignores_what_jsonb_changes() -> None:
    written = {"b": [1e2, 0.5, 2**60], "a": {"y": 1, "x": None}, "gone": None, "control_version": 7}
    read_back = {"a": {"x": None, "y": 1.0}, "b": [100, 0.5, float(2**60)]}
    assert canonical_row(written) == canonical_row(read_back)
    assert canonical_row(written) == b'{"a":{"x":null,"y":1},"b":[100,0.5,1152921504606846976]}'


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ({"active": True}, {"active": 1}),
        ({"active": False}, {"active": 0}),
        ({"n": "1"}, {"n": 1}),
        ({"a": []}, {"a": {}}),
        ({"s": "é"}, {"s": "e\u0301"}),
        ({"x": [1, 2]}, {"x": [2, 1]}),
    ],
)
def test_the_row_encoding_keeps_what_has_meaning(
    left: dict[str, Any], right: dict[str, Any]
) -> None:
    assert canonical_row(left) != canonical_row(right)
    assert row_hash("halts", left) != row_hash("halts", right)


def test_a_row_hash_depends_on_its_table() -> None:
    row = {"target": "*", "active": True}
    assert row_hash("halts", row) != row_hash("jobs", row)


def test_the_delta_replaces_old_rows_and_adds_new_ones() -> None:
    old = {"job:1": {"target": "job:1", "active": True, "reason": "r"}}
    changes = [
        ProjectionRow("halts", "target", {"target": "job:1", "active": False}),
        ProjectionRow("halts", "target", {"target": "job:2", "active": True, "reason": "s"}),
        ProjectionRow("halts", "target", {"target": "job:2", "reason": "t"}),
    ]
    before = table_digest("halts", old.values())
    after = table_digest(
        "halts",
        [
            {"target": "job:1", "active": False, "reason": "r"},
            {"target": "job:2", "active": True, "reason": "t"},
        ],
    )
    assert (before + digest_delta("halts", old, changes)) % DIGEST_MODULUS == after
    assert digest_delta("halts", old, []) == 0


def test_the_state_digest_of_keys_is_the_digest_of_their_rows() -> None:
    record = KeyRecord(OPERATOR.did, "operator", frozenset(), "did:key:admin", "e-1")
    state = LedgerState(keys={OPERATOR.did: record}, halts={"*": {"target": "*"}})
    digests = state_digests(state)
    assert digests["keys"] == table_digest("keys", [record.row().values])
    assert digests["halts"] == row_hash("halts", {"target": "*"})
    assert digests["tokens"] == digests["jobs"] == digests["policies"] == 0


def test_same_json_is_strict_about_types_not_spelling() -> None:
    assert same_json({"a": [1, 2.0], "b": {"c": None}}, {"b": {"c": None}, "a": [1.0, 2]})
    assert not same_json({"a": True}, {"a": 1})
    assert not same_json({"a": "1"}, {"a": 1})
    assert not same_json({"a": [1]}, {"a": [1, 1]})
    assert not same_json({"a": 1}, {"a": 1, "b": None})


def _stored_event() -> dict[str, Any]:
    body = {"target": "job:1", "reason": "drill"}
    raw = sign_event(build_event("agent.halted", "halt:job:1", body, OPERATOR), OPERATOR).to_bytes()
    verdict = verify_message(raw)
    assert isinstance(verdict, Verified)
    event = verdict.event
    return {
        "position": 3,
        "kafka_partition": 1,
        "ledger_seq": 2,
        "event_id": event.event_id,
        "event_type": event.event_type,
        "stream": event.stream,
        "producer": event.producer,
        "occurred_at": datetime.fromisoformat(event.occurred_at).astimezone(UTC),
        "payload_hash_b64u": verdict.envelope.payload_hash_b64u,
        "envelope_sha256": verdict.envelope_sha256,
        "envelope_raw": raw,
        "payload": json.loads(verdict.payload_json),
    }


def test_a_faithful_event_row_has_no_problem() -> None:
    row = _stored_event()
    assert check_event_columns(row) == []
    assert check_event_envelope(row) == []


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("event_id", "00000000-0000-4000-8000-000000000000"),
        ("event_type", "agent.resumed"),
        ("stream", "halt:*"),
        ("producer", "did:key:z6MkOther"),
        ("occurred_at", datetime(2000, 1, 1, tzinfo=UTC)),
        ("payload_hash_b64u", "A" * 43),
        ("envelope_sha256", "B" * 43),
    ],
)
def test_each_changed_column_is_a_column_mismatch(column: str, value: Any) -> None:
    row = _stored_event() | {column: value}
    [problem] = check_event_columns(row)
    assert (problem.kind, problem.column, problem.partition, problem.ledger_seq) == (
        ProblemKind.COLUMN_MISMATCH,
        column,
        1,
        2,
    )
    assert problem.found is value or str(problem.found) == str(value)


def test_a_changed_payload_column_is_reported_with_both_bodies() -> None:
    row = _stored_event()
    row["payload"] = json.loads(json.dumps(row["payload"]))
    row["payload"]["body"]["reason"] = "forged"
    [problem] = check_event_columns(row)
    assert problem.column == "payload"
    assert problem.to_json()["found"].count("forged") == 1
    assert "forged" not in problem.to_json()["expected"]


def test_changed_raw_bytes_fail_the_signature() -> None:
    row = _stored_event()
    row["envelope_raw"] = row["envelope_raw"].replace(b"drill", b"drilx")
    [problem] = check_event_envelope(row)
    assert problem.kind is ProblemKind.SIGNATURE_INVALID
    kinds = {(p.kind, p.column) for p in check_event_columns(row)}
    assert kinds == {
        (ProblemKind.COLUMN_MISMATCH, "payload"),
        (ProblemKind.COLUMN_MISMATCH, "envelope_sha256"),
    }
    row["envelope_raw"] = b"[]"
    assert [p.kind for p in check_event_columns(row)] == [ProblemKind.ENVELOPE_INVALID]


def test_quarantine_rows() -> None:
    good = {"id": 4, "reason_code": "MALFORMED_JSON", "raw_size": 8, "raw_length": 8}
    assert check_quarantine_row(good | {"kafka_partition": 0}) == []
    bad = good | {"kafka_partition": 0, "raw_size": 9, "reason_code": "OK"}
    kinds = [p.kind for p in check_quarantine_row(bad)]
    assert kinds == [ProblemKind.QUARANTINE_SIZE_MISMATCH, ProblemKind.QUARANTINE_REASON_UNKNOWN]


def test_digest_checks() -> None:
    problems = list(check_control_digests({"halts": (1, 2), "keys": (3, 3), "jobs": (None, 5)}))
    assert [(p.kind, p.table) for p in problems] == [(ProblemKind.DIGEST_MISMATCH, "halts")]
    assert problems[0].expected == f"{1:064x}" and problems[0].found == f"{2:064x}"
