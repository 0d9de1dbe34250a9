"""Verified replay: rebuild the ledger state from its events, trusting nothing unverified.

A :class:`Replay` is a fold over stored events in the order the processor
decided them (the ``events`` table by ``position``, or the ingress topic). For
every event it re-runs exactly what the processor ran: the stateless checks
(:func:`~ledger.verify.verify_message`), then :func:`~ledger.batch.plan_batch`
with a fresh :class:`~ledger.state.LedgerState`, which decides the event
(:func:`~ledger.verify.decide`) and gives it its ``ledger_seq`` and chain link.
Replay and processing share that code, so they cannot disagree about a rule.

Two sources, two strictness levels:

* **stored** events (``strict=True``): every one was accepted by the
  processor, so a refusal, a duplicate, a seq gap or a chain link that does
  not recompute is a **break**: the fold stops and names it;
* **topic** records (``strict=False``): a refusal is skipped exactly as the
  processor quarantines it, and the chain links are computed, not checked.

Trust root: the first self-signed ``key.registered`` (signer = registered DID)
seen while the registry is empty is the bootstrap, unless ``trust_root`` pins
a DID; then a different first admin is a ``TRUST_ROOT_MISMATCH`` break.

``until``: the fold stops before the first event recorded after it. The time
compared is the event's *recorded* time when the source has one (the ledger's
``recorded_at``, a Kafka record timestamp), else its ``occurred_at``: the
recorded commit order is what the processor saw.

Nothing here has a side effect beyond the fold's own state: rows are computed,
never written.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from ledger.batch import IngressRecord, PartitionPosition, pending_records, plan_batch
from ledger.errors import ReasonCode
from ledger.registry import DEFAULT_RULE_SETTINGS, RuleSettings
from ledger.roles import Role
from ledger.state import KeyRecord, LedgerState, ProjectionRow
from ledger.verify import Rejected, Verified, verify_message

__all__ = [
    "ProjectionDiff",
    "Replay",
    "ReplayBreak",
    "ReplayStep",
    "StoredEvent",
    "diff_projections",
    "point_in_time",
    "projection_key",
    "replay",
]

#: stored envelopes were within the limit when accepted; a replay never refuses them by size
_NO_SIZE_LIMIT = 1 << 31


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One event as a source holds it. Only ``raw`` is required: without the
    stored chain fields (a topic record) the links are computed, not checked."""

    raw: bytes
    partition: int = 0
    offset: int | None = None
    ledger_seq: int | None = None
    prev_chain_hash: str | None = None
    chain_hash: str | None = None
    #: when the source recorded it (ledger ``recorded_at``, Kafka timestamp)
    recorded_at: datetime | None = None
    #: the ledger ``position``, for naming a break
    position: int | None = None
    #: the ``event_id`` column stored beside the envelope (checked against it)
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class ReplayBreak:
    """Where and why the replay stopped: the first event that cannot be trusted."""

    partition: int
    ledger_seq: int | None
    offset: int | None
    position: int | None
    event_id: str | None
    code: ReasonCode
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "code": self.code.value}

    def __str__(self) -> str:
        where = f"partition {self.partition}"
        if self.ledger_seq is not None:
            where += f" seq {self.ledger_seq}"
        if self.offset is not None:
            where += f" offset {self.offset}"
        if self.position is not None:
            where += f" position {self.position}"
        return f"{where} event {self.event_id or '?'}: {self.code.value}: {self.detail}"


@dataclass(frozen=True, slots=True)
class ReplayStep:
    """What one event did: accepted (``verified`` set, ``refused`` None), a
    duplicate, or refused (skipped on a topic replay)."""

    stored: StoredEvent
    verified: Verified | None
    refused: Rejected | None = None
    duplicate: bool = False
    rows: tuple[ProjectionRow, ...] = ()


def projection_key(row: ProjectionRow) -> tuple[str, Any]:
    return row.table, row.values[row.key_column]


