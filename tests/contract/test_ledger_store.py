"""One contract, two stores: every test runs on Postgres (a fresh migrated
database) and on the in-memory store, which must keep the same semantics."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from consumers.processor import VerifyingProcessor
from ledger.batch import (
    BatchPlan,
    IngressRecord,
    PartitionPosition,
    pending_records,
    plan_batch,
)
from ledger.control_digest import CONTROL_DIGEST_TABLES, state_digests, table_digest
from ledger.crypto import KeyPair
from ledger.errors import (
    ConfigError,
    ControlPlaneTamperedError,
    EventError,
    ReasonCode,
    StaleBatchError,
)
from ledger.events import build_event, sign_event
from ledger.plan_reads import PlanReads
from ledger.state import LedgerState, ProjectionRow
from ledger.verify import verify_message
from ledger.wpc import policy_hash_b64u, sign_wpc
from storage.memory import MemoryLedgerStore
from storage.postgres import PostgresLedgerStore
from storage.protocol import BatchCommit, ControlQuery, LedgerStore
from tests.fixtures_events import policy_attested, token_issued

ADMIN = KeyPair.from_seed(bytes([1]) * 32, "admin")
OPERATOR = KeyPair.from_seed(bytes([2]) * 32, "operator")
GROUP, TOPIC = "verifier", "ingress"


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.integration), "memory"])
def backend(request: pytest.FixtureRequest) -> str | None:
    """The database URL for the Postgres store, ``None`` for the memory store."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("fresh_database")
        return url
    return None


@pytest_asyncio.fixture(loop_scope="session")
async def store(backend: str | None) -> AsyncIterator[LedgerStore]:
    if backend is None:
        yield MemoryLedgerStore()
        return
    opened = await PostgresLedgerStore.open(backend, min_size=1, max_size=4)
    yield opened
    await opened.close()


async def _recorded(store: LedgerStore, event_ids: Sequence[str]) -> dict[str, str]:
    """The payload hashes of ``event_ids`` in the ledger (the processor's duplicate check)."""
    since = await store.control_version()
    return (await store.read_control(ControlQuery(None, since=since, event_ids=event_ids))).recorded


def _register(did: str, name: str, role: str) -> bytes:
    body = {"did": did, "name": name, "roles": [role]}
    return sign_event(build_event("key.registered", f"key:{did}", body, ADMIN), ADMIN).to_bytes()


def _halt(target: str) -> bytes:
    body = {"target": target, "reason": "drill"}
    event = build_event("agent.halted", f"halt:{target}", body, OPERATOR)
    return sign_event(event, OPERATOR).to_bytes()


SETUP = (_register(ADMIN.did, "admin", "admin"), _register(OPERATOR.did, "operator", "operator"))


def _plan(
    values: Sequence[bytes],
    *,
    partition: int = 0,
    first_offset: int = 0,
    positions: dict[int, PartitionPosition] | None = None,
    state: LedgerState | None = None,
) -> BatchPlan:
    records = [IngressRecord(partition, first_offset + i, v) for i, v in enumerate(values)]
    verdicts = [verify_message(r.value) for r in records]
    positions = positions or {}
    pending = pending_records(positions, records, verdicts)
    return plan_batch(state or LedgerState(trust_root=ADMIN.did), positions, pending, {})


async def _commit(
    store: LedgerStore, plan: BatchPlan, *, copies_tracked: bool = True
) -> int | None:
    return await store.commit_batch(
        BatchCommit(GROUP, TOPIC, plan.batches, plan.projections, copies_tracked)
    )


def _ids(plan: BatchPlan) -> list[str]:
    return [e.event_id for b in plan.batches for e in b.events]


async def test_an_empty_ledger(store: LedgerStore) -> None:
    assert await store.load_positions(GROUP, TOPIC) == {}
    assert await store.other_groups(GROUP, TOPIC) == []
    assert await store.control_version() == 0
    assert await store.trust_root() is None
    assert await _recorded(store, []) == {}
    version, state = await store.load_state_snapshot(None)
    assert version == 0 and state.keys == {} and state.trust_root is None


