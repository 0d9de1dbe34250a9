"""Verified replay at the configured ledger: the sources, the report filters,
the isolated rebuild schema and the comparison with the live projections.

Shared by ``claw-ledger replay``, ``state at`` and ``audit`` (CLI modules never
import each other). The fold itself is :mod:`ledger.replay`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from claw_ledger.config import Settings, effective_database_url, effective_kafka_bootstrap
from claw_ledger.topics import topics_for
from ledger.instants import in_utc
from ledger.replay import (
    EventIds,
    ProjectionDiff,
    RecentEventIds,
    Replay,
    ReplayStep,
    StoredEvent,
    diff_projections,
)
from ledger.verify import Rejected, Verified

__all__ = [
    "KAFKA",
    "LEDGER",
    "ReplayFilter",
    "ReplayRequest",
    "ReplayResult",
    "VerdictsHook",
    "compare_with_live",
    "rebuild_and_compare",
    "run_replay",
    "source_size",
    "zoned_time",
]

LEDGER = "ledger"
KAFKA = "kafka"

#: sees each chunk of (event, steps 1–3 verdict) pairs, in source order
VerdictsHook = Callable[[list[tuple[StoredEvent, Verified | Rejected]]], None]


@dataclass(frozen=True)
class ReplayFilter:
    """What is reported. The state is always rebuilt from every event before."""

    job: str | None = None
    stream: str | None = None
    event_type: str | None = None
    since: datetime | None = None
    from_offset: int | None = None

    def active(self) -> bool:
        return any(
            v is not None
            for v in (self.job, self.stream, self.event_type, self.since, self.from_offset)
        )

    def matches(self, step: ReplayStep) -> bool:
        verified = step.verified
        if verified is None:
            return False
        event = verified.event
        if self.stream is not None and event.stream != self.stream:
            return False
        if self.event_type is not None and event.event_type != self.event_type:
            return False
        if self.job is not None and not _about_job(event.stream, event.body, self.job):
            return False
        if self.from_offset is not None and (step.stored.offset or 0) < self.from_offset:
            return False
        if self.since is not None:
            moment = step.stored.recorded_at or _parse(event.occurred_at)
            if moment < self.since:
                return False
        return True


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def zoned_time(value: str) -> datetime:
    """An ISO 8601 time with its zone (``Z`` for UTC); ValueError says what is wrong."""
    try:
        moment = _parse(value)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not an ISO 8601 time") from exc
    if moment.tzinfo is None:
        raise ValueError(f"{value!r} needs a time zone, e.g. 2026-11-26T10:00:00Z")
    return in_utc(moment)


def _about_job(stream: str, body: dict[str, Any], job: str) -> bool:
    return (
        stream == f"job:{job}"
        or body.get("job_id") == job
        or body.get("mission_id") == job
        or body.get("target") == f"job:{job}"
    )


@dataclass(frozen=True)
class ReplayRequest:
    source: str = LEDGER
    trust_root: str | None = None
    until: datetime | None = None
    filter: ReplayFilter = field(default_factory=ReplayFilter)
    into: str | None = None
    compare: bool = False
    #: keep the reported steps (their events) in the result, up to this many
    keep_reported: int = 0
    #: check every envelope's signature (else: trust the source for them)
    signatures: bool = True
    #: processes checking signatures (None: one per CPU; 1: in this process)
    jobs: int | None = None
    #: event ids kept in memory for the duplicate check (the rest: on disk, or
    #: the ledger's unique index)
    ids_in_memory: int = 100_000


@dataclass
class ReplayResult:
    fold: Replay
    source: str
    #: where the trust root came from: pinned, ledger_meta or bootstrap
    trust_root_from: str
    events: int = 0
    reported: Counter[str] = field(default_factory=Counter)
    reported_events: list[dict[str, Any]] = field(default_factory=list)
    diffs: list[ProjectionDiff] | None = None
    written: int | None = None
    duration: float = 0.0
    signatures: bool = True
    jobs: int = 1
    #: the archive cut the ledger replay started from (None: from the first event)
    archived: dict[str, Any] | None = None
    #: Kafka source: "<topic>-<partition>" -> its first offset, for every partition
    #: whose head Kafka removed (the replay cannot see those records: not clean)
    removed: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.fold.broken is None and not self.diffs and not self.removed

    def summary(self) -> dict[str, Any]:
        fold = self.fold
        return {
            "ok": self.ok,
            "source": self.source,
            "events": self.events,
            "accepted": fold.accepted,
            "types": dict(sorted(fold.counts.items())),
            "reported": sum(self.reported.values()),
            "reported_types": dict(sorted(self.reported.items())),
            "skipped": dict(sorted(fold.skipped.items())),
            "duplicates": fold.duplicates,
            "trust_root": fold.trust_root,
            "trust_root_from": self.trust_root_from,
            "stopped_at_until": fold.reached_until,
            "breaks": [fold.broken.to_dict()] if fold.broken else [],
            "diffs": None if self.diffs is None else [d.to_dict() for d in self.diffs],
            "written": self.written,
            "signatures": self.signatures,
            "jobs": self.jobs,
            "archived": self.archived,
            "removed_from_kafka": self.removed,
            "duration_s": round(self.duration, 3),
            "rate_per_s": round(self.events / self.duration) if self.duration > 0 else None,
        }


def _configured_database_url(settings: Settings) -> str | None:
    """The ledger database, when one is configured: a replay of the topic then
    takes the trust root it recorded before any root the topic offers."""
    from ledger.errors import ConfigError

    try:
        return effective_database_url(settings)
    except ConfigError:
        return None


async def _recorded_trust_root(database_url: str) -> str | None:
    """The trust root ``init`` recorded; a database that does not answer is an
    error with the way round it, never a silent fall back to the topic's root."""
    import asyncpg

    from ledger.errors import ServiceError
    from storage.postgres import trust_root
    from storage.projection_queries import connection

    try:
        async with connection(database_url) as conn:
            return await trust_root(conn)
    except asyncpg.UndefinedTableError:  # no ledger schema there: nothing recorded
        return None
    except ServiceError as exc:
        raise ServiceError(
            f"{exc.message}: the ledger's recorded trust root cannot be read",
            hint="pin it with --trust-root DID to replay the topic without the database",
        ) from None


