"""A bounded cache of one control-plane table, for rules that read it by key.

The rules read ``LedgerState.tokens`` and ``LedgerState.jobs`` as dicts
(``get``, ``in``, ``[]``, assignment). A processor on a ledger with millions
of tokens keeps only part of those tables in memory (ADR 0020): a
:class:`ControlCache` is a dict of the rows it holds, plus the keys it knows
to be absent from the table, plus the keys a rule asked for and it did not
know at all (:attr:`ControlCache.misses`). The processor fetches the keys a
batch will read (:mod:`ledger.control_reads`) before planning it; a plan that
still read an unknown key is thrown away and planned again once that key is
fetched, so a decision never rests on a row the cache merely lacked.

A rule that looks for every row of a *scope* (a full-stop halt of ``job:J``
revokes every active token bound to J) reads :meth:`ControlCache.in_scope`:
the processor fetches the scope's rows with the keyed ones, and a scope it did
not fetch counts as iterating the table (the whole table then comes for that
batch).

Like :class:`ledger.plan_reads.RecordingTable`, the cache notes what the
current plan read (keys, scopes, the whole table), which the store checks at
commit (ADR 0030).

Nothing here talks to a database: the processor fills and trims the cache.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any, TypeVar

from ledger.plan_reads import ReadNotingTable

__all__ = ["ControlCache", "PartialTableError", "may_hold_rows", "rows_in_scope"]

K = TypeVar("K")
V = TypeVar("V")


class PartialTableError(TypeError):
    """A bounded cache was iterated: it holds only part of its table."""


class ControlCache(ReadNotingTable[K, V]):
    """The cached rows of one table (at most ``capacity`` between batches).

    Reads (``get``, ``in``, ``[]``) of a key neither cached nor known absent
    are recorded in :attr:`misses` and answered as "absent"; the caller must
    not use a result computed while a miss was recorded. Iterating raises
    :class:`PartialTableError`: the table is not all here. Eviction happens
    only in :meth:`trim`, so the rows fetched for a batch stay while it is
    planned, whatever the capacity.
    """

    def __init__(self, capacity: int) -> None:
        super().__init__()
        if capacity < 1:
            raise ValueError("a control cache holds at least one row")
        self.capacity = capacity
        #: keys read but neither cached nor known absent (since the last reset)
        self.misses: set[K] = set()
        self._absent: set[K] = set()
        #: keys read or written since the last trim (least recently used go first)
        self._used: set[K] = set()
        #: whether a rule read or wrote this table since the flag was cleared
        self.touched = False
        #: a rule tried to iterate the table (a full-stop halt looks for every token in
        #: its scope); the processor then loads the whole table for that batch
        self.iterated = False
        #: the whole table is here (:meth:`fill_all`) until the next :meth:`trim`
        self.complete = False
        #: scope -> the keys of every row a rule may select from it, all here
        #: (:meth:`fill_scope`), until the next :meth:`trim` or :meth:`forget`
        self.scopes: dict[str, set[K]] = {}
        #: keys written by a rule since the last trim (a row may join a scope in-batch)
        self._written: set[K] = set()
        #: what the current plan read (:mod:`ledger.plan_reads`; cleared by
        #: :meth:`clear_reads`): keys asked for, scopes looked through, the whole table
        self.read_keys: set[K] = set()
        self.read_scopes: set[str] = set()
        self.read_whole = False

    def clear_reads(self) -> None:
        """Start noting the reads of a new plan."""
        self.read_keys = set()
        self.read_scopes = set()
        self.read_whole = False

    # --- what the rules use -----------------------------------------------------------

    def _found(self, key: K) -> bool:
        """Whether ``key`` is here; notes the read: a use, or a miss to fetch."""
        self.touched = True
        self.read_keys.add(key)
        if dict.__contains__(self, key):
            self._used.add(key)
            return True
        if key not in self._absent and not self.complete:
            self.misses.add(key)
        return False

    def __setitem__(self, key: K, value: V) -> None:
        self.touched = True
        self._absent.discard(key)
        self._used.add(key)
        self._written.add(key)
        dict.__setitem__(self, key, value)

    def _read_whole(self) -> None:
        self.touched = True
        self.read_whole = True
        if not self.complete:
            self.iterated = True
            raise PartialTableError(
                "a bounded control cache holds only part of its table; read rows by key"
            )

    def in_scope(self, scope: str) -> list[V]:
        """The rows read for ``scope`` and those written since (the caller picks the
        scope's own from them); every row of a whole table; otherwise as iterating
        the table. A row the rule knows by key it reads by key."""
        keys = self.scopes.get(scope)
        if keys is None:
            self._read_whole()
            return list(dict.values(self))  # complete: the whole table is here
        self.touched = True
        self.read_scopes.add(scope)
        in_cache = dict.__contains__
        return [dict.__getitem__(self, k) for k in keys | self._written if in_cache(self, k)]

    # --- what the processor uses ------------------------------------------------------

    def peek(self, key: K) -> V | None:
        """The cached row, without recording a miss or a use."""
        return dict.get(self, key)

    def unknown(self, keys: Iterable[K]) -> set[K]:
        """Those of ``keys`` neither cached nor known absent."""
        return {k for k in keys if not dict.__contains__(self, k) and k not in self._absent}

    def fill(self, wanted: Collection[K], rows: Mapping[K, V]) -> None:
        """The rows read for ``wanted``: a wanted key without a row is absent."""
        for key in wanted:
            row = rows.get(key)
            if row is None:
                dict.pop(self, key, None)
                self._absent.add(key)
            else:
                self._absent.discard(key)
                dict.__setitem__(self, key, row)
            self._used.add(key)

    def fill_scope(self, scope: str, rows: Mapping[K, V]) -> None:
        """Every row of ``scope`` a rule may select, read in the snapshot of this
        batch's version (until :meth:`trim`)."""
        for key, row in rows.items():
            self._absent.discard(key)
            dict.__setitem__(self, key, row)
            self._used.add(key)
        self.scopes[scope] = set(rows)

    def fill_all(self, rows: Mapping[K, V]) -> None:
        """The whole table, for one batch whose rules iterate it (until :meth:`trim`)."""
        dict.clear(self)
        dict.update(self, rows)
        self._absent.clear()
        self.misses.clear()
        self.complete = True

    def forget(self, keys: Iterable[K]) -> None:
        """Drop what is known of ``keys`` (rows another writer changed)."""
        for key in keys:
            dict.pop(self, key, None)
            self._absent.discard(key)
            # a changed row may have joined a scope read before: those are read again
            self.scopes.clear()

    def reset(self) -> None:
        """Forget everything (the rows may hold changes that were rolled back)."""
        dict.clear(self)
        self._absent.clear()
        self._used.clear()
        self.misses.clear()
        self.scopes.clear()
        self._written.clear()

    def trim(self) -> None:
        """After a batch: evict the least recently used rows down to ``capacity``.

        Recency is kept per batch (the rows a batch touched count as used
        together), which costs one set insertion per read on the hot path.
        Known-absent keys are dropped: they are re-read when needed.
        """
        for key in self._used:
            if dict.__contains__(self, key):
                dict.__setitem__(self, key, dict.pop(self, key))  # to the young end
        self._used.clear()
        self._absent.clear()
        self.scopes.clear()
        self._written.clear()
        self.complete = False
        self.iterated = False
        excess = dict.__len__(self) - self.capacity
        if excess > 0:
            for key in [k for _, k in zip(range(excess), dict.__iter__(self), strict=False)]:
                dict.pop(self, key)

    def cached(self) -> int:
        """How many rows are held."""
        return dict.__len__(self)


def rows_in_scope(table: Mapping[Any, V], scope: str) -> Iterable[V]:
    """The rows a rule looks through for ``scope``: a whole table's every row,
    a bounded cache's :meth:`ControlCache.in_scope`."""
    if isinstance(table, ControlCache):
        return table.in_scope(scope)
    return table.values()


def may_hold_rows(table: Mapping[Any, Any]) -> bool:
    """Whether the table may hold any row: a whole table when it is not empty, a
    bounded cache always (the rows it lacks are in the store)."""
    return isinstance(table, ControlCache) or bool(table)
