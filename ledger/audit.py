"""The tamper audit's checks: pure functions over rows read from the ledger.

``claw-ledger audit`` streams every stored row through these. Each problem
has a stable :class:`ProblemKind`, where it is, and what was expected against
what was found. The stored ``envelope_raw`` is the evidence: every other
column of an event must be what those bytes say.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from ledger.canonical import parse_json_strict
from ledger.chain import ChainProblem
from ledger.control_digest import digest_hex
from ledger.encoding import sha256_b64u
from ledger.errors import ReasonCode
from ledger.verify import Rejected, Verified, verify_message

__all__ = [
    "AuditProblem",
    "ProblemKind",
    "chain_problem",
    "check_control_digests",
    "check_event_columns",
    "check_event_envelope",
    "check_quarantine_row",
    "same_json",
]


class ProblemKind(StrEnum):
    """What an audit problem is. Stable: scripts match on these."""

    #: a column of an event differs from what its ``envelope_raw`` says
    COLUMN_MISMATCH = "COLUMN_MISMATCH"
    #: ``envelope_raw`` no longer parses as a ledger event envelope
    ENVELOPE_INVALID = "ENVELOPE_INVALID"
    #: the envelope's payload hash or signature does not verify
    SIGNATURE_INVALID = "SIGNATURE_INVALID"
    #: a ``prev_chain_hash`` or ``chain_hash`` does not recompute
    CHAIN_BROKEN = "CHAIN_BROKEN"
    #: a ``ledger_seq`` is missing, inside a chain or at its end
    ROW_MISSING = "ROW_MISSING"
    #: a ``ledger_seq`` repeats or goes back
    SEQ_OUT_OF_ORDER = "SEQ_OUT_OF_ORDER"
    #: a chain's last row is not the head the processor committed
    HEAD_MISMATCH = "HEAD_MISMATCH"
    #: a verified replay of the events stops: an event the rules refuse now
    REPLAY_BREAK = "REPLAY_BREAK"
    #: a projection row is not what a rebuild from the events produces
    PROJECTION_MISMATCH = "PROJECTION_MISMATCH"
    #: ``quarantine.raw_size`` is not the length of ``raw``
    QUARANTINE_SIZE_MISMATCH = "QUARANTINE_SIZE_MISMATCH"
    #: ``quarantine.reason_code`` is no known reason code
    QUARANTINE_REASON_UNKNOWN = "QUARANTINE_REASON_UNKNOWN"
    #: two rows (events or quarantine) claim one Kafka (topic, partition, offset)
    COORDINATES_DUPLICATE = "COORDINATES_DUPLICATE"
    #: a control-plane table does not sum to its stored digest (ADR 0014)
    DIGEST_MISMATCH = "DIGEST_MISMATCH"
    #: a leaf of the transparency log is missing, out of order, or not its event's
    TLOG_LEAF_MISMATCH = "TLOG_LEAF_MISMATCH"
    #: a stored node of the log's tree is not what its leaves recompute (changed, missing, extra)
    TLOG_NODE_MISMATCH = "TLOG_NODE_MISMATCH"
    #: a checkpoint's root is not its tree's, its note does not verify, or it disagrees
    #: with its ``checkpoint.signed`` event
    TLOG_CHECKPOINT_INVALID = "TLOG_CHECKPOINT_INVALID"


@dataclass(frozen=True)
class AuditProblem:
    """One problem. ``topic``/``partition``/``ledger_seq`` locate event rows (each
    lane's topic has chains of its own), ``table`` and ``row`` (the row's
    ``position`` or quarantine ``id``, or a key) the others."""

    kind: ProblemKind
    problem: str
    partition: int | None = None
    ledger_seq: int | None = None
    table: str = "events"
    row: Any = None
    column: str | None = None
    expected: Any = None
    found: Any = None
    topic: str | None = None

    def on_topic(self, topic: str) -> AuditProblem:
        """This problem, located on ``topic``."""
        return replace(self, topic=topic)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["kind"] = self.kind.value
        for name in ("expected", "found"):
            value = out[name]
            if value is not None and not isinstance(value, str | int | float | bool):
                out[name] = json.dumps(value, sort_keys=True, default=str)
        return out


def chain_problem(p: ChainProblem) -> AuditProblem:
    """A :func:`ledger.chain.verify_chain` finding as an audit problem."""
    if p.problem.startswith("gap: expected seq "):
        expected = int(p.problem.rsplit(" ", 1)[1])
        kind = ProblemKind.ROW_MISSING if p.ledger_seq > expected else ProblemKind.SEQ_OUT_OF_ORDER
        return AuditProblem(
            kind,
            p.problem,
            p.partition,
            p.ledger_seq,
            column="ledger_seq",
            expected=expected,
            found=p.ledger_seq,
        )
    column = "prev_chain_hash" if p.problem.startswith("prev") else "chain_hash"
    return AuditProblem(
        ProblemKind.CHAIN_BROKEN, p.problem, p.partition, p.ledger_seq, column=column
    )


def same_json(a: Any, b: Any) -> bool:
    """JSON equality as jsonb keeps it: key order and number spelling do not
    matter, types do (``true`` is not ``1``)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return bool(a == b) or (
            isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _payload(raw: bytes) -> Mapping[str, Any] | None:
    try:
        document = parse_json_strict(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(document, dict):
        return None
    payload = document.get("payload")
    return document if isinstance(payload, dict) else None


def check_event_columns(row: Mapping[str, Any]) -> list[AuditProblem]:
    """Every column of a stored event against its ``envelope_raw``.

    ``row`` holds the ``events`` columns (``payload`` as decoded jsonb,
    ``occurred_at`` as a datetime, ``event_id`` as text).
    """
    raw = bytes(row["envelope_raw"])
    where = {"partition": row["kafka_partition"], "ledger_seq": row["ledger_seq"]}
    envelope = _payload(raw)
    if envelope is None:
        return [
            AuditProblem(
                ProblemKind.ENVELOPE_INVALID,
                "envelope_raw is not a JSON envelope with a payload",
                row=row.get("position"),
                column="envelope_raw",
                **where,
            )
        ]
    payload = envelope["payload"]
    expected: dict[str, Any] = {
        "event_id": payload.get("event_id"),
        "event_type": payload.get("event_type"),
        "stream": payload.get("stream"),
        "producer": payload.get("producer"),
        "payload_hash_b64u": envelope.get("payload_hash_b64u"),
        "envelope_sha256": sha256_b64u(raw),
    }
    problems: list[AuditProblem] = []

    def mismatch(column: str, want: Any, found: Any) -> None:
        problems.append(
            AuditProblem(
                ProblemKind.COLUMN_MISMATCH,
                f"{column} differs from envelope_raw",
                row=row.get("position"),
                column=column,
                expected=want,
                found=found,
                **where,
            )
        )

    for column, want in expected.items():
        if row[column] != want:
            mismatch(column, want, row[column])
    try:
        occurred = datetime.fromisoformat(str(payload.get("occurred_at")))
    except ValueError:
        occurred = None
    if occurred is None or row["occurred_at"] != occurred:
        mismatch("occurred_at", payload.get("occurred_at"), str(row["occurred_at"]))
    if not same_json(row["payload"], payload):
        mismatch("payload", payload, row["payload"])
    return problems


def check_event_envelope(
    row: Mapping[str, Any], verdict: Verified | Rejected | None = None
) -> list[AuditProblem]:
    """Steps 1–3 again on the stored bytes: hash and signature. ``verdict``:
    :func:`verify_message` of ``envelope_raw`` when the caller ran it (in
    worker processes); by default it runs here."""
    if verdict is None:
        verdict = verify_message(bytes(row["envelope_raw"]), max_bytes=1 << 30)
    if isinstance(verdict, Verified):
        if verdict.event.event_id == row["event_id"]:
            return []
        detail = f"envelope names event {verdict.event.event_id}"
        kind = ProblemKind.COLUMN_MISMATCH
    else:
        detail = f"{verdict.code.value}: {verdict.detail}"
        signature_codes = (ReasonCode.SIGNATURE_INVALID, ReasonCode.HASH_MISMATCH)
        kind = (
            ProblemKind.SIGNATURE_INVALID
            if verdict.code in signature_codes
            else ProblemKind.ENVELOPE_INVALID
        )
    return [
        AuditProblem(
            kind,
            "envelope does not verify",
            row["kafka_partition"],
            row["ledger_seq"],
            row=row.get("position"),
            column="envelope_raw",
            expected="a verifying envelope",
            found=detail,
        )
    ]


_REASON_CODES = frozenset(code.value for code in ReasonCode) - {ReasonCode.OK.value}


def check_quarantine_row(row: Mapping[str, Any]) -> list[AuditProblem]:
    """``row``: ``id``, ``reason_code``, ``raw_size``, ``raw_length`` (of ``raw``),
    ``kafka_partition``."""
    problems: list[AuditProblem] = []
    where: dict[str, Any] = {
        "table": "quarantine",
        "row": row["id"],
        "partition": row["kafka_partition"],
    }
    if row["raw_size"] != row["raw_length"]:
        problems.append(
            AuditProblem(
                ProblemKind.QUARANTINE_SIZE_MISMATCH,
                "raw_size is not the length of raw",
                column="raw_size",
                expected=row["raw_length"],
                found=row["raw_size"],
                **where,
            )
        )
    if row["reason_code"] not in _REASON_CODES:
        problems.append(
            AuditProblem(
                ProblemKind.QUARANTINE_REASON_UNKNOWN,
                "reason_code is no known reason code",
                column="reason_code",
                expected="a ReasonCode other than OK",
                found=row["reason_code"],
                **where,
            )
        )
    return problems


def check_control_digests(
    digests: Mapping[str, tuple[int | None, int]],
) -> Iterable[AuditProblem]:
    """``digests``: table -> (stored digest or ``None`` if not sealed, digest of its rows)."""
    for table, (stored, computed) in sorted(digests.items()):
        if stored is not None and stored != computed:
            yield AuditProblem(
                ProblemKind.DIGEST_MISMATCH,
                f"{table} does not match the digest kept while writing it",
                table=table,
                column="digest",
                expected=digest_hex(stored),
                found=digest_hex(computed),
            )