@dataclass
class Replay:
    """The fold. Feed events in decision order with :meth:`feed`; read
    :attr:`state`, :meth:`rows`, :attr:`broken` and the counters."""

    trust_root: str | None = None
    settings: RuleSettings = DEFAULT_RULE_SETTINGS
    until: datetime | None = None
    #: stored events: any refusal or link mismatch is a break (else: skipped)
    strict: bool = True
    state: LedgerState = field(init=False)
    positions: dict[int, PartitionPosition] = field(init=False, default_factory=dict)
    projections: dict[tuple[str, Any], ProjectionRow] = field(init=False, default_factory=dict)
    #: accepted events per type
    counts: Counter[str] = field(init=False, default_factory=Counter)
    #: refusals per reason code (topic replays only; a stored refusal is a break)
    skipped: Counter[str] = field(init=False, default_factory=Counter)
    duplicates: int = field(init=False, default=0)
    broken: ReplayBreak | None = field(init=False, default=None)
    #: the fold reached an event recorded after ``until`` and stopped there
    reached_until: bool = field(init=False, default=False)
    _recorded: dict[str, str] = field(init=False, default_factory=dict)
    _pinned: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self._pinned = self.trust_root is not None
        self.state = LedgerState(trust_root=self.trust_root)

    def resume(
        self,
        rows: Iterable[ProjectionRow],
        positions: Mapping[int, PartitionPosition],
        trust_root: str | None,
    ) -> None:
        """Start from a verified state instead of the empty ledger: the projection
        rows and chain positions a fold reached at an archive cut."""
        if self.trust_root is None:
            self.trust_root = trust_root
        self.state.trust_root = self.trust_root
        for row in rows:
            self.projections[projection_key(row)] = row
            key = row.values[row.key_column]
            if row.table == "keys":
                v = row.values
                self.state.keys[key] = KeyRecord(
                    did=v["did"],
                    name=v["name"],
                    roles=frozenset(Role(r) for r in v["roles"]),
                    registered_by=v["registered_by"],
                    registered_event_id=v["registered_event_id"],
                    revoked=v["revoked"],
                    revoked_reason=v["revoked_reason"],
                )
            elif row.table in ("policies", "tokens", "jobs", "halts"):
                getattr(self.state, row.table)[key] = dict(row.values)
        self.positions.update(positions)

    def snapshot(self) -> dict[str, Any]:
        """What :meth:`resume` needs, JSON-shaped (stored at an archive cut)."""
        return {
            "trust_root": self.trust_root,
            "positions": {
                str(p): [pos.next_offset, pos.ledger_seq, pos.chain_hash]
                for p, pos in self.positions.items()
            },
            "rows": [
                {"table": r.table, "key_column": r.key_column, "values": r.values}
                for r in self.projections.values()
            ],
        }

    def resume_snapshot(self, snapshot: Mapping[str, Any]) -> None:
        """:meth:`resume` from what :meth:`snapshot` returned."""
        self.resume(
            [
                ProjectionRow(r["table"], r["key_column"], dict(r["values"]))
                for r in snapshot["rows"]
            ],
            {
                int(p): PartitionPosition(int(v[0]), int(v[1]), v[2])
                for p, v in snapshot["positions"].items()
            },
            snapshot.get("trust_root"),
        )

    @property
    def stopped(self) -> bool:
        return self.broken is not None or self.reached_until

    @property
    def accepted(self) -> int:
        return sum(self.counts.values())

    def rows(self) -> list[ProjectionRow]:
        """The rebuilt projections: the latest row of every key, in first-write order."""
        return list(self.projections.values())

    def feed(
        self, stored: StoredEvent | bytes, verdict: Verified | Rejected | None = None
    ) -> ReplayStep | None:
        """Decide one event; ``None`` once the fold has stopped (break or ``until``).

        ``verdict`` is the result of :func:`verify_message` for these bytes when
        the caller already has it (checks done elsewhere); by default the
        envelope is verified here.
        """
        if self.stopped:
            return None
        if isinstance(stored, bytes):
            stored = StoredEvent(stored)
        if verdict is None:
            verdict = verify_message(stored.raw, max_bytes=_NO_SIZE_LIMIT)
        if self.until is not None and self._after_until(stored, verdict):
            self.reached_until = True
            return None
        if isinstance(verdict, Verified):
            if stored.event_id is not None and stored.event_id != verdict.event.event_id:
                self._break(
                    stored,
                    verdict.event.event_id,
                    ReasonCode.CHAIN_BROKEN,
                    f"the stored event_id {stored.event_id} is not the envelope's",
                )
                return None
            if not self._adopt_trust_root(stored, verdict):
                return None
        return self._decide(stored, verdict)

    def _after_until(self, stored: StoredEvent, verdict: Verified | Rejected) -> bool:
        assert self.until is not None
        moment = stored.recorded_at
        if moment is None and isinstance(verdict, Verified):
            moment = datetime.fromisoformat(verdict.event.occurred_at.replace("Z", "+00:00"))
        return moment is not None and moment > self.until

    def _adopt_trust_root(self, stored: StoredEvent, verdict: Verified) -> bool:
        """The bootstrap: the first self-signed admin registration while no key exists."""
        event = verdict.event
        if event.event_type != "key.registered" or self.state.keys:
            return True
        body = verdict.body
        did = getattr(body, "did", None)
        if did != verdict.envelope.signer_did or "admin" not in getattr(body, "roles", ()):
            return True
        if self.state.trust_root is None:
            self.state.trust_root = did
            self.trust_root = did
            return True
        if self._pinned and did != self.state.trust_root:
            self._break(
                stored,
                event.event_id,
                ReasonCode.TRUST_ROOT_MISMATCH,
                f"the first admin {did} registers itself, the pinned trust root is "
                f"{self.state.trust_root}",
            )
            return False
        return True

    def _decide(self, stored: StoredEvent, verdict: Verified | Rejected) -> ReplayStep | None:
        partition = stored.partition
        position = self.positions.get(partition)
        offset = stored.offset
        if offset is None:
            offset = position.next_offset if position else 0
        record = IngressRecord(partition, offset, stored.raw)
        # the processor's own planning, one event at a time: same decide, same chain links
        pending = pending_records({}, [record], [verdict])
        plan = plan_batch(self.state, self.positions, pending, self._recorded, self.settings)
        (batch,) = plan.batches
        if plan.report.duplicates:
            assert isinstance(verdict, Verified)
            if self.strict:
                self._break(
                    stored,
                    verdict.event.event_id,
                    ReasonCode.DUPLICATE_EVENT_CONFLICT,
                    "the same event is stored twice",
                )
                return None
            self.duplicates += 1
            self._advance(batch.partition, batch.new_position)
            return ReplayStep(stored, verdict, duplicate=True)
        if batch.quarantined:
            refused = verdict if isinstance(verdict, Rejected) else _refusal(verdict, batch)
            if self.strict:
                self._break(stored, refused.event_id, refused.code, refused.detail)
                return None
            self.skipped[refused.code.value] += 1
            self._advance(batch.partition, batch.new_position)
            return ReplayStep(stored, None, refused)
        assert isinstance(verdict, Verified)
        (row,) = batch.events
        if self.strict and stored.ledger_seq is not None:
            problem = _link_problem(stored, row.ledger_seq, row.prev_chain_hash, row.chain_hash)
            if problem is not None:
                code, detail = problem
                self._break(stored, verdict.event.event_id, code, detail)
                return None
        self._recorded[verdict.event.event_id] = verdict.envelope.payload_hash_b64u
        self._advance(batch.partition, batch.new_position)
        for projection in plan.projections:
            self.projections[projection_key(projection)] = projection
        self.counts[verdict.event.event_type] += 1
        rows = tuple(plan.projections)
        return ReplayStep(stored, verdict, rows=rows)

    def _advance(self, partition: int, position: PartitionPosition) -> None:
        self.positions[partition] = position

    def _break(
        self, stored: StoredEvent, event_id: str | None, code: ReasonCode, detail: str
    ) -> None:
        self.broken = ReplayBreak(
            partition=stored.partition,
            ledger_seq=stored.ledger_seq,
            offset=stored.offset,
            position=stored.position,
            event_id=event_id or stored.event_id,
            code=code,
            detail=detail,
        )


