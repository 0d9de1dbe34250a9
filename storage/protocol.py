"""What the verifying processor needs from the ledger's storage: one seam.

:class:`storage.postgres.PostgresLedgerStore` is the real one;
:class:`storage.memory.MemoryLedgerStore` keeps the same semantics in memory
(for tests and tools). tests/contract runs one suite against both.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from ledger.batch import Outcome, PartitionBatch, PartitionPosition
from ledger.control_reads import ScopeRead
from ledger.plan_reads import PlanReads
from ledger.state import LedgerState, ProjectionRow

__all__ = [
    "INSERT_ONLY_TABLES",
    "NO_COMMITS",
    "BatchCommit",
    "CommitTimings",
    "ControlRead",
    "ControlStart",
    "LedgerStore",
    "OffsetMarks",
]

#: an offset per Kafka partition (a forwarded mark, or where a copy began)
OffsetMarks = Mapping[int, int]

#: projections whose rows are never rewritten (migration 0012): a row with a key
#: already stored is left as it is, so the writer needs no UPDATE on them
INSERT_ONLY_TABLES: frozenset[str] = frozenset({"bundles", "pulse_records"})


@dataclass(frozen=True)
class CommitTimings:
    """A processor's committed batches so far: their count, summed seconds, and the
    longest since its previous heartbeat (``None``: none since)."""

    batches: int = 0
    seconds_sum: float = 0.0
    seconds_max: float | None = None


#: what a processor that has committed nothing reports
NO_COMMITS = CommitTimings()


@dataclass(frozen=True)
class BatchCommit:
    """One poll's effects for ``group`` on ``topic``, written atomically.

    With ``copies_tracked`` false, the outcomes count as copied to the verified
    and quarantine topics already (``forwarded_offset``, ADR 0008).

    ``control_base`` is the control version of the state the batch was planned
    on, and ``control_reads`` what the plan read of it. When a base is given, a
    control-plane row the batch reads or writes that another commit changed
    after that version refuses the batch (ADR 0029): a row it writes would be
    computed from a state that no longer holds and undo the other commit (a
    supersede planned before the revocation of its new WPC must not store that
    WPC as active again); a decision on a row it read would not be the one a
    replay of the ledger makes (a token pinned to a WPC revoked in between).
    The store takes the control order lock before the batch's events get their
    ledger positions, so that position order is the order the state changed in.
    """

    group: str
    topic: str
    batches: Sequence[PartitionBatch]
    projections: Sequence[ProjectionRow]
    copies_tracked: bool = True
    control_base: int | None = None
    control_reads: PlanReads = field(default_factory=PlanReads)


@dataclass(frozen=True)
class HeldControlOrder:
    """The control order lock, held (:meth:`LedgerStore.hold_control_order`): no
    batch commits while it is held, so a plan made on the state of ``version``
    cannot be overtaken; ``commit`` commits one batch inside the hold (its effects
    are durable once the hold ends without an error)."""

    version: int
    commit: Callable[[BatchCommit], Awaitable[int | None]]


@dataclass(frozen=True)
class ControlStart:
    """What a processor starts from (ADR 0020), read in one snapshot."""

    version: int
    #: the trust root and the tables asked for whole; the others are left empty
    state: LedgerState
    #: the digest stored for each control-plane table (``None``: not sealed yet)
    stored: dict[str, int | None]
    #: the digest of each table not loaded whole, computed from its rows as
    #: they stream by (none is kept in memory)
    streamed: dict[str, int]


@dataclass(frozen=True)
class ControlQuery:
    """What a processor asks :meth:`LedgerStore.read_control` for (ADR 0020)."""

    #: the trust root the processor was configured with (``None``: the stored one)
    trust_root: str | None
    #: the control version the processor's state holds
    since: int
    #: the tables it holds whole
    whole: Collection[str] = ()
    #: per partial table, the keys whose stored rows it wants
    wanted: Mapping[str, Collection[str]] = field(default_factory=dict)
    #: the scope reads whose rows it wants
    scopes: Sequence[ScopeRead] = ()
    #: event ids whose recorded payload hash it wants (the batch's duplicate check,
    #: read with the version: one round trip fewer per batch)
    event_ids: Sequence[str] = ()


@dataclass(frozen=True)
class ControlRead:
    """The control version, what changed since a version, and keyed rows, in one snapshot."""

    version: int
    #: when the version moved: the trust root and the rows of the whole
    #: tables written after ``since`` (the other tables are left empty)
    changed: LedgerState | None = None
    #: when the version moved: the keys of the partial tables written after ``since``
    changed_keys: dict[str, list[str]] = field(default_factory=dict)
    #: per partial table, the stored row of each wanted key that exists
    rows: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    #: per scope read (table, scope), every stored row it selects, by key
    scoped: dict[tuple[str, str], dict[str, dict[str, Any]]] = field(default_factory=dict)
    #: the payload hash of each of ``event_ids`` already in the ledger (recorded
    #: events are never removed, so this need not share the snapshot)
    recorded: dict[str, str] = field(default_factory=dict)


class LedgerStore(Protocol):
    """The ledger, its consumer positions and its control plane, per (group, topic)."""

    async def other_groups(self, group: str, topic: str) -> list[str]:
        """Consumer groups other than ``group`` with positions on ``topic``."""
        ...

    async def load_positions(self, group: str, topic: str) -> dict[int, PartitionPosition]:
        """The stored position of every partition ``group`` has committed."""
        ...

    async def control_version(self) -> int:
        """The committed control-plane version (bumped by every commit that changes it)."""
        ...

    async def load_state_snapshot(
        self, trust_root: str | None, *, since: int | None = None, into: LedgerState | None = None
    ) -> tuple[int, LedgerState]:
        """Version and control state read together (one snapshot).

        With ``since`` (a version whose state ``into`` holds), only what was
        written after it is applied onto ``into``. The trust root is the
        configured one, else the recorded one.
        """
        ...

    async def load_state_with_digests(
        self, trust_root: str | None
    ) -> tuple[int, LedgerState, dict[str, int | None]]:
        """The whole control state, its version, and the digest stored for each
        control-plane table (``None``: not sealed yet), read in one snapshot.

        Every commit that writes control-plane rows moves their table's digest
        in the same transaction (:mod:`ledger.control_digest`, ADR 0014).
        """
        ...

    async def open_control_state(
        self, trust_root: str | None, *, whole: Collection[str], stream: bool = True
    ) -> ControlStart:
        """The version, the trust root, the control tables named in ``whole``
        (others are left empty), every stored digest, and (with ``stream``) the
        digests of the tables not loaded whole, computed by streaming their
        rows (constant memory), all in one snapshot."""
        ...

    async def read_control(self, query: ControlQuery) -> ControlRead:
        """In one snapshot: the control version; when it is not ``query.since``,
        the rows of the ``whole`` tables and the keys of the other tables written
        after it; the stored rows of the ``wanted`` keys (a key without a row is
        absent from :attr:`ControlRead.rows`); and every row each of ``scopes``
        selects (:attr:`ControlRead.scoped`)."""
        ...

    async def seal_control_digests(self, version: int, digests: Mapping[str, int]) -> bool:
        """Record ``digests`` for the tables not sealed yet, unless the control
        version moved past ``version`` (then ``False``, nothing written)."""
        ...

    async def commit_batch(self, commit: BatchCommit) -> int | None:
        """Write a batch's rows, projections and new positions atomically.

        Returns the new control version when the batch changed the control
        plane, else ``None``. Raises :class:`~ledger.errors.StaleBatchError`
        (writing nothing) when a stored position is not the batch's
        ``expected_next_offset``, an event id is already recorded, or a
        control row it reads or writes changed after ``commit.control_base``.
        """
        ...

    def hold_control_order(self) -> AbstractAsyncContextManager[HeldControlOrder]:
        """Hold the control order lock for one plan and its commit (ADR 0030): every
        other commit waits until the hold ends. For a batch whose plan reads a
        whole table (a full stop of ``*``), which any concurrent change to that
        table would otherwise refuse. Read the state through the store as usual
        (other connections); commit through the hold."""
        ...

    async def record_forwarded(
        self, group: str, topic: str, marks: OffsetMarks, *, since: OffsetMarks | None = None
    ) -> None:
        """Every outcome below ``marks[partition]`` is on its topic (never moves back).

        With ``since``, only the outcomes from ``since[partition]`` on were sent:
        the mark moves only where the recorded one has already reached it, so
        older outcomes still unsent are never marked as sent."""
        ...

    async def unforwarded_outcomes(
        self, group: str, topic: str, partition: int
    ) -> tuple[int, list[Outcome]]:
        """The committed outcomes of ``partition`` not yet acknowledged, in offset
        order, and the mark to record once they are."""
        ...

    async def heartbeat(
        self, worker_id: str, group: str, version: int, timings: CommitTimings = NO_COMMITS
    ) -> None:
        """Record that processor ``worker_id`` of ``group`` is alive and that its
        state holds control ``version`` (what the authorize service's freshness
        bound is measured against, ADR 0015), with its commit ``timings``."""
        ...

    async def trust_root(self) -> str | None:
        """The DID of the first admin key, recorded by ``claw-ledger init``."""
        ...

    async def set_trust_root(self, did: str) -> None:
        """Record the trust root once (bumping the control version); a different
        one already recorded is an :class:`~ledger.errors.EventError`."""
        ...

    async def close(self) -> None: ...
