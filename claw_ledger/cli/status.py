"""``claw-ledger status``: the figures of ``/metrics`` and ``/readyz``, at a glance."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import click

from claw_ledger.cli.common import (
    echo,
    emit_json,
    json_option,
    readiness_options,
    run_async,
    settings,
)

__all__ = ["command"]


async def _snapshot(max_timeout: float) -> Any:
    from claw_ledger.config import effective_database_url, effective_kafka_bootstrap
    from claw_ledger.ledger_health import KafkaOffsets, LedgerCounters, take_snapshot
    from claw_ledger.topics import topics_for
    from ledger.errors import ConfigError
    from storage.projection_queries import open_connection
    from storage.tlog_store import latest_checkpoint_time

    resolved = settings()
    # a server that is not running is a failed check (exit 1), not a usage error
    url: str | None = None
    try:
        url = effective_database_url(resolved, role="reader")
    except ConfigError as exc:
        missing = exc
    kafka_problem: str | None = None
    try:
        kafka: str | None = effective_kafka_bootstrap(resolved)
    except ConfigError as exc:
        kafka, kafka_problem = None, exc.message

    @asynccontextmanager
    async def acquire() -> AsyncIterator[Any]:
        if url is None:
            raise missing
        conn = await open_connection(url)
        try:
            yield conn
        finally:
            await conn.close()

    offsets = KafkaOffsets(kafka, timeout=max_timeout) if kafka else None
    try:
        snapshot = await take_snapshot(
            topic=topics_for(resolved).ingress,
            acquire=acquire,
            counters=LedgerCounters(),
            offsets=offsets,
            checkpoint_time=latest_checkpoint_time,
            timeout=max_timeout,
        )
        if kafka_problem is not None:  # why there is no bootstrap: say it, not "none"
            snapshot.errors["kafka"] = kafka_problem
        return snapshot
    finally:
        if offsets is not None:
            await offsets.close()


def _echo_counts(title: str, counts: Mapping[str, int]) -> None:
    """The total under ``title``, then each count on a line of its own."""
    echo(f"{title}: {sum(counts.values()):,}")
    for name, n in counts.items():
        echo(f"  {name:<24}{n:>12,}")


def _partitions(lag: Mapping[str, int]) -> str:
    """Each partition's lag, ``p0=12, p1=3``, or ``no partitions``."""
    return ", ".join(f"p{p}={n:,}" for p, n in lag.items()) or "no partitions"


#: how long `status` waits for each server to answer
_WAIT = click.FloatRange(0.1, 120)


@click.command("status")
@readiness_options(
    "Not ready when the processors are more records than this behind.",
    "Not ready when no processor has beaten for this long (each beats every 0.5 s).",
)
@click.option("--timeout", type=_WAIT, default=5.0, show_default=True, help="Seconds per server.")
@json_option("The figures as JSON.")
def command(max_lag: int, max_beat_age: float, timeout: float, as_json: bool) -> None:
    """Is the ledger ready, and what has it done? Counts by type and reason code,
    consumer lag per partition, halts, each processor and its last heartbeat; the
    figures `serve` exposes at /metrics.

    Exit 0 when ready (Postgres and Kafka answer, lag within --max-lag, a processor
    beat within --max-beat-age), 1 otherwise. A processor that stopped is listed as
    SILENT for 5 minutes after its last beat.
    """
    snapshot = run_async(_snapshot(timeout))
    doc = snapshot.to_json(max_lag, max_beat_age)
    ready = doc["ready"]
    if as_json:
        emit_json(doc)
        sys.exit(0 if ready else 1)
    echo(f"ready: {'yes' if ready else 'NO'}")
    for name, check in doc["checks"].items():
        echo(f"  {name:<11}{'ok ' if check['ok'] else 'NO '} {check['detail']}")
        if "hint" in check:
            echo(f"  {'':<11}    hint: {check['hint']}")
    if snapshot.postgres_up:
        _echo_counts("events committed", doc["events_committed"])
        _echo_counts("quarantined", doc["events_quarantined"])
    else:
        echo("events committed, quarantined: unknown (Postgres did not answer)")
    lag = doc["consumer_lag"]
    if lag is None:
        # lag is Kafka's end offsets less the positions in Postgres: it needs both
        servers = (("Kafka", snapshot.kafka_up), ("Postgres", snapshot.postgres_up))
        silent = " and ".join(name for name, up in servers if not up)
        echo(f"consumer lag: unknown ({silent} did not answer)")
    else:
        echo(f"consumer lag: {snapshot.total_lag:,}  (ingress {_partitions(lag)})")
        control = doc["control_lag"]
        if control is None:
            echo("  control lane: lag unknown (no control topic?)")
        else:
            echo(f"  control lane: {sum(control.values()):,}  ({_partitions(control)})")
    if doc["active_halts"] is not None:
        echo(f"active halts: {doc['active_halts']}")
    if doc["halt_propagation_seconds"] is not None:
        seconds = doc["halt_propagation_seconds"]
        echo(f"newest halt committed {seconds:.3f}s after it was signed")
    for worker, figures in doc["commit_batches"].items():
        echo(_processor_line(worker, figures, max_beat_age))
    sys.exit(0 if ready else 1)


def _processor_line(worker: str, figures: Mapping[str, Any], max_beat_age: float) -> str:
    """One processor: its batches, and whether it still beats."""
    count, total = figures["batches"], figures["seconds_sum"]
    mean = f"{1000 * total / count:.1f} ms mean" if count else "none yet"
    longest = figures["seconds_max"]
    recent = f", longest lately {1000 * longest:.1f} ms" if longest is not None else ""
    age = figures["last_beat_seconds"]
    if age > max_beat_age:
        beat = f"SILENT: last beat {age:.0f}s ago (stopped, or stuck)"
    else:
        beat = f"last beat {age:.1f}s ago"
    return f"processor {worker}: {count:,} batches committed, {mean}{recent}; {beat}"