async def source_size(settings: Settings, source: str) -> int:
    """How many events (ledger) or offsets (kafka) a replay will read: for progress."""
    if source == KAFKA:
        from consumers.topic_replay import topic_size

        return await topic_size(effective_kafka_bootstrap(settings), _lanes(settings))
    from storage.projection_queries import connection
    from storage.replay_queries import count_events

    async with connection(effective_database_url(settings)) as conn:
        return await count_events(conn)


def _lanes(settings: Settings) -> list[str]:
    """The topics a replay from Kafka reads: the control lane first (ADR 0024)."""
    topics = topics_for(settings)
    return [topics.control, topics.ingress]


async def run_replay(
    settings: Settings,
    request: ReplayRequest,
    *,
    progress: Callable[[int], None] | None = None,
    on_verdicts: VerdictsHook | None = None,
) -> ReplayResult:
    """Replay the chosen source, then write (``into``) and compare as asked.

    From the ledger, the events and the live projections are read in one
    snapshot, so a comparison is exact even while the processor commits.
    ``on_verdicts`` (ledger source) sees every event's steps 1–3 verdict, a
    chunk at a time, including those past a break: the ledger is then read to
    its end (the audit reports every envelope that fails, not only the first).
    """
    from claw_ledger.verify_pool import VerifyPool

    started = time.monotonic()
    needs_db = request.source == LEDGER or request.into is not None or request.compare
    database_url = effective_database_url(settings) if needs_db else None
    trust_root, origin = request.trust_root, "pinned"
    if trust_root is None:
        recorded_in = database_url or _configured_database_url(settings)
        if recorded_in is not None:
            trust_root, origin = await _recorded_trust_root(recorded_in), "ledger_meta"
    if trust_root is None:
        origin = "bootstrap"
    if database_url is not None and request.into is not None:
        # refuse a bad target before a long replay, not after it
        await _check_into(database_url, request.into)
    pool = VerifyPool(request.jobs, signatures=request.signatures, freeze_gc=True)
    seen = await _event_ids(request, database_url)
    fold = Replay(
        trust_root=trust_root,
        until=request.until,
        strict=request.source == LEDGER,
        signatures=request.signatures,
        seen=seen,
    )
    result = ReplayResult(fold, request.source, origin, signatures=request.signatures)
    result.jobs = pool.jobs if pool.parallel else 1
    try:
        with pool:
            if request.source == KAFKA:
                await _replay_topic(settings, request, pool, result, progress)
                if database_url is not None and request.compare and fold.broken is None:
                    result.diffs = await compare_with_live(database_url, fold)
            else:
                assert database_url is not None
                await _replay_ledger(database_url, request, pool, result, progress, on_verdicts)
    finally:
        close = getattr(seen, "close", None)
        if close is not None:
            close()
    if database_url is not None and request.into is not None and fold.broken is None:
        result.written = await _write_into(database_url, request.into, fold)
    result.duration = time.monotonic() - started
    return result


async def _event_ids(request: ReplayRequest, database_url: str | None) -> EventIds:
    """What the fold remembers of the ids it saw. The ledger cannot hold an id
    twice while its unique index stands: a window of recent ids is then enough.
    Otherwise (the topic, or an index gone) every id, the older ones on disk."""
    from storage.replay_ids import SpillingEventIds

    if request.source == LEDGER and database_url is not None:
        from storage.projection_queries import connection
        from storage.replay_queries import event_ids_unique

        async with connection(database_url) as conn:
            unique = await event_ids_unique(conn)
        if unique:
            return RecentEventIds(request.ids_in_memory)
    return SpillingEventIds(request.ids_in_memory)


