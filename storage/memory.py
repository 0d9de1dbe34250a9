"""The ledger in memory: :class:`MemoryLedgerStore`, with Postgres's semantics.

For tests and tools that need a processor without a database. It keeps what
the Postgres store guarantees: a commit is all or nothing, a position that
moved or an event id already recorded refuses the batch
(:class:`~ledger.errors.StaleBatchError`), control-plane commits bump the
control version and stamp their rows with it, and catch-up reads only newer
rows. tests/contract runs one suite against both stores.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger.batch import EventRow, Outcome, PartitionPosition, QuarantineRow
from ledger.control_digest import CONTROL_DIGEST_TABLES, DIGEST_MODULUS, digest_delta, table_digest
from ledger.errors import EventError, ReasonCode, StaleBatchError
from ledger.plan_reads import PlanReads, written_keys
from ledger.state import KeyRecord, LedgerState, ProjectionRow
from storage.protocol import (
    INSERT_ONLY_TABLES,
    NO_COMMITS,
    BatchCommit,
    CommitTimings,
    ControlQuery,
    ControlRead,
    ControlStart,
    HeldControlOrder,
    OffsetMarks,
)

__all__ = ["MemoryLedgerStore"]

#: control-plane tables loaded into LedgerState besides ``keys`` (as in Postgres)
_CONTROL_TABLES: dict[str, str] = {
    "policies": "policy_hash_b64u",
    "tokens": "jti",
    "jobs": "job_id",
    "halts": "target",
    "shadows": "scope",
}
_VERSIONED_TABLES = frozenset({"keys", *_CONTROL_TABLES})


@dataclass
class _Position:
    position: PartitionPosition
    forwarded_offset: int


@dataclass
class _Rows:
    """One (topic, partition): its ledger rows and quarantine rows by offset."""

    events: dict[int, EventRow] = field(default_factory=dict)
    quarantined: dict[int, QuarantineRow] = field(default_factory=dict)


class MemoryLedgerStore:
    """:class:`~storage.protocol.LedgerStore` in process memory (no concurrency
    beyond one event loop: every method completes without yielding mid-write)."""

    def __init__(self) -> None:
        self._positions: dict[tuple[str, str, int], _Position] = {}
        self._rows: dict[tuple[str, int], _Rows] = {}
        #: event_id -> payload hash (the unique index of ``events``)
        self._event_ids: dict[str, str] = {}
        #: table -> key -> (values, control_version or None)
        self._projections: dict[str, dict[Any, tuple[dict[str, Any], int | None]]] = {}
        self._control_version = 0
        self._trust_root: str | None = None
        #: control-plane table -> digest of its rows (ADR 0014); empty tables: 0
        self._digests: dict[str, int | None] = dict.fromkeys(CONTROL_DIGEST_TABLES, 0)
        #: worker id -> (group, control version) of its last heartbeat
        self.heartbeats: dict[str, tuple[str, int]] = {}
        self.timings: dict[str, CommitTimings] = {}

    async def close(self) -> None:
        return None

    async def heartbeat(
        self, worker_id: str, group: str, version: int, timings: CommitTimings = NO_COMMITS
    ) -> None:
        self.heartbeats[worker_id] = (group, version)
        self.timings[worker_id] = timings

    async def other_groups(self, group: str, topic: str) -> list[str]:
        return sorted({g for g, t, _ in self._positions if t == topic and g != group})

    async def load_positions(self, group: str, topic: str) -> dict[int, PartitionPosition]:
        return {
            p: stored.position
            for (g, t, p), stored in self._positions.items()
            if g == group and t == topic
        }

    async def control_version(self) -> int:
        return self._control_version

    async def load_state_snapshot(
        self,
        trust_root: str | None,
        *,
        since: int | None = None,
        into: LedgerState | None = None,
        tables: Collection[str] | None = None,
    ) -> tuple[int, LedgerState]:
        state = into if into is not None else LedgerState()
        state.trust_root = trust_root or self._trust_root
        for table in ("keys", *_CONTROL_TABLES):
            if tables is not None and table not in tables:
                continue
            for key, (values, version) in self._projections.get(table, {}).items():
                if since is not None and (version is None or version <= since):
                    continue
                if table == "keys":
                    state.keys[key] = KeyRecord.from_row(values)
                else:
                    target: dict[Any, dict[str, Any]] = getattr(state, table)
                    target[key] = copy.deepcopy(values)
        return self._control_version, state

    async def load_state_with_digests(
        self, trust_root: str | None
    ) -> tuple[int, LedgerState, dict[str, int | None]]:
        version, state = await self.load_state_snapshot(trust_root)
        return version, state, dict(self._digests)

    async def open_control_state(
        self, trust_root: str | None, *, whole: Collection[str], stream: bool = True
    ) -> ControlStart:
        version, state = await self.load_state_snapshot(trust_root, tables=whole)
        streamed = {
            table: table_digest(table, (v for v, _ in self._projections.get(table, {}).values()))
            for table in CONTROL_DIGEST_TABLES
            if stream and table not in whole
        }
        return ControlStart(version, state, dict(self._digests), streamed)

    async def read_control(self, query: ControlQuery) -> ControlRead:
        since, whole = query.since, query.whole
        changed = None
        changed_keys: dict[str, list[str]] = {}
        if self._control_version != since:
            _, changed = await self.load_state_snapshot(query.trust_root, since=since, tables=whole)
            for table in ("keys", *_CONTROL_TABLES):
                if table not in whole:
                    changed_keys[table] = [
                        key
                        for key, (_, version) in self._projections.get(table, {}).items()
                        if version is not None and version > since
                    ]
        rows: dict[str, dict[str, dict[str, Any]]] = {}
        for table, keys in query.wanted.items():
            stored = self._projections.get(table, {})
            rows[table] = {k: copy.deepcopy(stored[k][0]) for k in keys if k in stored}
        scoped = {
            (read.table, read.scope): {
                key: copy.deepcopy(row)
                for key, (row, _) in self._projections.get(read.table, {}).items()
                if row.get(read.column) == read.value and row.get("status") == read.status
            }
            for read in query.scopes
        }
        recorded = {i: self._event_ids[i] for i in query.event_ids if i in self._event_ids}
        return ControlRead(self._control_version, changed, changed_keys, rows, scoped, recorded)

    async def seal_control_digests(self, version: int, digests: Mapping[str, int]) -> bool:
        if version != self._control_version:
            return False
        for table, digest in digests.items():
            if self._digests.get(table) is None:
                self._digests[table] = digest
        return True

    async def commit_batch(self, commit: BatchCommit) -> int | None:
        group, topic = commit.group, commit.topic
        batches, projections = commit.batches, commit.projections
        # every check before the first write: a refused batch writes nothing
        new_ids: set[str] = set()
        for batch in batches:
            stored = self._positions.get((group, topic, batch.partition))
            offset = stored.position.next_offset if stored else None
            if offset != batch.expected_next_offset:
                raise StaleBatchError(
                    f"partition {batch.partition}: stored position {offset},"
                    f" batch expected {batch.expected_next_offset}"
                )
            rows = self._rows.get((topic, batch.partition), _Rows())
            taken_seqs = {e.ledger_seq for e in rows.events.values()}
            for event in batch.events:
                if event.event_id in self._event_ids or event.event_id in new_ids:
                    raise StaleBatchError(f"event_id {event.event_id} is already recorded")
                if event.kafka_offset in rows.events or event.ledger_seq in taken_seqs:
                    raise StaleBatchError(
                        f"partition {batch.partition}: offset {event.kafka_offset}"
                        f" or ledger_seq {event.ledger_seq} is already recorded"
                    )
                new_ids.add(event.event_id)
            for row in batch.quarantined:
                if row.kafka_offset in rows.quarantined:
                    raise StaleBatchError(
                        f"partition {batch.partition}: offset {row.kafka_offset}"
                        " is already recorded"
                    )
        base = commit.control_base
        if base is not None and self._control_version != base:
            written = written_keys(projections, _VERSIONED_TABLES)
            self._refuse_changed_rows(commit.control_reads.with_keys(written), base)
        version = None
        if any(row.table in _VERSIONED_TABLES for row in projections):
            self._control_version += 1
            version = self._control_version
        for batch in batches:
            rows = self._rows.setdefault((topic, batch.partition), _Rows())
            for event in batch.events:
                rows.events[event.kafka_offset] = event
                self._event_ids[event.event_id] = event.payload_hash_b64u
            for row in batch.quarantined:
                rows.quarantined[row.kafka_offset] = row
            key = (group, topic, batch.partition)
            stored = self._positions.get(key)
            new = batch.new_position
            if stored is None:
                forwarded = batch.first_offset if commit.copies_tracked else new.next_offset
            else:
                forwarded = stored.forwarded_offset if commit.copies_tracked else new.next_offset
            self._positions[key] = _Position(new, forwarded)
        self._move_digests(projections)
        for projection in projections:
            table = self._projections.setdefault(projection.table, {})
            key_value = projection.values[projection.key_column]
            if projection.table in INSERT_ONLY_TABLES and key_value in table:
                continue
            before = table.get(key_value, ({}, None))[0]
            # an upsert: the given columns replace theirs, the others stay
            values = {**before, **copy.deepcopy(projection.values)}
            table[key_value] = (values, version if projection.table in _VERSIONED_TABLES else None)
        return version

    def _refuse_changed_rows(self, reads: PlanReads, since: int) -> None:
        """As the Postgres store's ``refuse_changed_rows``: a row read (by key, by
        scope, or any row of a table read whole) written after ``since`` refuses."""
        for table in _VERSIONED_TABLES:
            keys = reads.keys.get(table, frozenset())
            scopes = [(column, value) for t, column, value in reads.scopes if t == table]
            for key, (row, version) in self._projections.get(table, {}).items():
                if version is None or version <= since:
                    continue
                if (
                    table in reads.whole
                    or str(key) in keys
                    or any(str(row.get(column)) == value for column, value in scopes)
                ):
                    raise StaleBatchError(
                        f"{table} row {key!r} was changed at control version {version},"
                        f" after version {since} this batch was planned on"
                    )

    def _move_digests(self, projections: Sequence[ProjectionRow]) -> None:
        by_table: dict[str, list[ProjectionRow]] = {}
        for row in projections:
            if row.table in CONTROL_DIGEST_TABLES:
                by_table.setdefault(row.table, []).append(row)
        for table, changes in by_table.items():
            digest = self._digests.get(table)
            if digest is None:
                continue
            stored = self._projections.get(table, {})
            old = {
                key: stored[key][0]
                for key in {c.values[c.key_column] for c in changes}
                if key in stored
            }
            self._digests[table] = (digest + digest_delta(table, old, changes)) % DIGEST_MODULUS

    @contextlib.asynccontextmanager
    async def hold_control_order(self) -> AsyncIterator[HeldControlOrder]:
        # commits are not concurrent here (one event loop, no await inside one), so
        # there is no lock to take; a commit that landed in between is still refused
        # by the check, as in commit_batch
        yield HeldControlOrder(self._control_version, self.commit_batch)

    async def record_forwarded(
        self, group: str, topic: str, marks: OffsetMarks, *, since: OffsetMarks | None = None
    ) -> None:
        for partition, offset in marks.items():
            stored = self._positions.get((group, topic, partition))
            if stored is None or stored.forwarded_offset >= offset:
                continue
            if since is None or stored.forwarded_offset >= since[partition]:
                stored.forwarded_offset = offset

    async def unforwarded_outcomes(
        self, group: str, topic: str, partition: int
    ) -> tuple[int, list[Outcome]]:
        stored = self._positions.get((group, topic, partition))
        if stored is None:
            return 0, []
        start, end = stored.forwarded_offset, stored.position.next_offset
        if start >= end:
            return end, []
        rows = self._rows.get((topic, partition), _Rows())
        outcomes = [
            Outcome(partition, o, e.stream.encode(), e.envelope_raw)
            for o, e in rows.events.items()
            if start <= o < end
        ] + [
            Outcome(partition, o, None, q.raw, q.reason_code)
            for o, q in rows.quarantined.items()
            if start <= o < end
        ]
        outcomes.sort(key=lambda o: o.offset)
        return end, outcomes

    async def trust_root(self) -> str | None:
        return self._trust_root

    async def set_trust_root(self, did: str) -> None:
        if self._trust_root is not None and self._trust_root != did:
            raise EventError(
                ReasonCode.TRUST_ROOT_EXISTS,
                f"this ledger already has the trust root {self._trust_root}",
                hint="use that admin key; a ledger has exactly one trust root",
            )
        self._trust_root = did
        self._control_version += 1
