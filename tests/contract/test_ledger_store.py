"""One contract, two stores: every test runs on Postgres (a fresh migrated
database) and on the in-memory store, which must keep the same semantics."""

from __future__ import annotations

import asyncpg
import pytest

from consumers.processor import VerifyingProcessor
from ledger.batch import (
    IngressRecord,
    PartitionPosition,
)
from ledger.control_digest import CONTROL_DIGEST_TABLES, state_digests, table_digest
from ledger.errors import (
    ConfigError,
    ControlPlaneTamperedError,
    EventError,
    StaleBatchError,
)
from ledger.state import LedgerState, ProjectionRow
from storage.memory import MemoryLedgerStore
from storage.postgres import PostgresLedgerStore
from storage.protocol import BatchCommit, ControlQuery, LedgerStore
from tests.contract._store_helpers import (
    ADMIN,
    GROUP,
    OPERATOR,
    SETUP,
    TOPIC,
    commit_plan,
    first_state,
    halt_event,
    plan_values,
    planned_ids,
    recorded_hashes,
)


async def test_an_empty_ledger(store: LedgerStore) -> None:
    assert await store.load_positions(GROUP, TOPIC) == {}
    assert await store.other_groups(GROUP, TOPIC) == []
    assert await store.control_version() == 0
    assert await store.trust_root() is None
    assert await recorded_hashes(store, []) == {}
    version, state = await store.load_state_snapshot(None)
    assert version == 0 and state.keys == {} and state.trust_root is None


async def test_a_commit_records_events_positions_and_the_control_version(
    store: LedgerStore,
) -> None:
    plan = plan_values([*SETUP, b"not json"])
    assert await commit_plan(store, plan) == 1
    [batch] = plan.batches
    assert await store.load_positions(GROUP, TOPIC) == {0: batch.new_position}
    unknown = "8d0f8b4e-0000-4000-8000-000000000000"
    hashes = await recorded_hashes(store, [*planned_ids(plan), unknown])
    assert hashes == {e.event_id: e.payload_hash_b64u for e in batch.events}
    assert await store.control_version() == 1
    version, state = await store.load_state_snapshot(ADMIN.did)
    assert version == 1 and set(state.keys) == {ADMIN.did, OPERATOR.did}
    assert state.keys[OPERATOR.did].name == "operator" and not state.keys[OPERATOR.did].revoked
    assert await store.other_groups("another-group", TOPIC) == [GROUP]


async def test_the_control_read_answers_the_duplicate_check_too(store: LedgerStore) -> None:
    plan = plan_values(SETUP)
    await commit_plan(store, plan)
    [batch] = plan.batches
    unknown = "8d0f8b4e-0000-4000-8000-000000000000"
    expected = {e.event_id: e.payload_hash_b64u for e in batch.events}
    asked = [*planned_ids(plan), unknown]
    # the version has not moved: one statement answers (Postgres); the version moved
    # and rows are wanted: the snapshot read answers; both with the same hashes
    for since, wanted in ((1, {}), (0, {"tokens": ["no-such-jti"]})):
        query = ControlQuery(ADMIN.did, since=since, wanted=wanted, event_ids=asked)
        read = await store.read_control(query)
        assert read.version == 1
        assert read.recorded == expected == await recorded_hashes(store, asked)
        assert (read.changed is None) == (since == 1)
    assert (await store.read_control(ControlQuery(ADMIN.did, since=1))).recorded == {}


async def test_a_batch_without_control_rows_leaves_the_version(store: LedgerStore) -> None:
    assert await commit_plan(store, plan_values([b"not json", b"{}"])) is None
    assert await store.control_version() == 0
    assert (await store.load_positions(GROUP, TOPIC))[0].next_offset == 2


async def test_a_stale_position_refuses_the_whole_batch(store: LedgerStore) -> None:
    first = plan_values(SETUP)
    await commit_plan(store, first)
    # planned as if partition 0 were new: another worker has moved it since
    stale = plan_values([halt_event("job:1")], first_offset=2, state=first_state())
    with pytest.raises(StaleBatchError):
        await commit_plan(store, stale)
    assert await recorded_hashes(store, planned_ids(stale)) == {}
    assert await store.load_positions(GROUP, TOPIC) == {0: first.batches[0].new_position}
    assert await store.control_version() == 1