async def test_a_commit_records_events_positions_and_the_control_version(
    store: LedgerStore,
) -> None:
    plan = _plan([*SETUP, b"not json"])
    assert await _commit(store, plan) == 1
    [batch] = plan.batches
    assert await store.load_positions(GROUP, TOPIC) == {0: batch.new_position}
    unknown = "8d0f8b4e-0000-4000-8000-000000000000"
    hashes = await _recorded(store, [*_ids(plan), unknown])
    assert hashes == {e.event_id: e.payload_hash_b64u for e in batch.events}
    assert await store.control_version() == 1
    version, state = await store.load_state_snapshot(ADMIN.did)
    assert version == 1 and set(state.keys) == {ADMIN.did, OPERATOR.did}
    assert state.keys[OPERATOR.did].name == "operator" and not state.keys[OPERATOR.did].revoked
    assert await store.other_groups("another-group", TOPIC) == [GROUP]


async def test_the_control_read_answers_the_duplicate_check_too(store: LedgerStore) -> None:
    plan = _plan(SETUP)
    await _commit(store, plan)
    [batch] = plan.batches
    unknown = "8d0f8b4e-0000-4000-8000-000000000000"
    expected = {e.event_id: e.payload_hash_b64u for e in batch.events}
    asked = [*_ids(plan), unknown]
    # the version has not moved: one statement answers (Postgres); the version moved
    # and rows are wanted: the snapshot read answers; both with the same hashes
    for since, wanted in ((1, {}), (0, {"tokens": ["no-such-jti"]})):
        query = ControlQuery(ADMIN.did, since=since, wanted=wanted, event_ids=asked)
        read = await store.read_control(query)
        assert read.version == 1
        assert read.recorded == expected == await _recorded(store, asked)
        assert (read.changed is None) == (since == 1)
    assert (await store.read_control(ControlQuery(ADMIN.did, since=1))).recorded == {}


async def test_a_batch_without_control_rows_leaves_the_version(store: LedgerStore) -> None:
    assert await _commit(store, _plan([b"not json", b"{}"])) is None
    assert await store.control_version() == 0
    assert (await store.load_positions(GROUP, TOPIC))[0].next_offset == 2


async def test_a_stale_position_refuses_the_whole_batch(store: LedgerStore) -> None:
    first = _plan(SETUP)
    await _commit(store, first)
    # planned as if partition 0 were new: another worker has moved it since
    stale = _plan([_halt("job:1")], first_offset=2, state=first_state())
    with pytest.raises(StaleBatchError):
        await _commit(store, stale)
    assert await _recorded(store, _ids(stale)) == {}
    assert await store.load_positions(GROUP, TOPIC) == {0: first.batches[0].new_position}
    assert await store.control_version() == 1


def first_state() -> LedgerState:
    """The control state after SETUP (so a halt by the operator is accepted)."""
    state = LedgerState(trust_root=ADMIN.did)
    _plan(SETUP, state=state)
    return state


async def test_an_event_id_recorded_on_another_partition_refuses_the_batch(
    store: LedgerStore,
) -> None:
    first = _plan(SETUP)
    await _commit(store, first)
    again = _plan([SETUP[0]], partition=1)  # the same event, re-published elsewhere
    assert _ids(again) == _ids(first)[:1]
    with pytest.raises(StaleBatchError):
        await _commit(store, again)
    assert set(await store.load_positions(GROUP, TOPIC)) == {0}


