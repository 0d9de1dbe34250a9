"""The bounded control cache and the list of rows each event type reads (ADR 0020)."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.control_cache import ControlCache, PartialTableError, rows_in_scope
from ledger.control_reads import BOUNDED_TABLES, CONTROL_READS, ScopeRead, batch_reads, batch_scopes
from ledger.types import REGISTRY
from ledger.types.runs import ReceiptRecorded, RunStarted
from ledger.types.tokens import TokenRevoked


def _cache(capacity: int = 2) -> ControlCache[str, dict[str, Any]]:
    return ControlCache[str, dict[str, Any]](capacity)


def test_an_unknown_key_is_a_miss_and_a_known_absent_one_is_not() -> None:
    cache = _cache()
    cache.fill({"a", "gone"}, {"a": {"n": 1}})
    assert cache.get("a") == {"n": 1} and "a" in cache and cache["a"] == {"n": 1}
    assert cache.get("gone") is None and "gone" not in cache
    assert cache.misses == set()
    assert cache.get("other", {"d": 0}) == {"d": 0}
    assert "other2" not in cache
    with pytest.raises(KeyError):
        cache["other3"]
    assert cache.misses == {"other", "other2", "other3"}
    assert cache.unknown(["a", "gone", "other", "x"]) == {"other", "x"}
    cache["gone"] = {"n": 2}  # written by a rule: known from now on
    assert cache.peek("gone") == {"n": 2} and cache.unknown(["gone"]) == set()


def test_a_bounded_cache_cannot_be_iterated() -> None:
    cache = _cache()
    cache.fill({"a"}, {"a": {}})
    for read in (list, lambda c: c.keys(), lambda c: c.values(), lambda c: c.items()):
        with pytest.raises(PartialTableError, match="read rows by key"):
            read(cache)


def test_trim_keeps_the_rows_used_last_and_forgets_absent_keys() -> None:
    cache = _cache(2)
    cache.fill({"a", "b", "c", "d"}, {"a": {}, "b": {}, "c": {}})
    cache.trim()  # a batch may hold more than the capacity until it is done
    assert cache.cached() == 2
    assert cache.unknown(["d"]) == {"d"}  # absent keys are not kept across batches
    kept = {k for k in "abc" if cache.peek(k) is not None}
    assert len(kept) == 2
    old, young = sorted(kept)
    cache.get(old)  # used in this batch: the other one goes first
    cache.fill({"e"}, {"e": {}})
    cache.trim()
    assert cache.peek(old) is not None and cache.peek("e") is not None
    assert cache.peek(young) is None


def test_forget_and_reset() -> None:
    cache = _cache()
    cache.fill({"a", "b"}, {"a": {}})
    cache.forget(["a", "b"])
    assert cache.unknown(["a", "b"]) == {"a", "b"}
    cache.fill({"a"}, {"a": {}})
    cache.get("zz")
    cache.reset()
    assert cache.cached() == 0 and cache.misses == set()
    with pytest.raises(ValueError):
        _cache(0)


def test_every_event_type_says_which_bounded_rows_it_reads() -> None:
    # a new event type must be listed (maybe with nothing): else every batch
    # holding it that reads tokens or jobs is planned twice
    assert set(CONTROL_READS) == {spec.event_type for spec in REGISTRY}
    assert BOUNDED_TABLES == ("tokens", "jobs")


def test_second_hand_reads_are_listed_once_the_row_is_at_hand() -> None:
    receipt = ReceiptRecorded.model_construct(job_id="job-1", receipt_envelope_json="{}")
    started = RunStarted.model_construct(job_id="job-2", urm_hash_b64u="x", cst_jti="t-2")
    revoked = TokenRevoked.model_construct(jti="t-3", reason="r")
    events = [
        ("receipt.recorded", receipt),
        ("run.started", started),
        ("token.revoked", revoked),
        ("agent.halted", revoked),
    ]
    rows = {("jobs", "job-1"): {"cst_jti": "t-1"}}
    assert batch_reads(events, lambda t, k: None) == {
        "tokens": {"t-2", "t-3"},
        "jobs": {"job-1", "job-2"},
    }
    assert batch_reads(events, lambda t, k: rows.get((t, k))) == {
        "tokens": {"t-1", "t-2", "t-3"},
        "jobs": {"job-1", "job-2"},
    }


def test_a_scope_read_in_full_can_be_looked_through_until_trim_or_forget() -> None:
    cache = _cache(1)
    cache.fill({"other"}, {"other": {"sub": "b"}})
    with pytest.raises(PartialTableError):
        cache.in_scope("sub:a")
    assert cache.iterated
    cache.iterated = False
    cache.fill_scope("sub:a", {"t1": {"sub": "a"}, "t2": {"sub": "a"}})
    # the scope's rows, not the rest of the cache
    assert sorted(r["sub"] for r in cache.in_scope("sub:a")) == ["a", "a"]
    cache["t3"] = {"sub": "a"}  # written in the batch (a token issued): it may join the scope
    assert sorted(r["sub"] for r in cache.in_scope("sub:a")) == ["a", "a", "a"]
    assert cache.unknown(["t1", "t2"]) == set() and not cache.iterated
    assert list(rows_in_scope({"x": {"sub": "z"}}, "sub:a")) == [{"sub": "z"}]  # a whole table
    cache.forget(["elsewhere"])  # another writer changed a row: the scope may have grown
    with pytest.raises(PartialTableError):
        cache.in_scope("sub:a")
    cache.fill_scope("sub:a", {})
    cache.trim()
    assert cache.scopes == {} and cache.cached() == 1


def test_only_a_full_stop_of_a_job_or_a_subject_reads_a_scope() -> None:
    halted = REGISTRY["agent.halted"].body

    def scopes(**body: Any) -> list[ScopeRead]:
        return batch_scopes([("agent.halted", halted.model_validate({"reason": "r", **body}))])

    assert scopes(target="job:j-1") == [
        ScopeRead("tokens", "job:j-1", "mission_id", "j-1", "active")
    ]
    assert scopes(target="sub:agent:a") == [
        ScopeRead("tokens", "sub:agent:a", "sub", "agent:a", "active")
    ]
    assert scopes(target="*") == []  # every token: the batch reads the table whole
    assert scopes(target="job:j-1", tools=False) == []  # a partial halt revokes no token
    assert scopes(target="sub:agent:a", model_egress=False) == []
    twice = [("agent.halted", halted.model_validate({"reason": "r", "target": "job:j"}))] * 2
    assert len(batch_scopes(twice)) == 1