async def test_an_event_id_recorded_on_another_partition_refuses_the_batch(
    store: LedgerStore,
) -> None:
    first = plan_values(SETUP)
    await commit_plan(store, first)
    again = plan_values([SETUP[0]], partition=1)  # the same event, re-published elsewhere
    assert planned_ids(again) == planned_ids(first)[:1]
    with pytest.raises(StaleBatchError):
        await commit_plan(store, again)
    assert set(await store.load_positions(GROUP, TOPIC)) == {0}


async def test_catch_up_reads_only_rows_newer_than_a_version(store: LedgerStore) -> None:
    positions: dict[int, PartitionPosition] = {}
    state = LedgerState(trust_root=ADMIN.did)
    first = plan_values(SETUP, positions=positions, state=state)
    assert await commit_plan(store, first) == 1
    version, held = await store.load_state_snapshot(ADMIN.did)
    positions[0] = first.batches[0].new_position
    second = plan_values([halt_event("job:9")], first_offset=2, positions=positions, state=state)
    assert await commit_plan(store, second) == 2
    # what `since` leaves out: a key that changed only before `version`
    del held.keys[ADMIN.did]
    new_version, caught_up = await store.load_state_snapshot(ADMIN.did, since=version, into=held)
    assert new_version == 2 and caught_up is held
    assert set(held.keys) == {OPERATOR.did}
    assert held.halts["job:9"]["active"] is True


async def test_copies_are_tracked_from_the_first_offset_until_recorded(store: LedgerStore) -> None:
    plan = plan_values([*SETUP, b"not json"], first_offset=5)
    await commit_plan(store, plan)
    mark, outcomes = await store.unforwarded_outcomes(GROUP, TOPIC, 0)
    assert mark == 8
    assert [(o.offset, o.reason_code) for o in outcomes] == [
        (5, None),
        (6, None),
        (7, "MALFORMED_JSON"),
    ]
    assert outcomes[0].value == SETUP[0] and outcomes[0].key == f"key:{ADMIN.did}".encode()
    await store.record_forwarded(GROUP, TOPIC, {0: 7})
    assert [o.offset for o in (await store.unforwarded_outcomes(GROUP, TOPIC, 0))[1]] == [7]
    await store.record_forwarded(GROUP, TOPIC, {0: 6})  # never moves back
    await store.record_forwarded(GROUP, TOPIC, {0: 8})
    assert await store.unforwarded_outcomes(GROUP, TOPIC, 0) == (8, [])
    assert await store.unforwarded_outcomes(GROUP, TOPIC, 3) == (0, [])


async def test_a_batch_mark_never_jumps_over_older_unsent_outcomes(store: LedgerStore) -> None:
    await commit_plan(store, plan_values([*SETUP, b"not json"], first_offset=5))
    # the copies of offsets 7.. were sent, but 5 and 6 not yet: nothing is marked
    await store.record_forwarded(GROUP, TOPIC, {0: 8}, since={0: 7})
    assert [o.offset for o in (await store.unforwarded_outcomes(GROUP, TOPIC, 0))[1]] == [5, 6, 7]
    await store.record_forwarded(GROUP, TOPIC, {0: 7}, since={0: 5})
    await store.record_forwarded(GROUP, TOPIC, {0: 8}, since={0: 7})
    assert await store.unforwarded_outcomes(GROUP, TOPIC, 0) == (8, [])


async def test_marks_of_several_partitions_move_each_by_its_own_since(
    store: LedgerStore,
) -> None:
    await commit_plan(store, plan_values([b"not json", b"{}"], partition=0, first_offset=5))
    await commit_plan(store, plan_values([b"not json", b"{}"], partition=1, first_offset=3))
    # partition 1 was marked from 3 (its recorded mark): it moves; partition 0's
    # mark is still 5, below its since of 6: it stays
    await store.record_forwarded(GROUP, TOPIC, {1: 5, 0: 7}, since={1: 3, 0: 6})
    assert await store.unforwarded_outcomes(GROUP, TOPIC, 1) == (5, [])
    assert [o.offset for o in (await store.unforwarded_outcomes(GROUP, TOPIC, 0))[1]] == [5, 6]


async def test_untracked_copies_count_as_made(store: LedgerStore) -> None:
    await commit_plan(
        store, plan_values([b"not json", b"{}"], first_offset=5), copies_tracked=False
    )
    assert await store.unforwarded_outcomes(GROUP, TOPIC, 0) == (7, [])


