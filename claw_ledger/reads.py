"""The ledger's read queries (:mod:`storage`) at the database the settings name.

Storage takes a database URL; resolving it from the settings (given, or the one
``services up`` recorded) is the application's job. Every read connects as the
reader role (SELECT only, ADR 0013).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from claw_ledger.config import Settings
from claw_ledger.config import effective_database_url as _url
from ledger.tlog_audit import TreeRebuild
from storage import audit_queries, ledger_queries, projection_queries
from storage.ledger_queries import TimelineFilter, TimelinePage
from storage.partitions import ArchiveBoundary

__all__ = [
    "TimelineFilter",
    "TimelinePage",
    "archive_boundary",
    "audit_transparency_log",
    "chain_heads",
    "control_digest_report",
    "duplicate_coordinates",
    "iter_chain",
    "iter_quarantine",
    "list_keys",
    "list_quarantine",
    "query_sync",
    "timeline_page",
]

T = TypeVar("T")


def query_sync(
    settings: Settings, query: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any
) -> T:
    """Run a :mod:`storage.projection_queries` query on a fresh connection, blocking."""
    return projection_queries.query_sync(_reader_url(settings), query, *args, **kwargs)


def _reader_url(settings: Settings) -> str:
    return _url(settings, role="reader")


async def list_keys(settings: Settings) -> list[dict[str, Any]]:
    return await ledger_queries.list_keys(_reader_url(settings))


async def timeline_page(settings: Settings, flt: TimelineFilter) -> TimelinePage:
    return await ledger_queries.timeline_page(_reader_url(settings), flt)


async def list_quarantine(
    settings: Settings, *, reason: str | None = None, after: int = 0, limit: int = 50
) -> TimelinePage:
    return await ledger_queries.list_quarantine(
        _reader_url(settings), reason=reason, after=after, limit=limit
    )


def iter_chain(settings: Settings, batch: int = 5000) -> AsyncIterator[dict[str, Any]]:
    return ledger_queries.iter_chain(_reader_url(settings), batch)


async def chain_heads(settings: Settings) -> dict[tuple[str, int], tuple[int, str | None]]:
    return await ledger_queries.chain_heads(_reader_url(settings))


def iter_quarantine(settings: Settings, batch: int = 5000) -> AsyncIterator[dict[str, Any]]:
    return audit_queries.iter_quarantine(_reader_url(settings), batch)


async def duplicate_coordinates(settings: Settings) -> list[dict[str, Any]]:
    return await audit_queries.duplicate_coordinates(_reader_url(settings))


async def control_digest_report(settings: Settings) -> dict[str, tuple[int | None, int]]:
    return await audit_queries.control_digest_report(_reader_url(settings))


async def archive_boundary(settings: Settings) -> ArchiveBoundary | None:
    """The newest archive cut (events below it are detached), or None."""
    from storage.partitions import read_archive_boundary

    return await read_archive_boundary(_reader_url(settings))


async def audit_transparency_log(
    settings: Settings, progress: Callable[[int], None] | None = None
) -> TreeRebuild:
    return await audit_queries.audit_transparency_log(_reader_url(settings), progress=progress)
