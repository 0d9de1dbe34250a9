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

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ledger.batch import IngressRecord, PartitionPosition, pending_records, plan_batch
from ledger.chain import chain_hash
from ledger.errors import ReasonCode
from ledger.projection_diff import ProjectionDiff, diff_projections, point_in_time
from ledger.registry import DEFAULT_RULE_SETTINGS, RuleSettings
from ledger.replay_records import (
    AllEventIds,
    EventIds,
    RecentEventIds,
    ReplayBreak,
    ReplayStep,
    StoredEvent,
    projection_key,
)
from ledger.state import KeyRecord, LedgerState, ProjectionRow
from ledger.verify import Rejected, Verified, verify_message

__all__ = [
    "AllEventIds",
    "EventIds",
    "ProjectionDiff",
    "RecentEventIds",
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


Verdict = Verified | Rejected


@dataclass
class Replay:
    """The fold. Feed events in decision order with :meth:`feed` (one) or
    :meth:`feed_many` (a chunk, faster); read :attr:`state`, :meth:`rows`,
    :attr:`broken` and the counters."""

    trust_root: str | None = None
    settings: RuleSettings = DEFAULT_RULE_SETTINGS
    until: datetime | None = None
    #: stored events: any refusal or link mismatch is a break (else: skipped)
    strict: bool = True
    #: verify signatures of the events fed without a verdict
    signatures: bool = True
    #: the ids seen so far (default: all of them, in memory)
    seen: EventIds = field(default_factory=AllEventIds)
    state: LedgerState = field(init=False)
    #: the chain heads of the events fed without a topic
    positions: dict[int, PartitionPosition] = field(init=False, default_factory=dict)
    #: topic -> its chain heads (the topic ``""`` holds :attr:`positions`)
    chains: dict[str, dict[int, PartitionPosition]] = field(init=False, default_factory=dict)
    projections: dict[tuple[str, Any], ProjectionRow] = field(init=False, default_factory=dict)
    #: accepted events per type
    counts: Counter[str] = field(init=False, default_factory=Counter)
    #: refusals per reason code (topic replays only; a stored refusal is a break)
    skipped: Counter[str] = field(init=False, default_factory=Counter)
    duplicates: int = field(init=False, default=0)
    broken: ReplayBreak | None = field(init=False, default=None)
    #: the fold reached an event recorded after ``until`` and stopped there
    reached_until: bool = field(init=False, default=False)
    _pinned: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self._pinned = self.trust_root is not None
        self.state = LedgerState(trust_root=self.trust_root)
        self.chains[""] = self.positions

    def _chain(self, topic: str) -> dict[int, PartitionPosition]:
        """The chain heads of ``topic``'s partitions."""
        heads = self.chains.get(topic)
        if heads is None:
            heads = self.chains[topic] = {}
        return heads

    def resume(
        self,
        rows: Iterable[ProjectionRow],
        chains: Mapping[str, Mapping[int, PartitionPosition]],
        trust_root: str | None,
    ) -> None:
        """Start from a verified state instead of the empty ledger: the projection
        rows and the chain heads of each topic's partitions a fold reached at an
        archive cut (topic ``""``: the events fed without a topic)."""
        if self.trust_root is None:
            self.trust_root = trust_root
        self.state.trust_root = self.trust_root
        for row in rows:
            self.projections[projection_key(row)] = row
            key = row.values[row.key_column]
            if row.table == "keys":
                self.state.keys[key] = KeyRecord.from_row(row.values)
            elif row.table in ("policies", "tokens", "jobs", "halts", "shadows"):
                getattr(self.state, row.table)[key] = dict(row.values)
        for topic, heads in chains.items():
            self._chain(topic).update(heads)

    def snapshot(self) -> dict[str, Any]:
        """What :meth:`resume` needs, JSON-shaped (stored at an archive cut): the
        chain heads per topic, since each lane's partitions are chains of their own."""
        return {
            "trust_root": self.trust_root,
            "chains": {
                topic: {
                    str(p): [pos.next_offset, pos.ledger_seq, pos.chain_hash]
                    for p, pos in heads.items()
                }
                for topic, heads in self.chains.items()
                if heads
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
                topic: {
                    int(p): PartitionPosition(int(v[0]), int(v[1]), v[2]) for p, v in heads.items()
                }
                for topic, heads in _snapshot_chains(snapshot).items()
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
        self, stored: StoredEvent | bytes, verdict: Verdict | None = None
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
            verdict = verify_message(
                stored.raw, max_bytes=_NO_SIZE_LIMIT, signature=self.signatures
            )
        if not self._admits(stored, verdict):
            return None
        return self._decide(stored, verdict)

    def feed_many(self, items: Sequence[tuple[StoredEvent, Verdict]]) -> list[ReplayStep]:
        """Decide a chunk of events in order, as :meth:`feed` would one by one
        (the same breaks, at the same event, and nothing after one applied).

        Runs of events of one partition that pass the checks made before
        deciding go through one :func:`~ledger.batch.plan_batch` call, which
        stops at the first refusal: the per-event overhead is paid once per run.
        """
        steps: list[ReplayStep] = []
        i = 0
        while i < len(items) and not self.stopped:
            end = self._run_end(items, i)
            if end == i:
                step = self.feed(*items[i])
                if step is not None:
                    steps.append(step)
                i += 1
            else:
                steps.extend(self._decide_run(items[i:end]))
                i = end
        return steps

    def _admits(self, stored: StoredEvent, verdict: Verdict) -> bool:
        """The checks before deciding: ``until``, the stored id, the trust root."""
        if self.until is not None and self._after_until(stored, verdict):
            self.reached_until = True
            return False
        if isinstance(verdict, Verified):
            if stored.event_id is not None and stored.event_id != verdict.event.event_id:
                self._break(
                    stored,
                    verdict.event.event_id,
                    ReasonCode.CHAIN_BROKEN,
                    f"the stored event_id {stored.event_id} is not the envelope's",
                )
                return False
            if not self._adopt_trust_root(stored, verdict):
                return False
        return True

    def _run_end(self, items: Sequence[tuple[StoredEvent, Verdict]], start: int) -> int:
        """How far from ``start`` events can be decided as one run: one partition,
        each admitted as is and (stored events) each stored link the one the
        processor gives an accepted event. ``start`` itself: per event."""
        if not self.state.keys:
            return start  # the bootstrap: the trust root is decided event by event
        partition, topic = items[start][0].partition, items[start][0].topic
        position = self._chain(topic).get(partition)
        seq = position.ledger_seq if position else 0
        prev = position.chain_hash if position else None
        end = start
        for stored, verdict in items[start:]:
            if stored.partition != partition or stored.topic != topic:
                break
            if not isinstance(verdict, Verified):
                if self.strict:
                    break
            elif stored.event_id is not None and stored.event_id != verdict.event.event_id:
                break
            if self.until is not None and self._after_until(stored, verdict):
                break
            if self.strict and stored.ledger_seq is not None:
                assert isinstance(verdict, Verified)
                seq += 1
                if (
                    stored.ledger_seq != seq
                    or stored.prev_chain_hash != prev
                    or stored.chain_hash
                    != chain_hash(
                        prev, partition, seq, verdict.event.event_id, verdict.envelope_sha256
                    )
                ):
                    break
                prev = stored.chain_hash
            end += 1
        return end

    def _decide_run(self, run: Sequence[tuple[StoredEvent, Verdict]]) -> list[ReplayStep]:
        partition = run[0][0].partition
        heads = self._chain(run[0][0].topic)
        position = heads.get(partition)
        next_offset = position.next_offset if position else 0
        records: list[IngressRecord] = []
        verdicts: list[Verdict] = []
        recorded: dict[str, str] = {}
        for stored, verdict in run:
            offset = stored.offset if stored.offset is not None else next_offset
            next_offset = offset + 1
            records.append(IngressRecord(partition, offset, stored.raw))
            verdicts.append(verdict)
            if isinstance(verdict, Verified):
                event_id = verdict.event.event_id
                known = self.seen.get(event_id)
                if known is not None:
                    recorded[event_id] = known
        pending = pending_records({}, records, verdicts)
        plan = plan_batch(
            self.state,
            heads,
            pending,
            recorded,
            self.settings,
            stop_at_refusal=self.strict,
        )
        (batch,) = plan.batches
        heads[partition] = batch.new_position
        for projection in plan.projections:
            self.projections[projection_key(projection)] = projection
        report = plan.report
        # by identity: the plan hands back the very records it was given
        accepted = {id(a.record) for a in report.accepted}
        refused = {id(q.record): q for q in report.quarantined}
        decided = len(accepted) + len(refused) + report.duplicates
        steps: list[ReplayStep] = []
        for record, (stored, verdict) in zip(records[:decided], run, strict=False):
            if id(record) in accepted:
                assert isinstance(verdict, Verified)
                self.seen.add(verdict.event.event_id, verdict.envelope.payload_hash_b64u)
                self.counts[verdict.event.event_type] += 1
                steps.append(ReplayStep(stored, verdict))
                continue
            quarantined = refused.get(id(record))
            if quarantined is None:  # decided, neither accepted nor refused: a duplicate
                assert isinstance(verdict, Verified)
                if self.strict:
                    self._break_duplicate(stored, verdict)
                    break
                self.duplicates += 1
                steps.append(ReplayStep(stored, verdict, duplicate=True))
                continue
            if isinstance(verdict, Rejected):
                rejected = verdict
            else:
                rejected = Rejected(
                    ReasonCode(quarantined.code),
                    quarantined.detail,
                    verdict.event.event_id,
                    verdict.envelope.signer_did,
                )
            if self.strict:
                self._break(stored, rejected.event_id, rejected.code, rejected.detail)
                break
            self.skipped[rejected.code.value] += 1
            steps.append(ReplayStep(stored, None, rejected))
        return steps

    def _after_until(self, stored: StoredEvent, verdict: Verdict) -> bool:
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

    def _decide(self, stored: StoredEvent, verdict: Verdict) -> ReplayStep | None:
        partition = stored.partition
        heads = self._chain(stored.topic)
        position = heads.get(partition)
        offset = stored.offset
        if offset is None:
            offset = position.next_offset if position else 0
        record = IngressRecord(partition, offset, stored.raw)
        # the processor's own planning, one event at a time: same decide, same chain links
        pending = pending_records({}, [record], [verdict])
        recorded: dict[str, str] = {}
        if isinstance(verdict, Verified):
            known = self.seen.get(verdict.event.event_id)
            if known is not None:
                recorded[verdict.event.event_id] = known
        plan = plan_batch(self.state, heads, pending, recorded, self.settings)
        (batch,) = plan.batches
        if plan.report.duplicates:
            assert isinstance(verdict, Verified)
            if self.strict:
                self._break_duplicate(stored, verdict)
                return None
            self.duplicates += 1
            heads[batch.partition] = batch.new_position
            return ReplayStep(stored, verdict, duplicate=True)
        if batch.quarantined:
            refused = verdict if isinstance(verdict, Rejected) else _refusal(verdict, batch)
            if self.strict:
                self._break(stored, refused.event_id, refused.code, refused.detail)
                return None
            self.skipped[refused.code.value] += 1
            heads[batch.partition] = batch.new_position
            return ReplayStep(stored, None, refused)
        assert isinstance(verdict, Verified)
        (row,) = batch.events
        if self.strict and stored.ledger_seq is not None:
            problem = _link_problem(stored, row.ledger_seq, row.prev_chain_hash, row.chain_hash)
            if problem is not None:
                code, detail = problem
                self._break(stored, verdict.event.event_id, code, detail)
                return None
        self.seen.add(verdict.event.event_id, verdict.envelope.payload_hash_b64u)
        heads[batch.partition] = batch.new_position
        for projection in plan.projections:
            self.projections[projection_key(projection)] = projection
        self.counts[verdict.event.event_type] += 1
        return ReplayStep(stored, verdict)

    def _break_duplicate(self, stored: StoredEvent, verdict: Verified) -> None:
        self._break(
            stored,
            verdict.event.event_id,
            ReasonCode.DUPLICATE_EVENT_CONFLICT,
            "the same event is stored twice",
        )

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
            topic=stored.topic,
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


#: events per :meth:`Replay.feed_many` call in :func:`replay`
CHUNK = 1024


def replay(
    events: Iterable[StoredEvent | bytes],
    *,
    trust_root: str | None = None,
    until: datetime | None = None,
    strict: bool = True,
    settings: RuleSettings = DEFAULT_RULE_SETTINGS,
    signatures: bool = True,
) -> Replay:
    """Fold ``events`` (in decision order), verified here, and return the finished
    :class:`Replay`."""
    fold = Replay(
        trust_root=trust_root, settings=settings, until=until, strict=strict, signatures=signatures
    )
    chunk: list[tuple[StoredEvent, Verdict]] = []
    for event in events:
        stored = StoredEvent(event) if isinstance(event, bytes) else event
        verdict = verify_message(stored.raw, max_bytes=_NO_SIZE_LIMIT, signature=signatures)
        chunk.append((stored, verdict))
        if len(chunk) >= CHUNK:
            fold.feed_many(chunk)
            chunk.clear()
            if fold.stopped:
                return fold
    if chunk:
        fold.feed_many(chunk)
    return fold


def _snapshot_chains(snapshot: Mapping[str, Any]) -> Mapping[str, Mapping[str, Any]]:
    """A snapshot's chain heads by topic; a snapshot written before the lanes held
    one topic's heads under ``positions``."""
    if "chains" in snapshot:
        chains: Mapping[str, Mapping[str, Any]] = snapshot["chains"]
        return chains
    return {"": snapshot.get("positions", {})}
