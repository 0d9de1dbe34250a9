"""The verified replay fold (ledger/replay.py) on events built from fixed keys."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from ledger.errors import ReasonCode
from ledger.replay import Replay, StoredEvent, diff_projections, point_in_time, replay
from tests.core._replay_support import _raw, _stored, build_flow
from tests.primitives._support import ROLES, Ledger, ts


@pytest.fixture(scope="module")
def flow() -> tuple[list[bytes], Ledger]:
    return build_flow()


def _by_stream(raw: bytes) -> int:
    return len(json.loads(raw)["payload"]["stream"]) % 3


def test_a_clean_flow_rebuilds_the_processors_projections(flow: tuple[list[bytes], Ledger]) -> None:
    raws, ledger = flow
    stored = _stored(raws, _by_stream)
    fold = replay(stored)
    assert fold.broken is None, fold.broken
    assert fold.accepted == len(raws)
    assert fold.counts["key.registered"] == len(ROLES)
    assert fold.counts["run.started"] == 1
    assert fold.trust_root == ledger.keys.admin.did
    assert fold.state.jobs["job-1"]["status"] == "running"
    assert fold.state.halts["job:job-1"]["active"] is False
    rebuilt = {(r.table, r.values[r.key_column]): r.values for r in fold.rows()}
    # the rules of the primitives wrote the same rows in the test ledger's own run
    for row in ledger.rows:
        assert rebuilt[(row.table, row.values[row.key_column])] is not None
    assert rebuilt[("jobs", "job-1")] == ledger.state.jobs["job-1"]
    assert rebuilt[("halts", "job:job-1")] == ledger.state.halts["job:job-1"]


def test_raw_bytes_in_topic_order_rebuild_too(flow: tuple[list[bytes], Ledger]) -> None:
    raws, _ = flow
    fold = replay(raws, strict=False)
    assert fold.broken is None and fold.accepted == len(raws)
    assert fold.positions[0].ledger_seq == len(raws)


def test_tampered_bytes_break_the_replay_at_that_event(flow: tuple[list[bytes], Ledger]) -> None:
    raws, _ = flow
    stored = _stored(raws)
    victim = stored[len(ROLES) + 2]
    forged = victim.raw.replace(b'"job-1"', b'"job-9"', 1)
    assert forged != victim.raw
    stored[len(ROLES) + 2] = dataclasses.replace(victim, raw=forged, recorded_at=None)
    fold = replay(stored)
    assert fold.broken is not None
    assert fold.broken.code is ReasonCode.HASH_MISMATCH
    assert fold.broken.position == victim.position
    assert fold.broken.ledger_seq == victim.ledger_seq
    assert fold.broken.event_id == victim.event_id
    assert fold.accepted == len(ROLES) + 2


def test_a_missing_link_is_a_gap(flow: tuple[list[bytes], Ledger]) -> None:
    raws, _ = flow
    stored = _stored(raws)
    del stored[3]
    fold = replay(stored)
    assert fold.broken is not None
    assert fold.broken.code is ReasonCode.REPLAY_GAP
    assert fold.broken.ledger_seq == 5
    assert "expected ledger_seq 4" in fold.broken.detail


def test_an_altered_chain_hash_is_a_broken_chain(flow: tuple[list[bytes], Ledger]) -> None:
    raws, _ = flow
    stored = _stored(raws)
    s = stored[2]
    stored[2] = StoredEvent(
        s.raw, s.partition, s.offset, s.ledger_seq, s.prev_chain_hash, "A" * 43, event_id=s.event_id
    )
    fold = replay(stored)
    assert fold.broken is not None and fold.broken.code is ReasonCode.CHAIN_BROKEN
    assert fold.broken.ledger_seq == 3


def test_a_reordered_event_breaks(flow: tuple[list[bytes], Ledger]) -> None:
    raws, _ = flow
    stored = _stored(raws)
    stored[4], stored[5] = stored[5], stored[4]
    fold = replay(stored)
    assert fold.broken is not None and fold.broken.code is ReasonCode.REPLAY_GAP
    # the same swap in topic order: the run starts before its manifest is approved
    run = len(raws) - 3
    reordered = [*raws[: run - 1], raws[run], raws[run - 1], *raws[run + 1 :]]
    strict = replay(reordered)
    assert strict.broken is not None and strict.broken.code is ReasonCode.JOB_UNKNOWN
    lenient = replay(reordered, strict=False)
    assert lenient.broken is None and lenient.skipped == {"JOB_UNKNOWN": 1}


def test_a_forged_signer_breaks(flow: tuple[list[bytes], Ledger]) -> None:
    raws, ledger = flow
    outsider = ledger.keys.outsider
    forged = _raw(outsider, "agent.halted", "halt:*", {"target": "*", "reason": "x"}, ts(200))
    fold = replay([*raws, forged])
    assert fold.broken is not None and fold.broken.code is ReasonCode.UNKNOWN_SIGNER
    assert fold.accepted == len(raws)
    assert "*" not in fold.state.halts


def test_a_pinned_wrong_trust_root_breaks_at_the_first_admin(
    flow: tuple[list[bytes], Ledger],
) -> None:
    raws, ledger = flow
    fold = replay(raws, trust_root=ledger.keys.outsider.did)
    assert fold.broken is not None
    assert fold.broken.code is ReasonCode.TRUST_ROOT_MISMATCH
    assert fold.accepted == 0
    pinned = replay(raws, trust_root=ledger.keys.admin.did)
    assert pinned.broken is None and pinned.accepted == len(raws)


def test_until_stops_before_the_first_later_event(flow: tuple[list[bytes], Ledger]) -> None:
    raws, _ = flow
    fold = Replay(until=datetime.fromisoformat(ts(100)), strict=True)
    for raw in raws:
        fold.feed(raw)
    assert fold.reached_until and fold.broken is None
    # the halt and resume happened at +120 s: the job runs, nothing halted it yet
    assert fold.state.jobs["job-1"]["status"] == "running"
    assert "job:job-1" not in fold.state.halts
    recorded = Replay(until=datetime(2026, 1, 1, tzinfo=UTC))
    step = recorded.feed(StoredEvent(raws[0], recorded_at=datetime(2026, 1, 2, tzinfo=UTC)))
    assert step is None and recorded.reached_until and recorded.accepted == 0


def test_a_stored_event_id_that_is_not_the_envelopes_breaks(
    flow: tuple[list[bytes], Ledger],
) -> None:
    raws, _ = flow
    stored = _stored(raws[:2])
    s = stored[1]
    stored[1] = StoredEvent(
        s.raw,
        0,
        s.offset,
        s.ledger_seq,
        s.prev_chain_hash,
        s.chain_hash,
        event_id=str(uuid.uuid4()),
    )
    fold = replay(stored)
    assert fold.broken is not None and fold.broken.code is ReasonCode.CHAIN_BROKEN


def test_a_stored_duplicate_breaks_but_a_topic_duplicate_is_a_no_op(
    flow: tuple[list[bytes], Ledger],
) -> None:
    raws, _ = flow
    strict = replay([raws[0], raws[1], raws[1]])
    assert strict.broken is not None
    assert strict.broken.code is ReasonCode.DUPLICATE_EVENT_CONFLICT
    lenient = replay([raws[0], raws[1], raws[1]], strict=False)
    assert lenient.broken is None and lenient.duplicates == 1 and lenient.accepted == 2


def test_diff_projections_names_every_kind_of_difference(flow: tuple[list[bytes], Ledger]) -> None:
    raws, _ = flow
    fold = replay(raws)
    live: dict[str, dict[Any, dict[str, Any]]] = {}
    for row in fold.rows():
        live.setdefault(row.table, {})[row.values[row.key_column]] = dict(
            json.loads(json.dumps(row.values)), control_version=7
        )
    assert diff_projections(fold.rows(), live) == []
    live["halts"]["job:job-1"]["reason"] = "rewritten"
    del live["jobs"]["job-1"]
    live["tokens"]["forged-jti"] = {"jti": "forged-jti"}
    diffs = {(d.table, d.key): d for d in diff_projections(fold.rows(), live)}
    assert set(diffs) == {("halts", "job:job-1"), ("jobs", "job-1"), ("tokens", "forged-jti")}
    assert diffs[("halts", "job:job-1")].kind == "changed"
    assert diffs[("halts", "job:job-1")].columns == ("reason",)
    assert diffs[("jobs", "job-1")].kind == "missing"
    assert diffs[("tokens", "forged-jti")].kind == "unexpected"
    assert 'rebuilt="drill" live="rewritten"' in str(diffs[("halts", "job:job-1")])


def test_point_in_time_lists_what_held(flow: tuple[list[bytes], Ledger]) -> None:
    raws, ledger = flow
    during = Replay(until=datetime.fromisoformat(ts(120)))
    for raw in raws[:-1]:  # the resume is the last event
        during.feed(raw)
    view = point_in_time(during.state, datetime.fromisoformat(ts(120)))
    assert [h["target"] for h in view["halted"]] == ["job:job-1"]
    assert [j["job_id"] for j in view["running_jobs"]] == ["job-1"]
    assert len(view["active_policies"]) == 1
    # the halt revoked the job's token
    assert view["valid_tokens"] == []
    assert during.state.halts["job:job-1"]["revoked_jtis"] == [
        ledger.state.jobs["job-1"]["cst_jti"]
    ]
    before = Replay(until=datetime.fromisoformat(ts(100)))
    for raw in raws:
        before.feed(raw)
    (token,) = point_in_time(before.state, datetime.fromisoformat(ts(100)))["valid_tokens"]
    assert token["mission_id"] == "job-1"
    # the token was issued for 900 s: an hour later it is no longer valid
    later = point_in_time(before.state, datetime.fromisoformat(ts(3600)))
    assert later["valid_tokens"] == []
    assert view["trust_root"] == ledger.keys.admin.did


def _normal_rows(fold: Replay) -> dict[tuple[str, Any], Any]:
    return {
        (r.table, r.values[r.key_column]): json.loads(json.dumps(r.values)) for r in fold.rows()
    }


@pytest.mark.parametrize("cut_at", [1, 5, -3])
def test_a_fold_resumed_from_a_snapshot_ends_where_the_whole_fold_does(
    flow: tuple[list[bytes], Ledger], cut_at: int
) -> None:
    raws, _ = flow
    stored = _stored(raws, _by_stream)
    whole = replay(stored)
    before = replay(stored[:cut_at])
    # an archive cut stores the snapshot as JSON
    snapshot = json.loads(json.dumps(before.snapshot()))
    resumed = Replay()
    resumed.resume_snapshot(snapshot)
    for event in stored[cut_at:]:
        resumed.feed(event)
    assert resumed.broken is None, resumed.broken
    assert resumed.trust_root == whole.trust_root
    assert resumed.positions == whole.positions
    assert _normal_rows(resumed) == _normal_rows(whole)
    assert resumed.state.keys == whole.state.keys
    assert json.loads(json.dumps(resumed.state.jobs)) == json.loads(json.dumps(whole.state.jobs))
    assert resumed.state.halts == whole.state.halts


def test_a_forged_link_right_after_the_cut_breaks_the_resumed_fold(
    flow: tuple[list[bytes], Ledger],
) -> None:
    raws, _ = flow
    stored = _stored(raws, _by_stream)
    snapshot = json.loads(json.dumps(replay(stored[:5]).snapshot()))
    resumed = Replay()
    resumed.resume_snapshot(snapshot)
    forged = dataclasses.replace(stored[5], prev_chain_hash="forged")
    resumed.feed(forged)
    assert resumed.broken is not None
    assert resumed.broken.code is ReasonCode.CHAIN_BROKEN
