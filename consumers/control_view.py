"""The processor's view of the control plane: what its rules read, and from when.

A :class:`ControlView` holds the control tables a batch's rules read (keys,
policies, tokens, jobs, halts, shadow policies) and the control version they
reflect. The small tables are held whole; tokens and jobs, which grow with the
ledger, are bounded caches filled by key for each batch (ADR 0020). Every read
goes through the store's :meth:`~storage.protocol.LedgerStore.read_control`,
which catches up on what other lanes and processors wrote since that version
in the same snapshot (ADR 0007), and the view records what each plan read, so
that a commit whose reads went stale is refused and planned again (ADR 0029,
ADR 0030). It refuses a control plane whose tables no longer sum to the
digests kept while writing them (ADR 0014).

:class:`consumers.processor.VerifyingProcessor` owns one view and plans its
batches on :attr:`ControlView.state`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from consumers.digest_check import StreamedDigestCheck
from ledger.batch import PendingBatch
from ledger.control_cache import ControlCache
from ledger.control_digest import CONTROL_DIGEST_TABLES, digest_hex, table_digest
from ledger.control_reads import BOUNDED_TABLES, ScopeRead, batch_reads, batch_scopes
from ledger.errors import ControlPlaneTamperedError
from ledger.plan_reads import PlanReads, RecordingTable, ScopeKey
from ledger.state import LedgerState
from ledger.verify import Verified
from storage.protocol import ControlQuery, ControlRead, LedgerStore

__all__ = ["ControlView"]

log = logging.getLogger("claw_ledger.processor")

#: fetch rounds per batch before planning anyway (a plan that then reads an
#: unknown key is planned again, so this bounds work, not correctness)
_MAX_FETCH_ROUNDS = 4
#: the control tables of :class:`LedgerState` that rules read
_STATE_TABLES = ("keys", "policies", "tokens", "jobs", "halts", "shadows")


class ControlView:
    """The control state one processor lane plans on (see the module)."""

    def __init__(
        self,
        store: LedgerStore,
        trust_root: str | None,
        control_cache_size: int | None,
    ) -> None:
        self._store = store
        self._configured_trust_root = trust_root
        self.trust_root = trust_root
        #: rows of each bounded table kept between batches; ``None``: every
        #: control table is held whole, as before ADR 0020
        self.control_cache_size = control_cache_size
        self.bounded: tuple[str, ...] = BOUNDED_TABLES if control_cache_size is not None else ()
        # the shadow policies (ADR 0023) are control state too, but carry no digest
        self.whole = tuple(t for t in (*CONTROL_DIGEST_TABLES, "shadows") if t not in self.bounded)
        #: the bounded tables' digest check, streamed beside the batches (ADR 0020)
        self.digest_check = StreamedDigestCheck(store, trust_root, self.whole, self.bounded)
        self.state = self.with_caches(LedgerState(trust_root=trust_root))
        #: the scope reads the bounded caches hold rows for, by (table, scope)
        self._scope_reads: dict[tuple[str, str], ScopeRead] = {}
        #: planning inside :meth:`LedgerStore.hold_control_order` (ADR 0030)
        self.holding = False
        #: the control version this state reflects (-1: none, load it whole)
        self.version = -1
        #: how often the control state was read from scratch (start, failed commits)
        self.full_state_loads = 0
        #: bounded tables read whole for one batch (a full-stop halt of ``*``)
        self.whole_table_reads = 0

    def with_caches(self, state: LedgerState) -> LedgerState:
        """``state`` with an empty bounded cache for each table not held whole, and
        the tables held whole as :class:`RecordingTable` (ADR 0029: the store checks
        the rows a plan read)."""
        assert self.control_cache_size is not None or not self.bounded
        for table in _STATE_TABLES:
            if table in self.bounded:
                cache = ControlCache[str, dict[str, Any]](self.control_cache_size or 1)
                setattr(state, table, cache)
            else:
                setattr(state, table, RecordingTable(getattr(state, table)))
        return state

    def clear_reads(self) -> None:
        for table in _STATE_TABLES:
            getattr(self.state, table).clear_reads()

    def plan_reads(self) -> PlanReads:
        """What the last plan read of each control table (since :meth:`clear_reads`)."""
        keys: dict[str, frozenset[str]] = {}
        scopes: set[ScopeKey] = set()
        whole: set[str] = set()
        for table in _STATE_TABLES:
            held: RecordingTable[str, Any] | ControlCache[str, Any] = getattr(self.state, table)
            if held.read_whole:
                whole.add(table)
                continue
            if held.read_keys:
                keys[table] = frozenset(held.read_keys)
            for scope in held.read_scopes if isinstance(held, ControlCache) else ():
                read = self._scope_reads.get((table, scope))
                if read is None:  # not known how it was selected: count the whole table
                    whole.add(table)
                else:
                    scopes.add((table, read.column, read.value))
        return PlanReads(keys, frozenset(scopes), frozenset(whole))

    def cache(self, table: str) -> ControlCache[str, dict[str, Any]]:
        cache: ControlCache[str, dict[str, Any]] = getattr(self.state, table)
        return cache

    async def load(self, *, check_streamed: bool) -> None:
        """The tables held whole, and the version they belong to; the bounded
        tables start empty.

        Refuses (:class:`ControlPlaneTamperedError`) a control plane whose
        tables do not sum to the digests kept while writing them: rows this
        processor (or another of its group) did not write are never obeyed.
        The tables held whole are checked from the rows loaded; with
        ``check_streamed`` (at start), the bounded ones too, by streaming their
        rows through the digest (ADR 0020).
        """
        start = await self._store.open_control_state(
            self._configured_trust_root, whole=self.whole, stream=check_streamed
        )
        state = start.state
        computed = {
            table: table_digest(table, _rows(state, table))
            for table in self.whole
            if table in CONTROL_DIGEST_TABLES
        } | start.streamed
        tampered = {
            table: (digest_hex(digest), digest_hex(computed[table]))
            for table in CONTROL_DIGEST_TABLES
            if table in computed
            and (digest := start.stored.get(table)) is not None
            and digest != computed[table]
        }
        if tampered and not check_streamed and self.bounded:
            # refusing anyway: name every changed table, the streamed ones too
            tampered |= await self.digest_check.mismatches()
        if tampered:
            raise ControlPlaneTamperedError(tampered)
        unsealed = {t: computed[t] for t in computed if start.stored.get(t) is None}
        # sealing takes the control order lock, which a held plan already has
        # (it would wait for itself): the next load outside a hold seals them
        sealing = unsealed and not self.holding
        if sealing and await self._store.seal_control_digests(start.version, unsealed):
            log.warning("sealed the control-plane digest of %s", ", ".join(sorted(unsealed)))
        self.version = start.version
        self.trust_root = state.trust_root
        self.state = self.with_caches(state)
        self.full_state_loads += 1

    async def refresh(
        self,
        pending: PendingBatch,
        extra: dict[str, set[str]] | None = None,
        *,
        event_ids: Sequence[str] = (),
    ) -> dict[str, str]:
        """Catch up on what other processors changed, and fetch the rows of the
        bounded tables that the batch's rules may read (plus ``extra``); returns
        the recorded payload hash of each of ``event_ids`` (the duplicate check,
        asked in the first read).

        Each read checks the control version in the same snapshot: rows
        written after the version this state holds are replaced (whole
        tables) or forgotten (bounded ones), so no cached row or cached
        "absent" is older than that version.
        """
        events = [
            (verdict.event.event_type, verdict.body)
            for items in pending.by_partition.values()
            for _, verdict in items
            if isinstance(verdict, Verified)
        ]
        # a full-stop halt of job:J or sub:S looks through its scope's tokens: those
        # rows come with the keyed ones, not the whole table (a halt of * does)
        scopes = batch_scopes(events) if self.bounded else []
        recorded: dict[str, str] = {}
        for round_ in range(_MAX_FETCH_ROUNDS):
            wanted = batch_reads(events, self._lookup) if self.bounded else {}
            for table, keys in (extra or {}).items():
                wanted.setdefault(table, set()).update(keys)
            missing = {t: self.cache(t).unknown(keys) for t, keys in wanted.items()}
            missing = {t: keys for t, keys in missing.items() if keys}
            # a changed row read in a later round makes the cache forget its scopes
            unread = [s for s in scopes if s.scope not in self.cache(s.table).scopes]
            if round_ and not missing and not unread:
                return recorded
            query = ControlQuery(
                # a stored trust root never changes once set (set_trust_root refuses
                # another): once known it need not be read again with every change
                self._configured_trust_root or self.trust_root,
                since=self.version,
                whole=self.whole,
                wanted=missing,
                scopes=unread,
                event_ids=() if round_ else event_ids,
            )
            read = await self._store.read_control(query)
            if not round_:
                recorded = read.recorded
            self._apply_read(read, missing, unread)
        return recorded

    def _lookup(self, table: str, key: str) -> dict[str, Any] | None:
        return self.cache(table).peek(key)

    def _apply_read(
        self, read: ControlRead, wanted: dict[str, set[str]], scopes: Sequence[ScopeRead] = ()
    ) -> None:
        if read.changed is not None:
            self.state.trust_root = self.trust_root = read.changed.trust_root
            for table in self.whole:
                getattr(self.state, table).update(getattr(read.changed, table))
            for table, changed_keys in read.changed_keys.items():
                self.cache(table).forget(changed_keys)
        self.version = read.version
        for table, keys in wanted.items():
            self.cache(table).fill(keys, read.rows.get(table, {}))
        for scope in scopes:
            self.cache(scope.table).fill_scope(scope.scope, read.scoped[scope.table, scope.scope])
            self._scope_reads[scope.table, scope.scope] = scope

    def take_misses(self) -> dict[str, set[str]]:
        misses: dict[str, set[str]] = {}
        for table in self.bounded:
            cache = self.cache(table)
            if cache.misses:
                misses[table] = set(cache.misses)
                cache.misses.clear()
        return misses

    async def whole_tables(self, tables: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Every row of ``tables`` as the store holds them now."""
        self.whole_table_reads += len(tables)
        start = await self._store.open_control_state(
            self._configured_trust_root, whole=tuple(tables), stream=False
        )
        return {table: dict(getattr(start.state, table)) for table in tables}

    def trim(self) -> None:
        for table in self.bounded:
            self.cache(table).trim()
        self._scope_reads.clear()  # the caches forgot their scopes


def _rows(state: LedgerState, table: str) -> list[dict[str, Any]]:
    """The rows of a table the state holds whole, as stored."""
    if table == "keys":
        return [record.row().values for record in state.keys.values()]
    held: dict[str, dict[str, Any]] = getattr(state, table)
    return list(held.values())
