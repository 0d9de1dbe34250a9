"""The processor's heartbeat row: that it is alive, the control version its state
holds, and what its commits took (ADR 0015).

The authorize service fails closed on a missing beat (``STATE_STALE``), and
``status`` and ``/metrics`` read the commit timings from the same row.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid

from storage.protocol import CommitTimings, LedgerStore

__all__ = ["HEARTBEAT_FAILURE_LOG_SECONDS", "HEARTBEAT_INTERVAL_SECONDS", "Heartbeat"]

log = logging.getLogger("claw_ledger.processor")

#: at most one heartbeat row write per this many seconds (ADR 0015)
HEARTBEAT_INTERVAL_SECONDS = 0.5
#: while beats keep failing (a database outage), one warning per this many seconds
HEARTBEAT_FAILURE_LOG_SECONDS = 30.0


class Heartbeat:
    """One processor's beats and the commit timings they carry."""

    def __init__(self, store: LedgerStore, group: str, topic: str) -> None:
        self._store = store
        self.group = group
        #: names this processor's heartbeat row: several processes share a ledger,
        #: and one process runs a processor per lane (``topic``)
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{topic}:{uuid.uuid4().hex[:8]}"
        self._last_beat = -HEARTBEAT_INTERVAL_SECONDS
        #: beats failed in a row, and when the last of them was logged
        self._failures = 0
        self._failure_logged = 0.0
        #: committed batches, their summed and longest (since the last beat) durations
        self._batches = 0
        self._batch_seconds = 0.0
        self._batch_max: float | None = None

    def committed(self, seconds: float) -> None:
        """A batch was committed; it took ``seconds`` (decide + commit transaction)."""
        self._batches += 1
        self._batch_seconds += seconds
        self._batch_max = max(self._batch_max or 0.0, seconds)

    @property
    def timings(self) -> CommitTimings:
        """Batches committed so far and what they took (decide + commit transaction)."""
        return CommitTimings(self._batches, self._batch_seconds, self._batch_max)

    async def beat(self, control_version: int, *, force: bool = False) -> None:
        """Write the row, at most every :data:`HEARTBEAT_INTERVAL_SECONDS` unless
        ``force``. A failure is logged only: a missing beat is what makes authorize
        fail closed. During an outage the first failure is logged, then one line
        every :data:`HEARTBEAT_FAILURE_LOG_SECONDS`, then the recovery."""
        moment = time.monotonic()
        if not force and moment - self._last_beat < HEARTBEAT_INTERVAL_SECONDS:
            return
        self._last_beat = moment
        try:
            await self._store.heartbeat(self.worker_id, self.group, control_version, self.timings)
        except Exception as exc:
            self._failures += 1
            since_logged = moment - self._failure_logged
            if self._failures == 1 or since_logged >= HEARTBEAT_FAILURE_LOG_SECONDS:
                self._failure_logged = moment
                log.warning("heartbeat not written (%d in a row): %s", self._failures, exc)
        else:
            if self._failures:
                log.warning("heartbeat written again after %d failed", self._failures)
                self._failures = 0
            self._batch_max = None
