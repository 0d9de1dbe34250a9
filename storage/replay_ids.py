"""The event ids a replay has seen, in bounded memory: the newest in a dict,
the rest in a temporary SQLite file.

A replay of the ingress topic meets real duplicates (re-sent events) at any
distance, so it must remember every id it accepted; a million ids with their
payload hashes is over 200 MB of Python objects. This keeps at most
``capacity`` of them in memory and moves the rest, a batch at a time, to an
indexed table on disk that is deleted when closed.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile

__all__ = ["SpillingEventIds"]


class SpillingEventIds:
    """:class:`ledger.replay.EventIds` with at most ``capacity`` ids in memory."""

    def __init__(self, capacity: int = 100_000, directory: str | None = None) -> None:
        self.capacity = capacity
        self._recent: dict[str, str] = {}
        self._spilled = 0
        handle, self.path = tempfile.mkstemp(
            prefix="claw-replay-ids-", suffix=".sqlite", dir=directory
        )
        os.close(handle)
        self._db = sqlite3.connect(self.path)
        # a scratch file: losing it in a crash costs nothing, so no journal, no fsync
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.execute(
            "CREATE TABLE ids (event_id TEXT PRIMARY KEY, payload_hash TEXT) WITHOUT ROWID"
        )

    @property
    def spilled(self) -> int:
        """How many ids are on disk."""
        return self._spilled

    def get(self, event_id: str) -> str | None:
        known = self._recent.get(event_id)
        if known is not None or not self._spilled:
            return known
        row = self._db.execute(
            "SELECT payload_hash FROM ids WHERE event_id = ?", (event_id,)
        ).fetchone()
        return None if row is None else str(row[0])

    def add(self, event_id: str, payload_hash: str) -> None:
        self._recent[event_id] = payload_hash
        if len(self._recent) >= self.capacity:
            with self._db:
                self._db.executemany(
                    "INSERT OR REPLACE INTO ids VALUES (?, ?)", self._recent.items()
                )
            self._spilled += len(self._recent)
            self._recent.clear()

    def close(self) -> None:
        self._db.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def __enter__(self) -> SpillingEventIds:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
