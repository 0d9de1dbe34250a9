"""The fast replay paths decide exactly what the event-by-event fold decides:
runs through one ``plan_batch`` (``Replay.feed_many``), signatures checked in
worker processes (``VerifyPool``), and the bounded memories of event ids."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from claw_ledger.verify_pool import VerifyPool, signatures_verify
from ledger.batch import IngressRecord, pending_records, plan_batch
from ledger.errors import ReasonCode
from ledger.replay import RecentEventIds, Replay, StoredEvent
from ledger.state import LedgerState
from ledger.verify import Rejected, Verified, signature_of, verify_message
from storage.replay_ids import SpillingEventIds
from tests.core._replay_support import _stored, build_flow
from tests.primitives._support import ROLES, Ledger

Flow = tuple[list[bytes], Ledger]


@pytest.fixture(scope="module")
def flow() -> Flow:
    return build_flow()


def _one_by_one(events: Sequence[StoredEvent], **options: Any) -> Replay:
    fold = Replay(**options)
    for event in events:
        fold.feed(event)
        if fold.stopped:
            break
    return fold


def _through_pool(
    events: Sequence[StoredEvent], jobs: int, chunk: int = 3, **options: Any
) -> Replay:
    fold = Replay(**options)
    with VerifyPool(jobs, chunk=chunk) as pool:
        for verdicts in pool.verdicts(events, lambda e: e.raw):
            fold.feed_many(verdicts)
            if fold.stopped:
                break
    # past the first chunk, the signatures are the workers' when there are any
    assert (pool.checked_in_workers > 0) == (jobs > 1 and len(events) > chunk)
    return fold


def _outcome(fold: Replay) -> dict[str, Any]:
    return {
        "broken": fold.broken,
        "until": fold.reached_until,
        "counts": dict(fold.counts),
        "skipped": dict(fold.skipped),
        "duplicates": fold.duplicates,
        "positions": dict(fold.positions),
        "rows": [(r.table, r.values) for r in fold.rows()],
        "state": (
            fold.state.trust_root,
            sorted(fold.state.keys),
            fold.state.jobs,
            fold.state.halts,
        ),
    }


def _bad_signature(raw: bytes) -> bytes:
    """The same envelope with a signature that is well-formed but wrong."""
    document = json.loads(raw)
    signature = document["signature_b64u"]
    document["signature_b64u"] = ("B" if signature[0] == "A" else "A") + signature[1:]
    return json.dumps(document, separators=(",", ":")).encode()


@pytest.mark.parametrize("jobs", [1, 2])
def test_the_pool_rebuilds_what_the_event_by_event_fold_rebuilds(flow: Flow, jobs: int) -> None:
    raws, _ = flow
    stored = _stored(raws)
    expected = _one_by_one(stored)
    assert expected.broken is None
    assert _outcome(_through_pool(stored, jobs)) == _outcome(expected)


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_signature_a_worker_refuses_breaks_at_its_event_and_nothing_after_applies(
    flow: Flow, jobs: int
) -> None:
    raws, _ = flow
    stored = _stored(raws)
    k = len(ROLES) + 3  # past the first chunk: checked by a worker when jobs > 1
    victim = stored[k]
    stored[k] = dataclasses.replace(victim, raw=_bad_signature(victim.raw))
    fold = _through_pool(stored, jobs)
    assert fold.broken is not None
    assert fold.broken.code is ReasonCode.SIGNATURE_INVALID
    assert fold.broken.position == victim.position
    assert fold.broken.event_id == victim.event_id
    assert fold.accepted == k
    assert fold.positions[0].ledger_seq == k
    assert _outcome(fold) == _outcome(_one_by_one(stored))


def test_workers_refuse_exactly_the_signatures_that_do_not_verify(flow: Flow) -> None:
    raws, _ = flow
    good = verify_message(raws[1], signature=False)
    bad = verify_message(_bad_signature(raws[1]), signature=False)
    assert isinstance(good, Verified) and isinstance(bad, Verified)
    broken_did = ("did:key:zNotAKey", *signature_of(good)[1:])
    assert signatures_verify([signature_of(good), signature_of(bad), broken_did]) == b"\x01\x00\x00"


@pytest.mark.parametrize("chunk", [1, 2, 5, 1000])
def test_runs_break_where_single_events_break(flow: Flow, chunk: int) -> None:
    raws, _ = flow
    clean = _stored(raws)
    gap = [*clean[:3], *clean[4:]]
    chained = list(clean)
    chained[5] = dataclasses.replace(clean[5], chain_hash="A" * 43)
    forged_id = list(clean)
    forged_id[6] = dataclasses.replace(clean[6], event_id="00000000-0000-4000-8000-000000000000")
    duplicated = [*clean[:6], clean[5], *clean[6:]]
    for events in (clean, gap, chained, forged_id, duplicated):
        expected = _one_by_one(events)
        assert _outcome(_through_pool(events, 1, chunk)) == _outcome(expected)
    # topic order, lenient: a duplicate is a no-op and a refusal is skipped, inside a run
    topic = [StoredEvent(raw) for raw in [*raws, raws[4], raws[len(raws) - 2]]]
    expected = _one_by_one(topic, strict=False)
    assert expected.duplicates == 2
    assert _outcome(_through_pool(topic, 1, chunk, strict=False)) == _outcome(expected)


def test_plan_batch_stops_at_the_first_refusal_when_asked(flow: Flow) -> None:
    raws, _ = flow
    outsider = [_bad_signature(raws[1])]
    records = [IngressRecord(0, n, raw) for n, raw in enumerate([raws[0], *outsider, raws[1]])]
    verdicts = [verify_message(r.value) for r in records]
    for stop, decided in ((True, 2), (False, 3)):
        state = LedgerState(trust_root=json.loads(raws[0])["signer_did"])
        plan = plan_batch(
            state, {}, pending_records({}, records, verdicts), {}, stop_at_refusal=stop
        )
        (batch,) = plan.batches
        assert len(batch.quarantined) == 1
        assert len(batch.events) == decided - 1
        assert batch.new_position.next_offset == decided


def test_recent_ids_forget_the_oldest() -> None:
    ids = RecentEventIds(capacity=2)
    for n in range(3):
        ids.add(f"id-{n}", f"hash-{n}")
    assert ids.get("id-0") is None
    assert (ids.get("id-1"), ids.get("id-2")) == ("hash-1", "hash-2")


def test_spilled_ids_are_still_found_and_the_file_goes_with_close(tmp_path: Path) -> None:
    ids = SpillingEventIds(capacity=3, directory=str(tmp_path))
    for n in range(10):
        ids.add(f"id-{n}", f"hash-{n}")
    assert ids.spilled == 9
    assert all(ids.get(f"id-{n}") == f"hash-{n}" for n in range(10))
    assert ids.get("id-10") is None
    path = Path(ids.path)
    assert path.exists()
    ids.close()
    assert not path.exists()


def test_a_topic_duplicate_beyond_memory_is_still_a_duplicate(flow: Flow, tmp_path: Path) -> None:
    raws, _ = flow
    topic = [StoredEvent(raw) for raw in [*raws, raws[2]]]
    with SpillingEventIds(capacity=2, directory=str(tmp_path)) as seen:
        fold = _through_pool(topic, 1, 4, strict=False, seen=seen)
    assert fold.broken is None
    assert fold.duplicates == 1
    assert fold.accepted == len(raws)


#: how an async source hands its events over: one at a time, or in pages of
#: these sizes in turn (a database cursor's pages; sizes across the chunk of 3)
_PAGINGS = [None, (1,), (2, 5), (7,), (3, 1, 4)]


@pytest.mark.parametrize("pages", _PAGINGS)
def test_an_async_source_gets_the_same_verdicts_in_the_same_order(
    flow: Flow, pages: tuple[int, ...] | None
) -> None:
    raws, _ = flow
    stored = _stored(raws)
    k = len(stored) - 2
    stored[k] = dataclasses.replace(stored[k], raw=_bad_signature(stored[k].raw))

    async def source() -> AsyncIterator[StoredEvent]:
        for event in stored:
            yield event

    async def paged(sizes: tuple[int, ...]) -> AsyncIterator[list[StoredEvent]]:
        start, turn = 0, 0
        while start < len(stored):
            size = sizes[turn % len(sizes)]
            yield stored[start : start + size]
            start, turn = start + size, turn + 1

    async def collect() -> tuple[list[Any], int]:
        out: list[Any] = []
        with VerifyPool(2, chunk=3) as pool:
            chunks = (
                pool.averdicts(source(), lambda e: e.raw)
                if pages is None
                else pool.averdicts_of_batches(paged(pages), lambda e: e.raw)
            )
            async for chunk in chunks:
                assert 0 < len(chunk) <= 3
                out.extend(chunk)
        return out, pool.checked_in_workers

    pairs, in_workers = asyncio.run(collect())
    assert in_workers > 0
    assert [event for event, _ in pairs] == stored
    codes = [v.code if isinstance(v, Rejected) else None for _, v in pairs]
    assert codes == [None] * k + [ReasonCode.SIGNATURE_INVALID, None]
    assert [type(v) for _, v in pairs] == [type(verify_message(e.raw)) for e in stored]


def test_the_ledger_query_selects_the_fields_of_a_stored_event_in_order() -> None:
    """``iter_event_batches`` builds each StoredEvent from a row's values by position."""
    from storage.replay_queries import _STORED_EVENT_COLUMNS

    names = [column.split()[-1] for column in _STORED_EVENT_COLUMNS.split(",")]
    assert names == [field.name for field in dataclasses.fields(StoredEvent)]