async def test_catch_up_reads_only_rows_newer_than_a_version(store: LedgerStore) -> None:
    positions: dict[int, PartitionPosition] = {}
    state = LedgerState(trust_root=ADMIN.did)
    first = _plan(SETUP, positions=positions, state=state)
    assert await _commit(store, first) == 1
    version, held = await store.load_state_snapshot(ADMIN.did)
    positions[0] = first.batches[0].new_position
    second = _plan([_halt("job:9")], first_offset=2, positions=positions, state=state)
    assert await _commit(store, second) == 2
    # what `since` leaves out: a key that changed only before `version`
    del held.keys[ADMIN.did]
    new_version, caught_up = await store.load_state_snapshot(ADMIN.did, since=version, into=held)
    assert new_version == 2 and caught_up is held
    assert set(held.keys) == {OPERATOR.did}
    assert held.halts["job:9"]["active"] is True


async def test_copies_are_tracked_from_the_first_offset_until_recorded(store: LedgerStore) -> None:
    plan = _plan([*SETUP, b"not json"], first_offset=5)
    await _commit(store, plan)
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
    await _commit(store, _plan([*SETUP, b"not json"], first_offset=5))
    # the copies of offsets 7.. were sent, but 5 and 6 not yet: nothing is marked
    await store.record_forwarded(GROUP, TOPIC, {0: 8}, since={0: 7})
    assert [o.offset for o in (await store.unforwarded_outcomes(GROUP, TOPIC, 0))[1]] == [5, 6, 7]
    await store.record_forwarded(GROUP, TOPIC, {0: 7}, since={0: 5})
    await store.record_forwarded(GROUP, TOPIC, {0: 8}, since={0: 7})
    assert await store.unforwarded_outcomes(GROUP, TOPIC, 0) == (8, [])


async def test_marks_of_several_partitions_move_each_by_its_own_since(
    store: LedgerStore,
) -> None:
    await _commit(store, _plan([b"not json", b"{}"], partition=0, first_offset=5))
    await _commit(store, _plan([b"not json", b"{}"], partition=1, first_offset=3))
    # partition 1 was marked from 3 (its recorded mark): it moves; partition 0's
    # mark is still 5, below its since of 6: it stays
    await store.record_forwarded(GROUP, TOPIC, {1: 5, 0: 7}, since={1: 3, 0: 6})
    assert await store.unforwarded_outcomes(GROUP, TOPIC, 1) == (5, [])
    assert [o.offset for o in (await store.unforwarded_outcomes(GROUP, TOPIC, 0))[1]] == [5, 6]


async def test_untracked_copies_count_as_made(store: LedgerStore) -> None:
    await _commit(store, _plan([b"not json", b"{}"], first_offset=5), copies_tracked=False)
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
    records = [IngressRecord(0, i, v) for i, v in enumerate([*SETUP, _halt("job:1")])]
    report = await processor.process(records)
    assert len(report.accepted) == 3
    again = await processor.process(records)  # a re-delivery
    assert again.skipped == 3 and again.accepted == []
    # a second worker of the group catches up on the first one's control changes
    other = VerifyingProcessor(store, group=GROUP, topic=TOPIC, trust_root=None)
    await other.start()
    assert other.state.halts == processor.state.halts
    assert len((await other.process([IngressRecord(1, 0, _halt("job:2"))])).accepted) == 1
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
    first = _plan([*SETUP, _halt("job:7")], positions=positions, state=state)
    await _commit(store, first)
    stored, loaded = await _stored_digests(store)
    assert stored == loaded
    assert stored["keys"] != 0 and stored["halts"] != 0 and stored["tokens"] == 0
    assert loaded == state_digests(state)  # what the rules hold in memory, too
    halted = stored["halts"]
    positions[0] = first.batches[0].new_position
    # a replaced row (the halt engaged again): its old hash is taken out, the new one added
    second = _plan([_halt("job:7")], first_offset=3, positions=positions, state=state)
    await _commit(store, second)
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
    records = [IngressRecord(0, i, v) for i, v in enumerate([*SETUP, _halt("job:1")])]
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
    await _commit(store, _plan(SETUP))
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
    first = _plan([b"not json"])
    await store.commit_batch(BatchCommit(GROUP, TOPIC, first.batches, [_bundle_row("job-1")]))
    positions = await store.load_positions(GROUP, TOPIC)
    second = _plan([b"{}"], first_offset=1, positions=positions)
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


