"""What a plan read of the control state (``ledger.plan_reads``, ADR 0029)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ledger.control_cache import ControlCache, PartialTableError
from ledger.plan_reads import PlanReads, RecordingTable, written_keys
from ledger.state import ProjectionRow


def _table() -> RecordingTable[str, int]:
    return RecordingTable({"a": 1, "b": 2})


@pytest.mark.parametrize(
    ("read", "keys"),
    [
        (lambda t: t.get("a"), {"a"}),
        (lambda t: t.get("zz", 0), {"zz"}),
        (lambda t: "b" in t, {"b"}),
        (lambda t: "zz" in t, {"zz"}),
        (lambda t: t["a"], {"a"}),
    ],
    ids=["get", "get-absent", "in", "in-absent", "getitem"],
)
def test_a_read_by_key_notes_the_key_present_or_not(
    read: Callable[[RecordingTable[str, int]], Any], keys: set[str]
) -> None:
    table = _table()
    read(table)
    assert table.read_keys == keys
    assert not table.read_whole


@pytest.mark.parametrize(
    "read",
    [list, len, bool, lambda t: t.keys(), lambda t: t.values(), lambda t: t.items(), dict],
    ids=["iter", "len", "truth", "keys", "values", "items", "copy"],
)
def test_looking_at_the_table_as_a_whole_notes_the_whole_table(
    read: Callable[[RecordingTable[str, int]], Any],
) -> None:
    table = _table()
    read(table)
    assert table.read_whole


def test_filling_and_writing_are_not_reads() -> None:
    table = _table()
    table.update({"c": 3})
    table["d"] = 4
    assert dict.__len__(table) == 4
    assert table.read_keys == set() and not table.read_whole


def test_clear_reads_starts_a_new_plan() -> None:
    table = _table()
    table.get("a")
    list(table)
    table.clear_reads()
    assert table.read_keys == set() and not table.read_whole


def test_a_bounded_cache_notes_keys_scopes_and_iteration() -> None:
    cache = ControlCache[str, dict[str, Any]](10)
    cache.fill({"t1", "t2"}, {"t1": {"jti": "t1"}})
    cache.fill_scope("job:J", {"t3": {"jti": "t3"}})
    cache.get("t1")
    assert "t2" not in cache
    cache.in_scope("job:J")
    assert cache.read_keys == {"t1", "t2"}
    assert cache.read_scopes == {"job:J"}
    assert not cache.read_whole
    with pytest.raises(PartialTableError):
        list(cache)
    assert cache.read_whole
    cache.clear_reads()
    assert not (cache.read_keys or cache.read_scopes or cache.read_whole)


def test_written_rows_join_the_reads() -> None:
    rows = [
        ProjectionRow("policies", "policy_hash_b64u", {"policy_hash_b64u": "P"}),
        ProjectionRow("events_by_type", "event_type", {"event_type": "x"}),
        ProjectionRow("keys", "did", {"did": "did:key:z1"}),
    ]
    written = written_keys(rows, {"policies", "keys"})
    assert written == {"policies": {"P"}, "keys": {"did:key:z1"}}
    reads = PlanReads(keys={"policies": frozenset({"Q"})}, whole=frozenset({"halts"}))
    merged = reads.with_keys(written)
    assert merged.keys == {"policies": frozenset({"P", "Q"}), "keys": frozenset({"did:key:z1"})}
    assert merged.whole == {"halts"}


def test_plan_reads_are_false_only_when_nothing_was_read() -> None:
    assert not PlanReads()
    assert not PlanReads(keys={"keys": frozenset()})
    assert PlanReads(keys={"keys": frozenset({"k"})})
    assert PlanReads(scopes=frozenset({("tokens", "sub", "s")}))
    assert PlanReads(whole=frozenset({"shadows"}))
