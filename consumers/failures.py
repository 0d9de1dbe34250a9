"""How both engines treat a batch that raises: retry the database, fail on bugs.

The helpers only raise; :mod:`consumers.runner` turns a :class:`BatchFailedError`
into the process's exit code, so that a supervisor restarts it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from ledger.errors import ControlPlaneTamperedError, LedgerError, TopicRewoundError
from storage import DATABASE_UNAVAILABLE

__all__ = [
    "EXIT_BUG",
    "EXIT_DATABASE_DOWN",
    "EXIT_KAFKA_DOWN",
    "EXIT_REFUSED",
    "BatchFailedError",
    "DatabaseUnavailableError",
    "KafkaUnavailableError",
    "out_of_range_positions",
    "rewound_error",
    "with_database_retry",
]

log = logging.getLogger("claw_ledger.processor")

EXIT_BUG = 70
EXIT_DATABASE_DOWN = 75
EXIT_KAFKA_DOWN = 69
#: the processor refuses to read on, and a restart would meet the same refusal
#: (``processor supervise`` does not restart it); the CLI's exit for a LedgerError
EXIT_REFUSED = 2
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
        except (ControlPlaneTamperedError, TopicRewoundError):
            raise  # not a bug to restart on: the processor refuses, as at start (exit 2)
        except Exception as exc:
            raise BatchFailedError(f"processor failed: {type(exc).__name__}: {exc}") from exc
    raise DatabaseUnavailableError(f"database unavailable for too long: {last}") from last


def out_of_range_positions(exc: Exception) -> dict[Any, int] | None:
    """The ``{TopicPartition: fetch position}`` aiokafka's ``OffsetOutOfRangeError``
    carries (``None``: not in the shape this client version gives)."""
    positions = exc.args[0] if exc.args else None
    return positions if isinstance(positions, dict) else None


def rewound_error(topic: str, rewound: dict[int, tuple[int, int]]) -> TopicRewoundError:
    """The error that stops a processor meeting ``rewound`` partitions of ``topic``
    (``{partition: (end, next offset)}``, :func:`ledger.batch.rewound_partitions`)."""
    where = ", ".join(
        f"partition {p} ends at offset {end}, the ledger has read to {read}"
        for p, (end, read) in rewound.items()
    )
    return TopicRewoundError(
        f"{topic} holds fewer records than the ledger has read ({where}): the topic was"
        " deleted and created again, or truncated; refusing to read it, since every record"
        " below the ledger's position would be skipped as already read",
        hint="restore the topic, or run a new ledger on it (a new database and a new"
        " topic prefix); records published to the new topic were not read",
    )