async def test_the_trust_root_is_recorded_once(store: LedgerStore) -> None:
    await store.set_trust_root(ADMIN.did)
    await store.set_trust_root(ADMIN.did)  # idempotent, but processors reload
    assert await store.trust_root() == ADMIN.did
    assert await store.control_version() == 2
    with pytest.raises(EventError, match="already has the trust root"):
        await store.set_trust_root(OPERATOR.did)
    assert (await store.load_state_snapshot(None))[1].trust_root == ADMIN.did
    assert (await store.load_state_snapshot("did:key:other"))[1].trust_root == "did:key:other"


async def test_a_processor_on_the_store_commits_exactly_once(store: LedgerStore) -> None:
    await store.set_trust_root(ADMIN.did)
    processor = VerifyingProcessor(store, group=GROUP, topic=TOPIC, trust_root=None)
    await processor.start()
    records = [IngressRecord(0, i, v) for i, v in enumerate([*SETUP, halt_event("job:1")])]
    report = await processor.process(records)
    assert len(report.accepted) == 3
    again = await processor.process(records)  # a re-delivery
    assert again.skipped == 3 and again.accepted == []
    # a second worker of the group catches up on the first one's control changes
    other = VerifyingProcessor(store, group=GROUP, topic=TOPIC, trust_root=None)
    await other.start()
    assert other.control.state.halts == processor.control.state.halts
    assert len((await other.process([IngressRecord(1, 0, halt_event("job:2"))])).accepted) == 1
    assert await processor.assigned([0, 1, 2]) == {0: 3, 1: 1, 2: None}
    # another group on the same ledger is refused
    with pytest.raises(ConfigError, match="already fed"):
        await VerifyingProcessor(store, group="g2", topic=TOPIC, trust_root=None).start()


async def _stored_digests(store: LedgerStore) -> tuple[dict[str, int | None], dict[str, int]]:
    """The digests the store kept, and those of the rows it loads back."""
    _, state, stored = await store.load_state_with_digests(ADMIN.did)
    return stored, state_digests(state)


async def test_the_control_digest_follows_every_control_commit(store: LedgerStore) -> None:
    empty, _ = await _stored_digests(store)
    assert empty == dict.fromkeys(CONTROL_DIGEST_TABLES, 0)
    positions: dict[int, PartitionPosition] = {}
    state = LedgerState(trust_root=ADMIN.did)
    first = plan_values([*SETUP, halt_event("job:7")], positions=positions, state=state)
    await commit_plan(store, first)
    stored, loaded = await _stored_digests(store)
    assert stored == loaded
    assert stored["keys"] != 0 and stored["halts"] != 0 and stored["tokens"] == 0
    assert loaded == state_digests(state)  # what the rules hold in memory, too
    halted = stored["halts"]
    positions[0] = first.batches[0].new_position
    # a replaced row (the halt engaged again): its old hash is taken out, the new one added
    second = plan_values([halt_event("job:7")], first_offset=3, positions=positions, state=state)
    await commit_plan(store, second)
    stored, loaded = await _stored_digests(store)
    assert stored == loaded and stored["halts"] not in (0, halted)
    assert stored["halts"] == table_digest("halts", state.halts.values())


async def test_a_row_loads_back_with_the_digest_it_was_written_with(store: LedgerStore) -> None:
    # what jsonb does to a document: keys reordered, 1e2 printed 100, 1.0 kept,
    # big and small numbers as decimals; NULL columns left out on insert
    awkward = {"b": [1e2, 1.0, 0.1, 1.5e-7, 2**60, -0.0, True, None, 'ü\u2028"\\'], "a": {}}
    token = {
        "jti": "jti-awkward",
        "status": "active",
        "sub": "agent:ü",
        "aud": awkward,
        "scope": ["tools:*", {"z": 1, "y": [False]}],
        "iat": 1_700_000_000,
        "exp": 1_700_000_600,
        "kid": "kid",
        "issuer_did": ADMIN.did,
        "token_scope_hash_b64u": "h" * 43,
        "token_sha256_b64u": "t" * 43,
        "issued_event_id": "e",
        "issued_at": "2026-11-30T00:00:00.000Z",
    }
    await store.commit_batch(BatchCommit(GROUP, TOPIC, [], [ProjectionRow("tokens", "jti", token)]))
    stored, loaded = await _stored_digests(store)
    assert stored["tokens"] == loaded["tokens"] == table_digest("tokens", [token])


