"""The contract suite's store: every test runs on Postgres (a fresh migrated database)
and on the in-memory store."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from storage.memory import MemoryLedgerStore
from storage.postgres import PostgresLedgerStore
from storage.protocol import LedgerStore


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