def _shadow_row(reason: str) -> ProjectionRow:
    values = {
        "scope": "job:1",
        "policy_hash_b64u": "A" * 43,
        "active": True,
        "reason": reason,
        "shadowed_by": ADMIN.did,
        "shadowed_at": "2026-02-12T00:00:00.000Z",
        "shadowed_event_id": "00000000-0000-4000-8000-000000000001",
    }
    return ProjectionRow("shadows", "scope", values)


async def test_a_changed_row_of_a_table_without_a_digest_refuses_the_batch_too(
    store: LedgerStore,
) -> None:
    """Shadow policies carry no digest: their rows are checked by a query of their own."""
    first = _plan([b"not json"])
    committed = BatchCommit(GROUP, TOPIC, first.batches, [_shadow_row("a")], control_base=0)
    assert await store.commit_batch(committed) == 1
    positions = await store.load_positions(GROUP, TOPIC)
    second = _plan([b"{}"], first_offset=1, positions=positions)
    stale = BatchCommit(GROUP, TOPIC, second.batches, [_shadow_row("b")], control_base=0)
    refused = "shadows row 'job:1' was changed at control version 1"
    with pytest.raises(StaleBatchError, match=refused):
        await store.commit_batch(stale)
    current = BatchCommit(GROUP, TOPIC, second.batches, [_shadow_row("b")], control_base=1)
    assert await store.commit_batch(current) == 2


@pytest.mark.parametrize(
    ("reads", "refused"),
    [
        (PlanReads(whole=frozenset({"shadows"})), True),
        (PlanReads(keys={"shadows": frozenset({"job:1"})}), True),
        (PlanReads(keys={"shadows": frozenset({"job:2"})}), False),
        (PlanReads(keys={"policies": frozenset({"job:1"})}), False),
        (PlanReads(), False),
    ],
    ids=["whole-table", "that-key", "another-key", "another-table", "nothing"],
)
async def test_a_batch_that_only_read_a_changed_row_is_refused(
    store: LedgerStore, reads: PlanReads, refused: bool
) -> None:
    """A batch writing no control row is checked on what its plan read: a key
    (present or absent), or a whole table, changed after its base refuses it."""
    first = _plan([b"not json"])
    committed = BatchCommit(GROUP, TOPIC, first.batches, [_shadow_row("a")], control_base=0)
    assert await store.commit_batch(committed) == 1
    positions = await store.load_positions(GROUP, TOPIC)
    second = _plan([b"{}"], first_offset=1, positions=positions)
    reader = BatchCommit(GROUP, TOPIC, second.batches, [], control_base=0, control_reads=reads)
    if refused:
        with pytest.raises(StaleBatchError, match="shadows row 'job:1' was changed"):
            await store.commit_batch(reader)
        assert (await store.load_positions(GROUP, TOPIC)) == positions  # nothing written
        reader = BatchCommit(GROUP, TOPIC, second.batches, [], control_base=1, control_reads=reads)
    assert await store.commit_batch(reader) is None
    assert (await store.load_positions(GROUP, TOPIC))[0].next_offset == 2


POLICY_ADMIN = KeyPair.from_seed(bytes([3]) * 32, "policy-admin")


def _by_policy_admin(event_type: str, stream: str, body: dict[str, Any]) -> bytes:
    return sign_event(build_event(event_type, stream, body, POLICY_ADMIN), POLICY_ADMIN).to_bytes()


def _published(purpose: str) -> tuple[str, bytes]:
    document = {"wpc_version": "1", "purpose": purpose}
    digest = policy_hash_b64u(document)
    envelope = sign_wpc(document, POLICY_ADMIN).to_bytes().decode()
    body = {"policy_hash_b64u": digest, "wpc_envelope_json": envelope}
    return digest, _by_policy_admin("policy.published", f"policy:{digest}", body)