def _refusal(verdict: Verified, batch: Any) -> Rejected:
    (row,) = batch.quarantined
    return Rejected(
        ReasonCode(row.reason_code), row.detail, verdict.event.event_id, verdict.envelope.signer_did
    )


def _link_problem(
    stored: StoredEvent, seq: int, prev: str | None, link: str
) -> tuple[ReasonCode, str] | None:
    """How the stored chain fields differ from the ones the processor would give."""
    if stored.ledger_seq != seq:
        return ReasonCode.REPLAY_GAP, f"expected ledger_seq {seq}, stored {stored.ledger_seq}"
    if stored.prev_chain_hash != prev:
        return ReasonCode.CHAIN_BROKEN, "the stored prev hash is not the previous chain hash"
    if stored.chain_hash != link:
        return ReasonCode.CHAIN_BROKEN, "the stored chain hash does not recompute"
    return None


def replay(
    events: Iterable[StoredEvent | bytes],
    *,
    trust_root: str | None = None,
    until: datetime | None = None,
    strict: bool = True,
    settings: RuleSettings = DEFAULT_RULE_SETTINGS,
) -> Replay:
    """Fold ``events`` (in decision order) and return the finished :class:`Replay`."""
    fold = Replay(trust_root=trust_root, settings=settings, until=until, strict=strict)
    for event in events:
        fold.feed(event)
        if fold.stopped:
            break
    return fold


