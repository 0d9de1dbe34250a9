"""How both engines treat a batch that raises: retry the database, fail on bugs.

The helpers only raise; :mod:`consumers.runner` turns a :class:`BatchFailedError`
into the process's exit code, so that a supervisor restarts it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from ledger.errors import ControlPlaneTamperedError, LedgerError
from storage import DATABASE_UNAVAILABLE

__all__ = [
    "EXIT_BUG",
    "EXIT_DATABASE_DOWN",
    "EXIT_KAFKA_DOWN",
    "BatchFailedError",
    "DatabaseUnavailableError",
    "KafkaUnavailableError",
    "with_database_retry",
]

log = logging.getLogger("claw_ledger.processor")

EXIT_BUG = 70
EXIT_DATABASE_DOWN = 75
EXIT_KAFKA_DOWN = 69
#: the database rolled the batch's transaction back (a deadlock, a serialization
#: failure): nothing was written, and the same batch is tried again at once
_ROLLED_BACK = (asyncpg.TransactionRollbackError,)
_ROLLED_BACK_PAUSE = 0.05


class BatchFailedError(LedgerError):
    """A batch failed in a way only a restart can fix (a bug, or the database
    gone too long). ``exit_code`` is what the processor exits with
    (EX_SOFTWARE); the positions in Postgres make the restart exactly-once."""

    exit_code = EXIT_BUG


class DatabaseUnavailableError(BatchFailedError):
    """The database stayed unreachable through every retry (EX_TEMPFAIL)."""

    exit_code = EXIT_DATABASE_DOWN


class KafkaUnavailableError(BatchFailedError):
    """Kafka did not answer through every attempt at start (EX_UNAVAILABLE). Once
    running, the Kafka client rides out broker outages itself."""

    exit_code = EXIT_KAFKA_DOWN


T = TypeVar("T")


async def with_database_retry(batch: Callable[[], Awaitable[T]]) -> T:
    """Run ``batch``, retrying database outages with back-off.

    Bad input never gets here as an exception (it is quarantined). A failure
    here is the database or a bug: raises :class:`DatabaseUnavailableError`
    after 8 attempts, and :class:`BatchFailedError` (from the cause) at once
    on anything else. A transaction the database rolled back (deadlock,
    serialization failure) is tried again after a short pause, within the
    same 8 attempts: the stored positions make the retry exactly-once.
    """
    delay = 0.5
    last: BaseException | None = None
    for attempt in range(1, 9):
        try:
            return await batch()
        except DATABASE_UNAVAILABLE as exc:
            last = exc
            log.warning(
                "database unavailable (attempt %d): %s; retry in %.1fs", attempt, exc, delay
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
        except _ROLLED_BACK as exc:
            last = exc
            log.warning("batch rolled back by the database (attempt %d): %s", attempt, exc)
            await asyncio.sleep(_ROLLED_BACK_PAUSE)
        except ControlPlaneTamperedError:
            raise  # not a bug to restart on: the processor refuses, as at start (exit 2)
        except Exception as exc:
            raise BatchFailedError(f"processor failed: {type(exc).__name__}: {exc}") from exc
    raise DatabaseUnavailableError(f"database unavailable for too long: {last}") from last