async def test_a_control_row_changed_after_the_plan_refuses_the_batch(
    store: LedgerStore,
) -> None:
    state = LedgerState(trust_root=ADMIN.did)
    assert await _commit(store, _plan(SETUP, state=state)) == 1
    ingress_positions = await store.load_positions(GROUP, TOPIC)
    # two lanes plan from the same state at version 1; the control lane commits first
    first = _plan([_halt("job:1")], first_offset=2, positions=ingress_positions, state=state)
    second = _plan([_halt("job:1")], state=copy.deepcopy(state))
    control = BatchCommit(GROUP, "control", second.batches, second.projections, control_base=1)
    assert await store.commit_batch(control) == 2
    stale = BatchCommit(GROUP, TOPIC, first.batches, first.projections, control_base=1)
    with pytest.raises(StaleBatchError, match="halts row 'job:1' was changed at control version 2"):
        await store.commit_batch(stale)
    # nothing of the refused batch was written
    assert await store.control_version() == 2
    assert await _recorded(store, _ids(first)) == {}
    # planned again on the state at version 2, it commits
    current = BatchCommit(GROUP, TOPIC, first.batches, first.projections, control_base=2)
    assert await store.commit_batch(current) == 3


async def _two_lanes(
    store: LedgerStore, setup: Sequence[bytes]
) -> tuple[VerifyingProcessor, VerifyingProcessor]:
    """An ingress and a control processor on ``store``, ``setup`` committed by the first."""
    await store.set_trust_root(ADMIN.did)
    ingress = VerifyingProcessor(store, group=GROUP, topic=TOPIC, trust_root=None)
    await ingress.start()
    records = [IngressRecord(0, i, raw) for i, raw in enumerate(setup)]
    assert len((await ingress.process(records)).accepted) == len(setup)
    control = VerifyingProcessor(store, group=GROUP, topic="control", trust_root=None)
    await control.start()
    return ingress, control


def _control_commits_first(
    store: LedgerStore,
    monkeypatch: pytest.MonkeyPatch,
    control: VerifyingProcessor,
    raw: bytes,
    *,
    offset: int = 0,
) -> list[str]:
    """Let ``control`` commit ``raw`` (at ``offset`` of its topic) inside the next
    ``commit_batch`` of another topic, between that batch's plan and its commit; the
    list returned tells what happened ("committed", then "refused" when the store
    refused the other batch)."""
    commit_batch = store.commit_batch
    seen: list[str] = []

    async def control_first(commit: BatchCommit) -> int | None:
        if commit.topic != control.topic and not seen:
            seen.append("committed")
            record = IngressRecord(0, offset, raw)
            assert len((await control.process([record])).accepted) == 1
        try:
            return await commit_batch(commit)
        except StaleBatchError:
            seen.append("refused")
            raise

    monkeypatch.setattr(store, "commit_batch", control_first)
    return seen


