"""Archiving old events (ADR 0021): list the partitions of ``events``, detach the
oldest after verifying it, and say what range is archived.

Shared by ``claw-ledger archive``, ``audit`` and ``replay``. Detaching runs as
the database owner (the writer and reader cannot alter ``events``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from claw_ledger.config import Settings, effective_database_url
from ledger.attributes import attributes

__all__ = ["ArchiveResult", "archive_status", "detach_oldest", "resize_partitions"]


@dataclass(frozen=True)
class ArchiveResult:
    partition: str
    position_from: int
    position_to: int
    events: int
    boundary: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        fields = ("partition", "position_from", "position_to", "events", "boundary")
        return attributes(self, *fields) | {"export": export_hint(self.partition)}


def export_hint(partition: str) -> str:
    return (
        f"pg_dump --table={partition} --format=custom --file={partition}.dump DBURL"
        f" && psql DBURL -c 'DROP TABLE {partition}'"
    )


async def archive_status(settings: Settings) -> dict[str, Any]:
    """The partitions and the newest boundary, read as the reader."""
    from storage.partitions import archive_boundary, list_partitions
    from storage.projection_queries import connection

    async with (
        connection(effective_database_url(settings, role="reader")) as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        partitions = await list_partitions(conn)
        boundary = await archive_boundary(conn)
        settings_row = await conn.fetchrow(
            "SELECT partition_rows, partitions_ahead FROM event_partitioning WHERE id = 1"
        )
    return {
        "partition_rows": settings_row["partition_rows"],
        "partitions_ahead": settings_row["partitions_ahead"],
        "partitions": [p.to_json() for p in partitions],
        "archived": None if boundary is None else boundary.to_json(),
    }


async def resize_partitions(settings: Settings, rows: int) -> int:
    """Owner: partitions cut from now on hold ``rows`` positions; the headroom left."""
    from storage.partitions import set_partition_rows
    from storage.projection_queries import connection

    async with connection(effective_database_url(settings)) as conn:
        return await set_partition_rows(conn, rows)


#: events between two progress reports of a detach
_PROGRESS_EVERY = 1000


async def detach_oldest(
    settings: Settings,
    *,
    name: str | None = None,
    before: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ArchiveResult:
    """Verify the oldest attached partition by replaying it onto the previous cut's
    state, then record the new boundary and detach it (owner). ``progress(events
    verified, events in the partition)`` is told every few events.

    Raises :class:`ledger.errors.ConfigError` when the partition is not the
    oldest, still filling, or does not verify (nothing is detached then).
    """
    import asyncpg

    from ledger.errors import ConfigError, RejectedError
    from ledger.replay import RecentEventIds, Replay
    from storage.partitions import (
        archive_boundary,
        detach_partition,
        merge_heads,
        partition_heads,
        seal_oldest_partition,
    )
    from storage.postgres import trust_root
    from storage.projection_queries import open_connection
    from storage.replay_queries import iter_events

    conn = await open_connection(effective_database_url(settings))
    try:
        sealed = await seal_oldest_partition(conn, name=name, before=before)
        part = sealed.partition
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            previous = await archive_boundary(conn)
            # event_keys holds every event id once: a window of recent ids is enough
            fold = Replay(trust_root=await trust_root(conn), seen=RecentEventIds())
            if previous is not None:
                fold.resume_snapshot(previous.state_snapshot)
            last_recorded = (
                previous.state_snapshot.get("last_recorded_at") if previous is not None else None
            )
            verified = 0
            async for stored in iter_events(conn, before=part.position_to):
                fold.feed(stored)
                if fold.stopped:
                    break
                verified += 1
                if progress is not None and verified % _PROGRESS_EVERY == 0:
                    progress(verified, sealed.rows)
                if stored.recorded_at is not None:  # a ledger row always has one
                    last_recorded = stored.recorded_at.isoformat()
            heads = merge_heads(
                previous.heads if previous else {}, await partition_heads(conn, part)
            )
        if progress is not None:
            progress(verified, sealed.rows)
        if fold.broken is not None:
            raise RejectedError(
                fold.broken.code,
                f"{part.name} does not verify, nothing was detached: {fold.broken}",
                hint="run `claw-ledger audit`; archive only a ledger that verifies",
            )
        # replay --until before this moment cannot be answered from the ledger any more
        snapshot = {**fold.snapshot(), "last_recorded_at": last_recorded}
        boundary = await detach_partition(conn, sealed, heads, snapshot)
    except asyncpg.InsufficientPrivilegeError as exc:
        raise ConfigError(
            f"detaching a partition needs the database owner: {exc}",
            hint="run it with the owner's --database-url, not the writer's or the reader's",
        ) from exc
    finally:
        await conn.close()
    return ArchiveResult(
        part.name, part.position_from, part.position_to, sealed.rows, boundary.to_json()
    )
