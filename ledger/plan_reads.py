"""What a batch's plan read of the control state, so that its commit can check it.

A processor plans a batch on the control state of version ``V`` and commits
it later; another lane or processor may commit a control change in between.
The store refuses the batch when a row the plan *read* changed after ``V``
(ADR 0029): its decisions rest on a state that no longer holds, and a replay
of the ledger, which decides each event on the state of every event before
it, would decide otherwise.

The processor holds each control table the plan may read as a
:class:`RecordingTable` (tables held whole) or a
:class:`~ledger.control_cache.ControlCache` (bounded ones, which record the
same way); both note each key a rule asks for, present or absent, and whether
a rule looked at the table as a whole (iteration, ``len``, truth value).
:class:`PlanReads` is what they noted for one plan. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from ledger.state import ProjectionRow

__all__ = ["PlanReads", "ReadNotingTable", "RecordingTable", "ScopeKey", "written_keys"]

K = TypeVar("K")
V = TypeVar("V")
D = TypeVar("D")

#: ``(table, column, value)``: every row of ``table`` whose ``column`` is ``value``
ScopeKey = tuple[str, str, str]


@dataclass(frozen=True)
class PlanReads:
    """The control rows one plan read: by key (absent keys included: a row
    that appears later changes the answer), by scope, and whole tables."""

    keys: Mapping[str, frozenset[str]] = field(default_factory=dict)
    scopes: frozenset[ScopeKey] = frozenset()
    whole: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.whole or self.scopes or any(self.keys.values()))

    def with_keys(self, keys: Mapping[str, set[str]]) -> PlanReads:
        """These reads and ``keys`` (the rows the batch writes: those count as read)."""
        merged = {table: set(values) for table, values in self.keys.items()}
        for table, values in keys.items():
            merged.setdefault(table, set()).update(values)
        return PlanReads({t: frozenset(v) for t, v in merged.items() if v}, self.scopes, self.whole)


class ReadNotingTable(dict[K, V]):
    """A control table that notes what the current plan reads of it.

    ``get``, ``in`` and ``[]`` ask :meth:`_found` (note the read of the key;
    is it here?); iterating and the ``keys``/``values``/``items`` views call
    :meth:`_read_whole` first. Writes are not reads (the store checks the rows a
    batch writes anyway), and ``dict``'s own methods (``update``, copying) note
    nothing, so filling the table is not a read. The subclasses decide what a
    read notes: :class:`RecordingTable` here, and
    :class:`~ledger.control_cache.ControlCache`.
    """

    read_keys: set[K]
    read_whole: bool

    def _found(self, key: K) -> bool:
        raise NotImplementedError

    def _read_whole(self) -> None:
        raise NotImplementedError

    @overload
    def get(self, key: K, default: None = None, /) -> V | None: ...
    @overload
    def get(self, key: K, default: V, /) -> V: ...
    @overload
    def get(self, key: K, default: D, /) -> V | D: ...

    def get(self, key: K, default: Any = None, /) -> Any:
        return dict.__getitem__(self, key) if self._found(key) else default

    def __contains__(self, key: object) -> bool:
        return self._found(key)  # type: ignore[arg-type]

    def __getitem__(self, key: K) -> V:
        if self._found(key):
            return dict.__getitem__(self, key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[K]:
        self._read_whole()
        return dict.__iter__(self)

    def keys(self) -> Any:
        self._read_whole()
        return dict.keys(self)

    def values(self) -> Any:
        self._read_whole()
        return dict.values(self)

    def items(self) -> Any:
        self._read_whole()
        return dict.items(self)


class RecordingTable(ReadNotingTable[K, V]):
    """A control table held whole that notes what is read of it.

    ``get``, ``in`` and ``[]`` add the key to :attr:`read_keys`; iterating, ``len``
    and truth value set :attr:`read_whole`. The processor clears both before
    each plan (:meth:`clear_reads`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read_keys: set[K] = set()
        self.read_whole = False

    def clear_reads(self) -> None:
        self.read_keys = set()
        self.read_whole = False

    def _found(self, key: K) -> bool:
        self.read_keys.add(key)
        return dict.__contains__(self, key)

    def _read_whole(self) -> None:
        self.read_whole = True

    def __len__(self) -> int:
        self.read_whole = True
        return dict.__len__(self)


def written_keys(
    projections: Iterable[ProjectionRow], tables: Collection[str]
) -> dict[str, set[str]]:
    """table -> the keys of the rows of ``tables`` in ``projections``."""
    keys: dict[str, set[str]] = {}
    for row in projections:
        if row.table in tables:
            keys.setdefault(row.table, set()).add(str(row.values[row.key_column]))
    return keys
