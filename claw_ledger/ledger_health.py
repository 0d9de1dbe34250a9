"""What the ledger is doing, at a glance: counts, lag, halts, readiness.

Shared by ``GET /metrics`` / ``/readyz`` (:mod:`claw_ledger.api`) and
``claw-ledger status``. Counts come from the database (``events`` and
``quarantine`` by partition, counted on from the last seq or offset seen, so
a scrape reads only new rows); consumer lag is the ingress topic's end
offsets minus the processors' ``consumer_positions.next_offset``. A server
that does not answer within the timeout is reported as down: its figures are
absent, never guessed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from ledger.errors import LedgerError
from storage import api_queries

__all__ = [
    "DEFAULT_MAX_BEAT_AGE",
    "DEFAULT_MAX_LAG",
    "KafkaOffsets",
    "LedgerCounters",
    "Snapshot",
    "take_snapshot",
]

log = logging.getLogger("claw_ledger.health")

#: readiness bound on the processors' lag, in messages over all partitions
DEFAULT_MAX_LAG = 10_000
#: a processor beats every 0.5 s, idle or busy (ADR 0015); one silent this long
#: has stopped or is stuck. Generous beside that, so that a long commit or a
#: database blip does not make a live ledger flap between ready and not.
DEFAULT_MAX_BEAT_AGE = 30.0
DEFAULT_TIMEOUT = 5.0

#: how much of a server's error a check's detail (or hint) carries
_DETAIL_LIMIT = 400

#: an optional source of the newest checkpoint's time (the checkpointer's table)
CheckpointTime = Callable[[asyncpg.Connection], Awaitable[datetime | None]]


class KafkaOffsets:
    """End offsets of a topic's partitions from one long-lived consumer (no group).

    On any failure the consumer is closed and made again on the next call.
    """

    def __init__(self, bootstrap: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.bootstrap = bootstrap
        self.timeout = timeout
        self._consumer: Any = None
        #: topic -> its partitions (read again after any failure)
        self._partitions: dict[str, list[int]] = {}

    async def end_offsets(self, topic: str) -> dict[int, int]:
        """Partition -> end offset; raises on timeout or a Kafka error."""
        try:
            return await asyncio.wait_for(self._end_offsets(topic), self.timeout)
        except BaseException:
            await self.close()
            raise

    async def _end_offsets(self, topic: str) -> dict[int, int]:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        from claw_ledger.services.admin import describe_partitions

        if topic not in self._partitions:
            described = await describe_partitions(self.bootstrap, [topic], timeout=self.timeout)
            if not described:
                raise LookupError(f"topic {topic} does not exist")
            self._partitions[topic] = [row.partition for row in described]
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap,
                enable_auto_commit=False,
                request_timeout_ms=int(self.timeout * 1000),
            )
            await consumer.start()
            self._consumer = consumer
        wanted = [TopicPartition(topic, p) for p in self._partitions[topic]]
        offsets = await self._consumer.end_offsets(wanted)
        return {tp.partition: int(offset) for tp, offset in offsets.items()}

    async def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        self._partitions.clear()
        if consumer is not None:
            try:
                await consumer.stop()
            except Exception as exc:  # closing a broken client: nothing more to do
                log.debug("closing the Kafka consumer: %s", exc)


@dataclass
class LedgerCounters:
    """Monotonic counts of committed events (by type) and quarantined messages (by
    reason code), read on from where the last call stopped in each partition."""

    events: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, int] = field(default_factory=dict)
    _seq: dict[tuple[str, int], int] = field(default_factory=dict)
    _offset: dict[tuple[str, int], int] = field(default_factory=dict)

    async def refresh(self, conn: asyncpg.Connection, heads: list[dict[str, Any]]) -> None:
        for part in {(h["topic"], h["kafka_partition"]) for h in heads}:
            rows = await api_queries.events_committed_since(conn, *part, self._seq.get(part, 0))
            for row in rows:
                self.events[row["event_type"]] = self.events.get(row["event_type"], 0) + row["n"]
                self._seq[part] = max(self._seq.get(part, 0), row["last"])
            rows = await api_queries.quarantined_since(conn, *part, self._offset.get(part, -1))
            for row in rows:
                code = row["reason_code"]
                self.quarantined[code] = self.quarantined.get(code, 0) + row["n"]
                self._offset[part] = max(self._offset.get(part, -1), row["last"])


@dataclass
class Snapshot:
    """One look at the ledger. ``None`` figures were not available."""

    postgres_up: bool = False
    kafka_up: bool = False
    topic: str = ""
    #: the control lane's topic (ADR 0024); its events count with the others
    control_topic: str = ""
    events: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, int] = field(default_factory=dict)
    #: partition -> messages the processors have not committed yet
    lag: dict[int, int] | None = None
    #: the same for the control topic
    control_lag: dict[int, int] | None = None
    #: partition -> unix time of the processors' last commit there
    last_commit: dict[int, float] = field(default_factory=dict)
    active_halts: int | None = None
    #: seconds from the newest agent.halted's occurred_at to its commit
    halt_propagation: float | None = None
    #: worker -> batches committed, summed seconds, longest since its last beat, and
    #: the seconds since that beat (only processors that beat in the last 5 minutes)
    commit_batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    checkpoint_age: float | None = None
    schema_ok: bool = False
    #: server -> why it did not answer, and what to do about it where known
    errors: dict[str, str] = field(default_factory=dict)
    hints: dict[str, str] = field(default_factory=dict)

    def fail(self, server: str, exc: BaseException, timeout: float) -> None:
        """Record why ``server`` did not answer: the product's own errors by their
        message and hint (each cut to a line's worth), others by type and text."""
        if isinstance(exc, LedgerError):
            self.errors[server] = exc.message[:_DETAIL_LIMIT]
            if exc.hint:
                self.hints[server] = exc.hint[:_DETAIL_LIMIT]
        elif isinstance(exc, TimeoutError) and not str(exc):
            self.errors[server] = f"no answer within {timeout:g}s"
        else:
            self.errors[server] = f"{type(exc).__name__}: {exc}"[:_DETAIL_LIMIT]

    @property
    def total_lag(self) -> int | None:
        """Uncommitted messages of both lanes (``None``: ingress lag unknown)."""
        if self.lag is None:
            return None
        return sum(self.lag.values()) + sum((self.control_lag or {}).values())

    def beating(self, max_beat_age: float = DEFAULT_MAX_BEAT_AGE) -> list[str]:
        """The processors whose last beat is at most ``max_beat_age`` seconds old."""
        return [
            worker
            for worker, figures in self.commit_batches.items()
            if figures["last_beat_seconds"] <= max_beat_age
        ]

    def _processors_check(self, max_beat_age: float) -> dict[str, Any]:
        if not self.postgres_up:
            return {"ok": False, "detail": "unknown (Postgres did not answer)"}
        beating = self.beating(max_beat_age)
        if beating:
            newest = min(f["last_beat_seconds"] for f in self.commit_batches.values())
            return {
                "ok": True,
                "detail": f"{len(beating)} beating, the latest beat {newest:.1f}s ago",
            }
        return {
            "ok": False,
            "detail": f"none has beaten in the last {max_beat_age:g}s: start one"
            " (`claw-ledger processor start`), or see why it stopped (`claw-ledger"
            " processor status`)",
        }

    def readiness(
        self, max_lag: int = DEFAULT_MAX_LAG, max_beat_age: float = DEFAULT_MAX_BEAT_AGE
    ) -> dict[str, dict[str, Any]]:
        """Each readiness check: ``ok`` and a ``detail``. Ready takes Postgres and
        Kafka answering, the schema migrated, at most ``max_lag`` messages not
        committed, and a processor that beat within ``max_beat_age`` seconds: a
        ledger with no processor running commits nothing, however small its lag."""
        lag = self.total_lag
        if self.schema_ok:
            schema = "api_keys present"
        elif self.postgres_up:
            schema = "run `claw-ledger migrate`"
        else:
            schema = "unknown (Postgres did not answer)"
        checks: dict[str, dict[str, Any]] = {
            "postgres": {"ok": self.postgres_up, "detail": self.errors.get("postgres", "answers")},
            "schema": {
                "ok": self.schema_ok,
                "detail": schema,
            },
            "kafka": {"ok": self.kafka_up, "detail": self.errors.get("kafka", "answers")},
            "lag": {
                "ok": lag is not None and lag <= max_lag,
                "detail": "unknown" if lag is None else f"{lag} message(s), bound {max_lag}",
            },
            "processors": self._processors_check(max_beat_age),
        }
        for server, hint in self.hints.items():
            checks[server]["hint"] = hint
        return checks

    def ready(
        self, max_lag: int = DEFAULT_MAX_LAG, max_beat_age: float = DEFAULT_MAX_BEAT_AGE
    ) -> bool:
        return all(check["ok"] for check in self.readiness(max_lag, max_beat_age).values())

    def to_json(
        self, max_lag: int = DEFAULT_MAX_LAG, max_beat_age: float = DEFAULT_MAX_BEAT_AGE
    ) -> dict[str, Any]:
        return {
            "ready": self.ready(max_lag, max_beat_age),
            "checks": self.readiness(max_lag, max_beat_age),
            "topic": self.topic,
            "events_committed": dict(sorted(self.events.items())),
            "events_quarantined": dict(sorted(self.quarantined.items())),
            "consumer_lag": None if self.lag is None else {str(p): n for p, n in self.lag.items()},
            "control_topic": self.control_topic,
            "control_lag": (
                None
                if self.control_lag is None
                else {str(p): n for p, n in self.control_lag.items()}
            ),
            "last_commit": {str(p): t for p, t in sorted(self.last_commit.items())},
            "active_halts": self.active_halts,
            "halt_propagation_seconds": self.halt_propagation,
            "commit_batches": self.commit_batches,
            "checkpoint_age_seconds": self.checkpoint_age,
        }


async def _database_part(
    snap: Snapshot,
    conn: asyncpg.Connection,
    counters: LedgerCounters,
    checkpoint_time: CheckpointTime | None,
) -> list[dict[str, Any]]:
    lanes = (snap.topic, snap.control_topic)
    heads = [h for h in await api_queries.partition_heads(conn) if h["topic"] in lanes]
    snap.postgres_up = True
    snap.schema_ok = await api_queries.table_exists(conn, "api_keys")
    await counters.refresh(conn, heads)
    snap.events, snap.quarantined = dict(counters.events), dict(counters.quarantined)
    for head in heads:
        if head["topic"] == snap.topic:
            snap.last_commit[head["kafka_partition"]] = head["updated_at"].timestamp()
    halts = await api_queries.halt_figures(conn)
    snap.active_halts = halts["active"]
    snap.halt_propagation = halts["propagation_seconds"]
    snap.commit_batches = {
        row["worker_id"]: {
            "batches": row["batches"],
            "seconds_sum": row["batch_seconds_sum"],
            "seconds_max": row["batch_seconds_max"],
            "last_beat_seconds": row["beat_age_seconds"],
        }
        for row in await api_queries.commit_batch_figures(conn)
    }
    if checkpoint_time is not None:
        moment = await checkpoint_time(conn)
        if moment is not None:
            snap.checkpoint_age = max(0.0, time.time() - moment.timestamp())
    return heads


async def take_snapshot(
    *,
    topic: str,
    acquire: Callable[[], Any],
    counters: LedgerCounters,
    offsets: KafkaOffsets | None,
    checkpoint_time: CheckpointTime | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    control_topic: str | None = None,
) -> Snapshot:
    """Read the database (``acquire()``: an async context manager giving a connection)
    and Kafka, each within ``timeout``; what fails is reported in ``errors``.

    ``topic`` is the ingress topic; ``control_topic`` (default: the one of its
    prefix) the control lane's, whose events and lag count too."""
    from consumers.config import control_topic_for

    snap = Snapshot(topic=topic, control_topic=control_topic or control_topic_for(topic))
    heads: list[dict[str, Any]] | None = None

    async def database() -> list[dict[str, Any]]:
        async with acquire() as conn:
            return await _database_part(snap, conn, counters, checkpoint_time)

    try:
        heads = await asyncio.wait_for(database(), timeout)
    except Exception as exc:
        snap.postgres_up = False
        snap.fail("postgres", exc, timeout)
    ends: dict[int, int] | None = None
    if offsets is None:
        snap.errors["kafka"] = "no Kafka bootstrap configured"
    else:
        try:
            ends = await offsets.end_offsets(topic)
            snap.kafka_up = True
        except Exception as exc:
            snap.fail("kafka", exc, timeout)
    if ends is not None and heads is not None:
        snap.lag = _lag(ends, heads, topic)
        with contextlib.suppress(Exception):  # a ledger from before the control lane
            control_ends = await offsets.end_offsets(snap.control_topic)  # type: ignore[union-attr]
            snap.control_lag = _lag(control_ends, heads, snap.control_topic)
    return snap


def _lag(ends: dict[int, int], heads: list[dict[str, Any]], topic: str) -> dict[int, int]:
    committed = {h["kafka_partition"]: h["next_offset"] for h in heads if h["topic"] == topic}
    return {p: max(0, end - committed.get(p, 0)) for p, end in sorted(ends.items())}