async def test_a_processor_refuses_a_control_row_it_did_not_write(
    store: LedgerStore, backend: str | None
) -> None:
    processor = VerifyingProcessor(store, group=GROUP, topic=TOPIC, trust_root=ADMIN.did)
    await processor.start()
    records = [IngressRecord(0, i, v) for i, v in enumerate([*SETUP, halt_event("job:1")])]
    assert len((await processor.process(records)).accepted) == 3
    await processor.start()  # an honest restart
    # behind the ledger's back: the halt lifted without an agent.resumed event
    if backend is None:
        assert isinstance(store, MemoryLedgerStore)
        store._projections["halts"]["job:1"][0]["active"] = False
    else:
        conn = await asyncpg.connect(backend)
        try:
            await conn.execute("UPDATE halts SET active = false WHERE target = 'job:1'")
        finally:
            await conn.close()
    restarted = VerifyingProcessor(store, group=GROUP, topic=TOPIC, trust_root=ADMIN.did)
    with pytest.raises(ControlPlaneTamperedError, match="halts") as refused:
        await restarted.start()
    assert set(refused.value.tables) == {"halts"}
    stored, computed = refused.value.tables["halts"]
    assert stored != computed


async def test_an_unsealed_table_is_sealed_by_the_first_full_load(store: LedgerStore) -> None:
    await commit_plan(store, plan_values(SETUP))
    _, loaded = await _stored_digests(store)
    # as migration 0007 leaves a table that already had rows
    assert not await store.seal_control_digests(0, {"keys": 1})  # the version moved: no-op
    if isinstance(store, MemoryLedgerStore):
        store._digests["keys"] = None
    else:
        assert isinstance(store, PostgresLedgerStore)
        async with store._pool.acquire() as conn:
            await conn.execute("UPDATE control_digests SET digest = NULL WHERE table_name = 'keys'")
    assert (await _stored_digests(store))[0]["keys"] is None
    await VerifyingProcessor(store, group=GROUP, topic=TOPIC, trust_root=None).start()
    stored, _ = await _stored_digests(store)
    assert stored["keys"] == loaded["keys"]


async def test_rows_of_every_control_table_keep_their_digest(store: LedgerStore) -> None:
    """Real rows of every table, as the rules write them (a WPC, a token, a job
    with a receipt and outputs, a halt), replaced several times within one
    commit: the digest kept equals the rows read back and the rules' state."""
    from tests.primitives._rules_support import _receipt_body
    from tests.primitives._support import Ledger, ts

    ledger = Ledger()
    ledger.started_job()
    receipt = _receipt_body(ledger)
    ledger.ok(ledger.keys.gateway, "receipt.recorded", "job:job-1", receipt, at=ts(90))
    ledger.ok(ledger.keys.operator, "agent.halted", "halt:*", {"target": "*", "reason": "x"})
    outputs = {"job_id": "job-1", "outputs": [{"name": "x", "sha256": "ab" * 32}]}
    ledger.ok(ledger.keys.runtime, "run.completed", "job:job-1", outputs, at=ts(120))
    rows = [*(key.row() for key in ledger.state.keys.values()), *ledger.rows]
    assert {row.table for row in rows} >= set(CONTROL_DIGEST_TABLES)
    await store.commit_batch(BatchCommit(GROUP, TOPIC, [], rows))
    stored, loaded = await _stored_digests(store)
    assert stored == loaded == state_digests(ledger.state)
    assert all(stored[t] != 0 for t in CONTROL_DIGEST_TABLES)


def _bundle_row(job_id: str) -> ProjectionRow:
    from tests.primitives._support import sealed_body

    values = sealed_body(job_id) | {
        "sealed_by": ADMIN.did,
        "sealed_at": "2026-11-30T00:00:00.000Z",
        "sealed_event_id": "8d0f8b4e-0000-4000-8000-000000000001",
    }
    return ProjectionRow("bundles", "bundle_hash_b64u", values)


async def test_an_insert_only_projection_keeps_its_first_row(
    store: LedgerStore, backend: str | None
) -> None:
    first = plan_values([b"not json"])
    await store.commit_batch(BatchCommit(GROUP, TOPIC, first.batches, [_bundle_row("job-1")]))
    positions = await store.load_positions(GROUP, TOPIC)
    second = plan_values([b"{}"], first_offset=1, positions=positions)
    await store.commit_batch(BatchCommit(GROUP, TOPIC, second.batches, [_bundle_row("job-2")]))
    if backend is None:
        assert isinstance(store, MemoryLedgerStore)
        stored = store._projections["bundles"]["A" * 43][0]
        assert stored["job_id"] == "job-1"
        return
    conn = await asyncpg.connect(backend)
    try:
        rows = await conn.fetch("SELECT job_id FROM bundles")
    finally:
        await conn.close()
    assert [r["job_id"] for r in rows] == ["job-1"]
