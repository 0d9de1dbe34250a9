"""A batch committing while another lane's control commit is in flight (ADR 0029).

Two processors on their own connection pools, as two lanes or two processes
are: the control lane's commit is held open just after it took the control
order lock; the ingress batch, planned on the state before it, must wait for
that commit, then find what its plan read changed and be planned again. A
replay of the ledger afterwards, in ``position`` order, must agree with every
decision and with the live projections.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

import storage.postgres
from claw_ledger.config import load_settings
from claw_ledger.replaying import ReplayRequest, run_replay
from consumers.processor import VerifyingProcessor
from ledger.batch import IngressRecord
from ledger.crypto import KeyPair
from ledger.errors import ReasonCode
from ledger.wpc import policy_hash_b64u, sign_wpc
from storage.postgres import PostgresLedgerStore
from tests.fixtures_events import policy_attested, signed_event, token_issued

pytestmark = pytest.mark.integration

ADMIN = KeyPair.from_seed(bytes([11]) * 32, "admin")
OPERATOR = KeyPair.from_seed(bytes([12]) * 32, "operator")
POLICY_ADMIN = KeyPair.from_seed(bytes([13]) * 32, "policy-admin")
ISSUER = KeyPair.from_seed(bytes([14]) * 32, "issuer")
WPC_DOCUMENT = {"wpc_version": "1", "purpose": "control order"}
WPC = policy_hash_b64u(WPC_DOCUMENT)


def _register(key: KeyPair, role: str) -> bytes:
    body = {"did": key.did, "name": role, "roles": [role]}
    return signed_event("key.registered", f"key:{key.did}", body, ADMIN)


SETUP = [
    _register(ADMIN, "admin"),
    _register(OPERATOR, "operator"),
    _register(POLICY_ADMIN, "policy-admin"),
    _register(ISSUER, "issuer"),
    signed_event(
        "policy.published",
        f"policy:{WPC}",
        {
            "policy_hash_b64u": WPC,
            "wpc_envelope_json": sign_wpc(WPC_DOCUMENT, POLICY_ADMIN).to_bytes().decode(),
        },
        POLICY_ADMIN,
    ),
]


#: (what the control lane commits, what the ingress batch holds, its verdict once
#: planned again): a batch that writes a control row (it bumps the version and
#: waits for the lock) and one that only reads them (it waits FOR SHARE)
CASES: dict[str, tuple[Callable[[], bytes], Callable[[], bytes], ReasonCode]] = {
    "writer": (
        lambda: signed_event(
            "policy.revoked",
            f"policy:{WPC}",
            {"policy_hash_b64u": WPC, "reason": "leaks secrets"},
            POLICY_ADMIN,
        ),
        lambda: token_issued(ISSUER, WPC)[1],
        ReasonCode.WPC_REVOKED,
    ),
    "reader": (
        lambda: signed_event(
            "key.revoked", f"key:{OPERATOR.did}", {"did": OPERATOR.did, "reason": "leak"}, ADMIN
        ),
        lambda: policy_attested(OPERATOR),
        ReasonCode.SIGNER_REVOKED,
    ),
}


@pytest_asyncio.fixture(loop_scope="session")
async def two_stores(fresh_database: str) -> AsyncIterator[tuple[PostgresLedgerStore, ...]]:
    stores = (
        await PostgresLedgerStore.open(fresh_database),
        await PostgresLedgerStore.open(fresh_database),
    )
    try:
        yield stores
    finally:
        for store in stores:
            await store.close()


async def _lock_waiters(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    finally:
        await conn.close()


async def _waits_for_a_lock(url: str, batch: asyncio.Task[Any], what: str) -> None:
    """Until a backend of ``url`` waits for a lock (``batch``, the only candidate)."""
    deadline = time.monotonic() + 10
    while await _lock_waiters(url) == 0:
        assert not batch.done(), f"{what} committed past the held lock"
        assert time.monotonic() < deadline, f"{what} never waited for the held lock"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("case", sorted(CASES))
async def test_a_batch_waits_for_a_control_commit_in_flight_and_the_ledger_replays_clean(
    case: str,
    fresh_database: str,
    two_stores: tuple[PostgresLedgerStore, PostgresLedgerStore],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    control_event, ingress_event, verdict = CASES[case]
    ingress_store, control_store = two_stores
    await ingress_store.set_trust_root(ADMIN.did)
    ingress = VerifyingProcessor(ingress_store, group="g", topic="ingress", trust_root=None)
    await ingress.start()
    records = [IngressRecord(0, i, raw) for i, raw in enumerate(SETUP)]
    assert len((await ingress.process(records)).accepted) == len(SETUP)
    control = VerifyingProcessor(control_store, group="g", topic="control", trust_root=None)
    await control.start()

    # the next control bump (the control lane's) holds its lock until released
    bump = storage.postgres.bump_control_version
    locked, release = asyncio.Event(), asyncio.Event()

    async def held_bump(conn: asyncpg.Connection) -> int:
        version = await bump(conn)
        if not locked.is_set():
            locked.set()
            await release.wait()
        return version

    monkeypatch.setattr(storage.postgres, "bump_control_version", held_bump)
    control_commit = asyncio.create_task(control.process([IngressRecord(0, 0, control_event())]))
    try:
        await asyncio.wait_for(locked.wait(), 10)
        # planned now, on the state without the control event
        ingress_batch = asyncio.create_task(
            ingress.process([IngressRecord(0, len(SETUP), ingress_event())])
        )
        await _waits_for_a_lock(fresh_database, ingress_batch, "the ingress batch")
    finally:
        release.set()  # whatever happened, the held transaction ends (the pools can close)
        accepted = (await control_commit).accepted
    assert len(accepted) == 1
    report = await ingress_batch
    assert report.accepted == []
    assert [q.code for q in report.quarantined] == [verdict]

    settings = load_settings(database_url=fresh_database, state_dir=tmp_path, env={}, cwd=tmp_path)
    replayed = await run_replay(settings, ReplayRequest(compare=True, jobs=1))
    assert replayed.fold.broken is None
    assert replayed.diffs == []
    assert replayed.events == len(SETUP) + 1


async def test_a_full_stop_of_everything_is_planned_holding_the_order_and_never_refused(
    fresh_database: str,
    two_stores: tuple[PostgresLedgerStore, PostgresLedgerStore],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """A full stop of ``*`` reads the whole token table: planned optimistically, a
    token issued by the ingress lane inside its window would refuse it, and a
    steady stream of them every time. It is planned and committed holding the
    control order instead: the issuance waits, the halt commits at the first
    attempt, and the issuance, planned again after it, is refused."""
    ingress_store, control_store = two_stores
    await ingress_store.set_trust_root(ADMIN.did)
    ingress = VerifyingProcessor(ingress_store, group="g", topic="ingress", trust_root=None)
    await ingress.start()
    _, first_token = token_issued(ISSUER, WPC)
    setup = [*SETUP, first_token]
    records = [IngressRecord(0, i, raw) for i, raw in enumerate(setup)]
    assert len((await ingress.process(records)).accepted) == len(setup)
    control = VerifyingProcessor(control_store, group="g", topic="control", trust_root=None)
    await control.start()
    loads = control.control.full_state_loads

    # pause the halt's plan once it reads the whole token table (inside the hold)
    whole_tables = control.control.whole_tables
    planning, release = asyncio.Event(), asyncio.Event()

    async def paused(tables: Any) -> dict[str, dict[str, Any]]:
        rows = await whole_tables(tables)
        planning.set()
        await release.wait()
        return rows

    monkeypatch.setattr(control.control, "whole_tables", paused)
    halt = signed_event("agent.halted", "halt:*", {"target": "*", "reason": "incident"}, OPERATOR)
    halting = asyncio.create_task(control.process([IngressRecord(0, 0, halt)]))
    jti, second_token = token_issued(ISSUER, WPC)
    try:
        await asyncio.wait_for(planning.wait(), 10)
        issuing = asyncio.create_task(ingress.process([IngressRecord(0, len(setup), second_token)]))
        await _waits_for_a_lock(fresh_database, issuing, "the issuance")
    finally:
        release.set()
        halted = await halting
    assert len(halted.accepted) == 1
    assert control.control.full_state_loads == loads  # never refused, never reloaded
    report = await issuing
    assert [q.code for q in report.quarantined] == [ReasonCode.AGENT_HALTED]
    _, state = await ingress_store.load_state_snapshot(ADMIN.did)
    assert all(token["status"] == "revoked" for token in state.tokens.values())
    assert jti not in state.tokens

    settings = load_settings(database_url=fresh_database, state_dir=tmp_path, env={}, cwd=tmp_path)
    replayed = await run_replay(settings, ReplayRequest(compare=True, jobs=1))
    assert replayed.fold.broken is None
    assert replayed.diffs == []