async def test_a_supersede_planned_before_a_revocation_cannot_revive_the_revoked_wpc(
    store: LedgerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ingress lane plans `policy.superseded` OLD -> NEW; before it commits, the
    control lane commits `policy.revoked` NEW. Written from the plan's state, the
    supersede would store NEW as active again (its row carries `supersedes`)."""
    old, publish_old = _published("old")
    new, publish_new = _published("new")
    setup = [*SETUP, _register(POLICY_ADMIN.did, "pa", "policy-admin"), publish_old, publish_new]
    ingress, control = await _two_lanes(store, setup)
    revoke = {"policy_hash_b64u": new, "reason": "leaks secrets"}
    revocation = _by_policy_admin("policy.revoked", f"policy:{new}", revoke)
    supersede = {"old_policy_hash_b64u": old, "new_policy_hash_b64u": new, "reason": "tighter"}
    superseding = _by_policy_admin("policy.superseded", f"policy:{old}", supersede)
    seen = _control_commits_first(store, monkeypatch, control, revocation)
    report = await ingress.process([IngressRecord(0, len(setup), superseding)])
    assert seen == ["committed", "refused"]
    # planned again after the revocation: superseding by a revoked WPC is refused
    assert report.accepted == []
    assert [q.code for q in report.quarantined] == [ReasonCode.WPC_REVOKED]
    _, stored = await store.load_state_snapshot(ADMIN.did)
    assert stored.policies[new]["status"] == "revoked"
    assert stored.policies[old]["status"] == "active"


ISSUER = KeyPair.from_seed(bytes([4]) * 32, "issuer")


async def test_a_token_planned_before_its_wpc_was_revoked_is_planned_again(
    store: LedgerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ingress lane plans `token.issued` pinned to P while P is active; before it
    commits, the control lane commits `policy.revoked` P. Committed as planned, the
    issuance follows the revocation in ledger order, and a replay of the ledger
    refuses it (`WPC_REVOKED`): a break on an honest ledger. It must be planned
    again on the state that holds the revocation instead."""
    wpc, publish = _published("read")
    setup = [
        *SETUP,
        _register(POLICY_ADMIN.did, "pa", "policy-admin"),
        _register(ISSUER.did, "issuer", "issuer"),
        publish,
    ]
    ingress, control = await _two_lanes(store, setup)
    revoke = {"policy_hash_b64u": wpc, "reason": "leaks secrets"}
    revocation = _by_policy_admin("policy.revoked", f"policy:{wpc}", revoke)
    _, issuance = token_issued(ISSUER, wpc)

    seen = _control_commits_first(store, monkeypatch, control, revocation)
    report = await ingress.process([IngressRecord(0, len(setup), issuance)])
    assert seen == ["committed", "refused"]
    assert report.accepted == []
    assert [q.code for q in report.quarantined] == [ReasonCode.WPC_REVOKED]


async def test_an_event_planned_before_its_signer_was_revoked_is_planned_again(
    store: LedgerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch that writes no control row at all (an attestation) only read its
    signer's key: a revocation of that key committed between its plan and its
    commit sends it back to be planned on the state that holds the revocation."""
    ingress, control = await _two_lanes(store, SETUP)
    revoke = {"did": OPERATOR.did, "reason": "key leaked"}
    revocation = sign_event(build_event("key.revoked", f"key:{OPERATOR.did}", revoke, ADMIN), ADMIN)
    attestation = policy_attested(OPERATOR)
    seen = _control_commits_first(store, monkeypatch, control, revocation.to_bytes())
    report = await ingress.process([IngressRecord(0, len(SETUP), attestation)])
    assert seen == ["committed", "refused"]
    assert report.accepted == []
    assert [q.code for q in report.quarantined] == [ReasonCode.SIGNER_REVOKED]


async def test_a_halt_planned_before_a_token_of_its_scope_was_issued_revokes_it_too(
    store: LedgerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control lane plans a full stop of ``sub:agent:a``, which revokes every
    active token of that subject it finds; before it commits, the ingress lane
    commits a new token for agent:a. Committed as planned, the halt would leave that
    token active although the ledger holds it before the halt (the scope it looked
    through changed): it is planned again and revokes the token as well."""
    wpc, publish = _published("scope")
    setup = [
        *SETUP,
        _register(POLICY_ADMIN.did, "pa", "policy-admin"),
        _register(ISSUER.did, "issuer", "issuer"),
        publish,
    ]
    ingress, control = await _two_lanes(store, setup)
    jti, issuance = token_issued(ISSUER, wpc)
    seen = _control_commits_first(store, monkeypatch, ingress, issuance, offset=len(setup))
    report = await control.process([IngressRecord(0, 0, _halt("sub:agent:a"))])
    assert seen == ["committed", "refused"]
    assert len(report.accepted) == 1
    _, stored = await store.load_state_snapshot(ADMIN.did)
    assert stored.tokens[jti]["status"] == "revoked"
