"""The authorize service's storage on a real database: heartbeats by the
database clock, nonces once per token, and a notification at every control commit."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from consumers.processor import VerifyingProcessor
from storage.authorize_queries import AuthorizeStore
from storage.memory import MemoryLedgerStore
from storage.postgres import PostgresLedgerStore, set_trust_root

pytestmark = pytest.mark.integration


async def test_heartbeat_nonces_and_notifications(fresh_database: str) -> None:
    store = await AuthorizeStore.open(fresh_database)
    ledger = await PostgresLedgerStore.open(fresh_database)
    try:
        assert await store.heartbeat() is None
        await ledger.heartbeat("worker-a", "group", 7)
        beat = await store.heartbeat()
        assert beat is not None and beat.control_version == 7 and beat.age_seconds < 60
        assert await store.claim_nonce("jti-1", "n1", "d1") is True
        assert await store.claim_nonce("jti-1", "n1", "d2") is False
        assert await store.claim_nonce("jti-2", "n1", "d3") is True
        woken = asyncio.Event()
        assert await store.listen(woken.set)
        conn = await asyncpg.connect(fresh_database)
        try:
            await set_trust_root(conn, "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK")
        finally:
            await conn.close()
        await asyncio.wait_for(woken.wait(), 10)
        assert await store.control_version() == 1
    finally:
        await store.close()
        await ledger.close()


async def test_a_processor_beats_with_the_control_version_of_its_state() -> None:
    store = MemoryLedgerStore()
    await store.set_trust_root("did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK")
    processor = VerifyingProcessor(store, group="g", topic="t", trust_root=None)
    await processor.start()
    await processor.heartbeat(force=True)
    assert store.heartbeats == {processor.worker_id: ("g", 1)}
