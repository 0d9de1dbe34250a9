"""The API key cache (ADR 0028) on the real database: rows kept only while the
service listens, dropped at every change to ``api_keys`` (migration 0020), and
never kept when a change was announced while the row was being read."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest

from claw_ledger.api.auth import KEY_MAX_AGE_SECONDS, KeyCache
from claw_ledger.services.process import free_port
from tests.fixtures_api import ApiLedger, create_key

pytestmark = pytest.mark.integration


class _CountingPool:
    """The reader's pool, counting the connections asked for (one per row read)."""

    def __init__(self, pool: asyncpg.Pool, during_read: Any = None) -> None:
        self.pool = pool
        self.reads = 0
        self.during_read = during_read

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        self.reads += 1
        async with self.pool.acquire() as conn:
            yield conn
        if self.during_read is not None:
            self.during_read()


@asynccontextmanager
async def _cache(
    api: ApiLedger, *, url: str | None = None, during_read: Any = None
) -> AsyncIterator[tuple[KeyCache, _CountingPool]]:
    """A cache on ``url`` (the reader's by default) and a counting pool of the reader."""
    pool = await asyncpg.create_pool(api.reader_url, min_size=1, max_size=2)
    cache = KeyCache(url or api.reader_url)
    counting = _CountingPool(pool)
    if during_read is not None:
        counting.during_read = during_read(cache)
    try:
        yield cache, counting
    finally:
        await cache.close()
        await pool.close()


async def _listening(cache: KeyCache) -> None:
    cache.start()
    deadline = time.monotonic() + 10
    while not cache.listening:
        assert time.monotonic() < deadline, "the cache never listened"
        await asyncio.sleep(0.02)


async def _until(check: Any, timeout: float = 5.0) -> float:
    began = time.monotonic()
    while not await check():
        assert time.monotonic() - began < timeout
        await asyncio.sleep(0.01)
    return time.monotonic() - began


def test_a_kept_key_is_not_read_again_and_a_revocation_drops_it(api_ledger: ApiLedger) -> None:
    env = api_ledger.harness.env
    name = f"cache-{uuid.uuid4().hex[:8]}"
    key = create_key(env, name, "reader")

    async def scenario() -> tuple[int, float]:
        async with _cache(api_ledger) as (cache, counting):
            await _listening(cache)
            for _ in range(20):
                caller = await cache.caller(counting, key)
                assert caller is not None and caller.name == name and caller.role == "reader"
            reads = counting.reads
            owner = await api_ledger.owner()
            try:
                await owner.execute("UPDATE api_keys SET revoked_at = now() WHERE name = $1", name)
            finally:
                await owner.close()

            async def refused() -> bool:
                return await cache.caller(counting, key) is None

            return reads, await _until(refused)

    reads, took = asyncio.run(scenario())
    assert reads == 1
    assert took < 5


def test_nothing_is_kept_without_listening(api_ledger: ApiLedger) -> None:
    key = api_ledger.keys["reader"]

    async def scenario() -> int:
        # nothing listens on this port: the cache cannot listen, so it reads every time
        nowhere = f"postgresql://nobody@127.0.0.1:{free_port()}/none"
        async with _cache(api_ledger, url=nowhere) as (cache, counting):
            cache.start()
            for _ in range(5):
                assert await cache.caller(counting, key) is not None
                await asyncio.sleep(0.05)
            assert not cache.listening
            return counting.reads

    assert asyncio.run(scenario()) == 5


def test_a_row_read_while_a_change_is_announced_is_not_kept(api_ledger: ApiLedger) -> None:
    key = api_ledger.keys["reader"]

    async def scenario() -> int:
        # an announcement that lands while the row is on its way
        async with _cache(api_ledger, during_read=lambda cache: cache.forget) as (cache, counting):
            await _listening(cache)
            for _ in range(3):
                assert await cache.caller(counting, key) is not None
            return counting.reads

    assert asyncio.run(scenario()) == 3


def test_a_lost_listening_connection_drops_every_kept_row(api_ledger: ApiLedger) -> None:
    key = api_ledger.keys["reader"]

    async def scenario() -> list[int]:
        reads = []
        async with _cache(api_ledger) as (cache, counting):
            await _listening(cache)
            await cache.caller(counting, key)
            await cache.caller(counting, key)
            reads.append(counting.reads)
            owner = await api_ledger.owner()
            try:
                await owner.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = 'claw-ledger-api-keys'"
                    " AND datname = current_database()"
                )
            finally:
                await owner.close()

            async def stopped() -> bool:
                return not cache.listening

            await _until(stopped)
            await cache.caller(counting, key)
            reads.append(counting.reads)
        return reads

    assert asyncio.run(scenario()) == [1, 2]


def test_a_kept_row_is_read_again_after_its_age_bound(api_ledger: ApiLedger) -> None:
    key = api_ledger.keys["reader"]
    now = [0.0]

    async def scenario() -> list[int]:
        reads = []
        async with _cache(api_ledger) as (cache, counting):
            cache._clock = lambda: now[0]
            await _listening(cache)
            for moment in (0.0, 5.0, KEY_MAX_AGE_SECONDS - 0.1, KEY_MAX_AGE_SECONDS + 0.1):
                now[0] = moment
                await cache.caller(counting, key)
                reads.append(counting.reads)
        return reads

    # read at 0, kept at 5 and just before the bound, read again just after it
    assert asyncio.run(scenario()) == [1, 1, 1, 2]
