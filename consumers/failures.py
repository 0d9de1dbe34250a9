"""How both engines treat a batch that raises: retry the database, exit on bugs."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

__all__ = ["EXIT_BUG", "EXIT_DATABASE_DOWN", "with_database_retry"]

log = logging.getLogger("claw_ledger.processor")

EXIT_BUG = 70
EXIT_DATABASE_DOWN = 75
_TRANSIENT = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)


T = TypeVar("T")


async def with_database_retry(batch: Callable[[], Awaitable[T]]) -> T:
    """Run ``batch``, retrying database outages with back-off; any other failure ends
    the process.

    Bad input never gets here as an exception (it is quarantined). A failure
    here is the database or a bug: exiting non-zero lets a supervisor
    (``claw-ledger processor supervise``) restart the processor, and the
    positions in Postgres make the restart exactly-once.
    """
    delay = 0.5
    for attempt in range(1, 9):
        try:
            return await batch()
        except _TRANSIENT as exc:
            log.warning(
                "database unavailable (attempt %d): %s; retry in %.1fs", attempt, exc, delay
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
        except Exception:
            log.critical(
                "processor failed; exiting so that a supervisor restarts it", exc_info=True
            )
            os._exit(EXIT_BUG)
    log.critical("database unavailable for too long; exiting")
    os._exit(EXIT_DATABASE_DOWN)