@dataclass(frozen=True, slots=True)
class ProjectionDiff:
    """One row on which a rebuild and the live projections disagree.

    ``kind``: ``missing`` (rebuilt, not live), ``unexpected`` (live, not
    rebuilt) or ``changed`` (both, ``columns`` differ)."""

    table: str
    key: Any
    kind: str
    columns: tuple[str, ...] = ()
    rebuilt: Mapping[str, Any] | None = None
    live: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        pick = self.columns or None
        return {
            "table": self.table,
            "key": self.key,
            "kind": self.kind,
            "columns": list(self.columns),
            "rebuilt": _only(self.rebuilt, pick),
            "live": _only(self.live, pick),
        }

    def __str__(self) -> str:
        text = f"{self.table} {self.key!r}: {self.kind}"
        if self.columns:
            text += " " + ", ".join(
                f"{c} rebuilt={_plain(self.rebuilt, c)} live={_plain(self.live, c)}"
                for c in self.columns
            )
        return text


def _only(values: Mapping[str, Any] | None, columns: tuple[str, ...] | None) -> Any:
    if values is None:
        return None
    return {k: v for k, v in values.items() if columns is None or k in columns}


def _plain(values: Mapping[str, Any] | None, column: str) -> str:
    text = json.dumps(None if values is None else values.get(column), default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def _normal(values: Mapping[str, Any], ignore: frozenset[str]) -> dict[str, Any]:
    # tuples and lists, ints from bigint columns: compared as the JSON they are
    return {k: json.loads(json.dumps(v, default=str)) for k, v in values.items() if k not in ignore}


def diff_projections(
    rebuilt: Iterable[ProjectionRow],
    live: Mapping[str, Mapping[Any, Mapping[str, Any]]],
    *,
    ignore: frozenset[str] = frozenset({"control_version"}),
) -> list[ProjectionDiff]:
    """Table by table, row by row: where ``rebuilt`` and ``live`` (table -> key ->
    row) differ. Columns in ``ignore`` (bookkeeping) are left out."""
    by_table: dict[str, dict[Any, dict[str, Any]]] = {table: {} for table in live}
    for row in rebuilt:
        by_table.setdefault(row.table, {})[row.values[row.key_column]] = _normal(row.values, ignore)
    diffs: list[ProjectionDiff] = []
    for table in sorted(by_table):
        mine = by_table[table]
        theirs = {k: _normal(v, ignore) for k, v in live.get(table, {}).items()}
        for key in sorted(mine.keys() | theirs.keys(), key=str):
            a, b = mine.get(key), theirs.get(key)
            if b is None:
                diffs.append(ProjectionDiff(table, key, "missing", rebuilt=a))
            elif a is None:
                diffs.append(ProjectionDiff(table, key, "unexpected", live=b))
            elif a != b:
                columns = tuple(sorted(c for c in a.keys() | b.keys() if a.get(c) != b.get(c)))
                diffs.append(ProjectionDiff(table, key, "changed", columns, a, b))
    return diffs


def point_in_time(state: LedgerState, at: datetime) -> dict[str, Any]:
    """What held at ``at`` in a state replayed up to it: active halts, valid tokens
    (issued, not revoked, ``iat`` ≤ ``at`` < ``exp``), active policies, running jobs."""
    moment = at.timestamp()
    return {
        "at": at.isoformat(),
        "trust_root": state.trust_root,
        "halted": sorted(
            (
                {"target": t, "reason": h["reason"], "halted_at": h["halted_at"]}
                for t, h in state.halts.items()
                if h.get("active")
            ),
            key=lambda h: str(h["target"]),
        ),
        "valid_tokens": sorted(
            (
                {
                    "jti": jti,
                    "sub": t["sub"],
                    "mission_id": t.get("mission_id"),
                    "policy_hash_b64u": t.get("policy_hash_b64u"),
                    "exp": t["exp"],
                }
                for jti, t in state.tokens.items()
                if t["status"] == "active" and t["iat"] <= moment < t["exp"]
            ),
            key=lambda t: str(t["jti"]),
        ),
        "active_policies": sorted(h for h, p in state.policies.items() if p["status"] == "active"),
        "running_jobs": sorted(
            (
                {"job_id": j, "cst_jti": job.get("cst_jti"), "started_at": job.get("started_at")}
                for j, job in state.jobs.items()
                if job["status"] == "running"
            ),
            key=lambda j: str(j["job_id"]),
        ),
        "keys": {
            "registered": len(state.keys),
            "revoked": sorted(d for d, k in state.keys.items() if k.revoked),
        },
    }
