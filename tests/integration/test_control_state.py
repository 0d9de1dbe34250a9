"""Two processors of one group share the control plane through Postgres.

Each processor keeps the control state in memory; when the other commits a
control change, it catches up by reading only the rows written since the
version it holds (migration 0004, ADR 0005). Real Postgres; the records are
handed to the processors directly, as an engine would.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from consumers.processor import BatchReport, IngressRecord, VerifyingProcessor
from ledger.control_digest import CONTROL_DIGEST_TABLES, state_digests
from ledger.crypto import KeyPair
from ledger.events import build_event, sign_event
from storage import control_cache_sql
from storage import postgres as store
from tests.core._helpers import published_wpc_body

pytestmark = pytest.mark.integration

ADMIN = KeyPair.generate("admin")
OPERATOR = KeyPair.generate("operator")
POLICY_ADMIN = KeyPair.generate("policy-admin")
RESUME_WPC, _WPC_BODY = published_wpc_body(POLICY_ADMIN)


def _raw(key: KeyPair, event_type: str, stream: str, body: Mapping[str, Any]) -> bytes:
    return sign_event(build_event(event_type, stream, body, key), key).to_bytes()


def _register(did: str, name: str, role: str) -> bytes:
    return _raw(ADMIN, "key.registered", f"key:{did}", {"did": did, "name": name, "roles": [role]})


def _halt(key: KeyPair, target: str) -> bytes:
    return _raw(key, "agent.halted", f"halt:{target}", {"target": target, "reason": "drill"})


def _resume(key: KeyPair, target: str) -> bytes:
    body = {"target": target, "reason": "clear", "policy_hash_b64u": RESUME_WPC}
    return _raw(key, "agent.resumed", f"halt:{target}", body)


#: the keys the tests sign with and the WPC their resumes name
_SIGNERS_AND_RESUME_POLICY = (
    _register(ADMIN.did, "admin", "admin"),
    _register(OPERATOR.did, "operator", "operator"),
    _register(POLICY_ADMIN.did, "policy-admin", "policy-admin"),
    _raw(POLICY_ADMIN, "policy.published", f"policy:{RESUME_WPC}", _WPC_BODY),
)


class Feeder:
    """One processor and the next offset of the partition it owns."""

    def __init__(self, processor: VerifyingProcessor, partition: int) -> None:
        self.processor = processor
        self.partition = partition
        self._offsets = itertools.count()

    async def feed(self, *values: bytes) -> BatchReport:
        records = [IngressRecord(self.partition, next(self._offsets), v) for v in values]
        return await self.processor.process(records)


@pytest_asyncio.fixture(loop_scope="session")
async def pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    conn = await asyncpg.connect(fresh_database)
    try:
        await store.set_trust_root(conn, ADMIN.did)
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(fresh_database, min_size=2, init=store.init_connection)
    yield pool
    await pool.close()


async def _processors(pool: asyncpg.Pool) -> tuple[Feeder, Feeder]:
    feeders = []
    for partition in (0, 1):
        processor = VerifyingProcessor(
            store.PostgresLedgerStore(pool), group="verifier", topic="ingress", trust_root=None
        )
        await processor.start()
        feeders.append(Feeder(processor, partition))
    return feeders[0], feeders[1]


async def _state_from_database(pool: asyncpg.Pool) -> Any:
    async with pool.acquire() as conn:
        return await store.load_state(conn, ADMIN.did)


async def test_each_processor_sees_the_others_control_changes_by_reading_only_those(
    pool: asyncpg.Pool,
) -> None:
    a, b = await _processors(pool)
    report = await a.feed(
        _register(ADMIN.did, "admin", "admin"), _register(OPERATOR.did, "operator", "operator")
    )
    assert len(report.accepted) == 2, report

    # b's state was loaded before a registered the operator
    report = await b.feed(_halt(OPERATOR, "job:7"))
    assert len(report.accepted) == 1, report

    revoke = _raw(
        ADMIN, "key.revoked", f"key:{OPERATOR.did}", {"did": OPERATOR.did, "reason": "rotated"}
    )
    assert len((await b.feed(revoke)).accepted) == 1
    report = await a.feed(_halt(OPERATOR, "job:8"))
    assert [q.code for q in report.quarantined] == ["SIGNER_REVOKED"]

    expected = await _state_from_database(pool)
    for feeder in (a, b):
        state = feeder.processor.control.state
        assert state.keys == expected.keys
        assert state.halts == expected.halts
        # the whole control plane was read once, at start; after that only changes
        assert feeder.processor.control.full_state_loads == 1


async def test_a_commit_that_lands_between_the_version_check_and_the_commit_is_caught_up(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = await _processors(pool)
    await a.feed(*_SIGNERS_AND_RESUME_POLICY)
    real_version_and_recorded = control_cache_sql.version_and_recorded
    raced = False

    async def version_then_other_commit(
        conn: asyncpg.Connection, event_ids: Sequence[str]
    ) -> tuple[int, dict[str, str]]:
        nonlocal raced
        read = await real_version_and_recorded(conn, event_ids)
        if not raced:
            raced = True
            # b commits its control change after a has read the version
            assert len((await b.feed(_halt(OPERATOR, "job:b"))).accepted) == 1
        return read

    monkeypatch.setattr(control_cache_sql, "version_and_recorded", version_then_other_commit)
    assert len((await a.feed(_halt(OPERATOR, "job:a"))).accepted) == 1
    assert raced
    monkeypatch.setattr(control_cache_sql, "version_and_recorded", real_version_and_recorded)

    # a did not see b's halt when it decided, so its state must not claim the
    # version of its own commit; its next batch catches up and can resume job:b
    report = await a.feed(_resume(OPERATOR, "job:b"))
    assert len(report.accepted) == 1, report
    expected = await _state_from_database(pool)
    assert a.processor.control.state.halts == expected.halts
    assert expected.halts["job:b"]["active"] is False
    assert expected.halts["job:a"]["active"] is True
    assert a.processor.control.full_state_loads == 1


async def test_control_commits_racing_on_the_same_rows_keep_the_stored_digests_true(
    pool: asyncpg.Pool,
) -> None:
    """The digest move reads the digest and the old rows without a lock of its own
    (the version bump's row lock orders the writers, ADR 0026): two processors
    halting and resuming the same jobs at once must leave every stored digest
    equal to the digest of the rows."""
    a, b = await _processors(pool)
    await a.feed(*_SIGNERS_AND_RESUME_POLICY)
    targets = [f"job:shared-{n}" for n in range(6)]
    accepted = 0
    for make in (_halt, _resume) * 4:
        reports = await asyncio.gather(
            a.feed(*(make(OPERATOR, t) for t in targets)),
            b.feed(*(make(OPERATOR, t) for t in reversed(targets))),
        )
        accepted += sum(len(r.accepted) for r in reports)
    async with pool.acquire() as conn:
        stored = await store.control_digests(conn)
        state = await store.load_state(conn, ADMIN.did)
    assert accepted >= 8 * len(targets)  # at least one side's change landed every round
    assert all(stored[table] is not None for table in CONTROL_DIGEST_TABLES)
    assert {table: stored[table] for table in CONTROL_DIGEST_TABLES} == state_digests(state)