async def _replay_topic(
    settings: Settings,
    request: ReplayRequest,
    pool: Any,
    result: ReplayResult,
    progress: Callable[[int], None] | None,
) -> None:
    from consumers.topic_replay import iter_topics, removed_heads

    bootstrap = effective_kafka_bootstrap(settings)
    result.removed = await removed_heads(bootstrap, _lanes(settings))
    # records removed while they are read are added to it: the replay is incomplete
    topic = iter_topics(bootstrap, _lanes(settings), removed=result.removed)
    try:
        async for chunk in pool.averdicts(topic, _raw):
            if not _steps(result.fold, chunk, request, result, progress):
                break
    finally:
        await topic.aclose()


async def _replay_ledger(
    database_url: str,
    request: ReplayRequest,
    pool: Any,
    result: ReplayResult,
    progress: Callable[[int], None] | None,
    on_verdicts: VerdictsHook | None,
) -> None:
    from storage.partitions import archive_boundary
    from storage.projection_queries import connection
    from storage.replay_queries import iter_event_batches

    async with (
        connection(database_url) as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        boundary = await archive_boundary(conn)
        if boundary is not None:
            _check_until(request.until, boundary.state_snapshot)
            # the archived events verified when they were cut; go on from there
            result.fold.resume_snapshot(boundary.state_snapshot)
            result.archived = boundary.to_json()
        events = iter_event_batches(conn)
        async for chunk in pool.averdicts_of_batches(events, _raw):
            if on_verdicts is not None:
                on_verdicts(chunk)
            if not result.fold.stopped:
                _steps(result.fold, chunk, request, result, progress)
            if result.fold.stopped and on_verdicts is None:
                break
        if request.compare and result.fold.broken is None:
            result.diffs = await _compare_on(conn, result.fold)


def _check_until(until: datetime | None, snapshot: dict[str, Any]) -> None:
    """Refuse a moment inside the archived range: the ledger replay starts after it."""
    last = snapshot.get("last_recorded_at")
    if until is None or last is None or until >= datetime.fromisoformat(last):
        return
    from ledger.errors import ConfigError

    raise ConfigError(
        f"--until {until.isoformat()} is before the archive cut (events up to {last} are"
        " detached from the ledger table)",
        hint="replay --source kafka while the topic still holds them, or restore the archive",
    )


def _raw(stored: StoredEvent) -> bytes:
    return stored.raw


def _steps(
    fold: Replay,
    chunk: list[tuple[StoredEvent, Any]],
    request: ReplayRequest,
    result: ReplayResult,
    progress: Callable[[int], None] | None,
) -> bool:
    """Feed one chunk of verified events; False once the fold stopped."""
    steps = fold.feed_many(chunk)
    result.events += len(steps)
    for step in steps:
        if step.verified is not None and request.filter.matches(step):
            result.reported[step.verified.event.event_type] += 1
            if len(result.reported_events) < request.keep_reported:
                result.reported_events.append(_describe(step))
    if progress is not None:
        progress(result.events)
    return not fold.stopped


def _describe(step: ReplayStep) -> dict[str, Any]:
    assert step.verified is not None
    event = step.verified.event
    return {
        "position": step.stored.position,
        "partition": step.stored.partition,
        "offset": step.stored.offset,
        "event_id": event.event_id,
        "event_type": event.event_type,
        "stream": event.stream,
        "producer": event.producer,
        "occurred_at": event.occurred_at,
        "recorded_at": None if step.stored.recorded_at is None else step.stored.recorded_at,
        "body": event.body,
    }


async def _check_into(database_url: str, schema: str) -> None:
    from storage.projection_queries import connection
    from storage.replay_queries import check_replay_schema

    async with connection(database_url) as conn:
        await check_replay_schema(conn, schema)


async def _write_into(database_url: str, schema: str, fold: Replay) -> int:
    from storage.projection_queries import connection
    from storage.replay_queries import create_replay_schema, write_projection_rows

    async with connection(database_url) as conn:
        await create_replay_schema(conn, schema)
        return await write_projection_rows(conn, schema, fold.rows())


async def compare_with_live(database_url: str, fold: Replay) -> list[ProjectionDiff]:
    """Every projection table, row by row: the rebuild against the live rows."""
    from storage.projection_queries import connection

    async with (
        connection(database_url) as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        return await _compare_on(conn, fold)


async def _compare_on(conn: Any, fold: Replay) -> list[ProjectionDiff]:
    from storage.replay_queries import BOOKKEEPING_COLUMNS, PROJECTION_TABLES, read_projection

    live = {table: await read_projection(conn, table) for table in PROJECTION_TABLES}
    return diff_projections(fold.rows(), live, ignore=BOOKKEEPING_COLUMNS)


async def rebuild_and_compare(
    settings: Settings,
    *,
    signatures: bool = True,
    jobs: int | None = None,
    on_verdicts: VerdictsHook | None = None,
    progress: Callable[[int], None] | None = None,
) -> ReplayResult:
    """For the audit: replay the whole ledger and compare every projection."""
    request = ReplayRequest(source=LEDGER, compare=True, signatures=signatures, jobs=jobs)
    return await run_replay(settings, request, progress=progress, on_verdicts=on_verdicts)
