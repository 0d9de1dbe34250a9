"""Publish → commit latency at fractions of the capacity measured in the same run.

A fixed rate means different things on different days (this machine is shared):
2,000 ev/s was a third of capacity one day and half of it the next. So the
rates here are 25 %, 50 % and 75 % of the end-to-end sustained rate measured
just before, on the same servers.

The publisher is paced against a schedule (event ``n`` is due at
``start + n / rate``), sends pre-signed events, and every latency is measured
from the event's *scheduled* time, not from when the publisher got round to it:
a publisher that falls behind (a busy core, a full producer buffer) would
otherwise hide the delay in its own queue. How far it fell behind is reported
beside the latencies. Commit time is the row's ``recorded_at`` (the committing
transaction's start), so the figures are slightly understated.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass

from bench.ledger import BenchLedger, commit_times, ingress_producer, new_ledger, wait_committed
from bench.workload import sign_halt_events
from claw_ledger.config import Settings

__all__ = [
    "LOAD_FRACTIONS",
    "LatencyRun",
    "PacedSend",
    "latency_at",
    "latency_rows",
    "paced_publish",
    "percentile",
]

#: the loads the latency rows are measured at, as fractions of the e2e capacity
LOAD_FRACTIONS = (0.25, 0.50, 0.75)
#: the target the issue sets: commit p99 at half of capacity
P99_TARGET_AT_HALF_S = 0.100

Row = tuple[str, str, str, str, str]


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    index = min(len(sorted_values) - 1, max(0, int(len(sorted_values) * fraction + 0.5) - 1))
    return sorted_values[index]


@dataclass
class PacedSend:
    #: event id → when the schedule said it should be sent (epoch seconds)
    scheduled: dict[str, float]
    #: how late the publisher sent each event, sorted ascending (seconds)
    lags: list[float]
    #: the rate actually achieved over the whole run
    achieved_rate: float


async def paced_publish(
    ledger: BenchLedger, events: list[tuple[str, str, bytes]], rate: float
) -> PacedSend:
    """Send pre-signed ``events`` one by one at a steady ``rate`` per second, to
    the ingress topic, as the capacity runs do: the load is a fraction of the
    capacity measured there (the bench's ``agent.halted`` events would go to
    the control lane if routed by type, a path not built for bulk).

    Each wake-up sends every event that is due by then (never more), so the
    sends follow the schedule to within the event loop's timer resolution
    rather than in bursts of a fixed size.
    """
    scheduled: dict[str, float] = {}
    lags: list[float] = []
    futures = []
    async with ingress_producer(
        ledger.settings, linger_ms=1, max_batch_size=256 * 1024
    ) as producer:
        # the topic's metadata first: the first send would otherwise wait for it
        # and start the schedule late
        await producer.send_raw_many([])
        # one clock for the schedule and the commit times: epoch seconds, with
        # the schedule anchored once so that wall-clock steps cannot bunch sends
        began_mono, began_wall = time.monotonic(), time.time()
        n = 0
        while n < len(events):
            due = min(len(events), int((time.monotonic() - began_mono) * rate) + 1)
            while n < due:
                event_id, stream, raw = events[n]
                scheduled[event_id] = began_wall + n / rate
                lags.append(max(0.0, time.monotonic() - began_mono - n / rate))
                futures.append(await producer.send_raw(raw, stream, event_id, topic=producer.topic))
                n += 1
            if n < len(events):
                await asyncio.sleep(max(0.0, began_mono + n / rate - time.monotonic()))
        await asyncio.gather(*futures)
        achieved = len(events) / max(time.monotonic() - began_mono, 1e-9)
    lags.sort()
    return PacedSend(scheduled, lags, achieved)


@dataclass
class LatencyRun:
    fraction: float
    rate: float
    events: int
    p50: float
    p99: float
    max: float
    #: the publisher's own lag behind its schedule
    lag_p99: float
    lag_max: float
    achieved_rate: float


async def latency_at(
    base: Settings,
    fraction: float,
    capacity: float,
    seconds: float,
    processors: int,
    partitions: int,
    *,
    ledger: BenchLedger | None = None,
) -> LatencyRun:
    """One paced run at ``fraction`` × ``capacity`` for ``seconds`` on a fresh ledger."""
    rate = max(1.0, capacity * fraction)
    events = max(100, int(rate * seconds))
    ledger = ledger or await new_ledger(base, processors, partitions)
    try:
        workload = sign_halt_events(ledger.operator, events)
        sent = await paced_publish(ledger, workload, rate)
        assert ledger.settings.database_url
        await wait_committed(ledger.settings.database_url, events, timeout=3600)
        rows = await commit_times(ledger.settings.database_url)
    finally:
        ledger.stop_processors()
    latencies = sorted(float(r["at"]) - sent.scheduled[r["id"]] for r in rows)
    return LatencyRun(
        fraction=fraction,
        rate=rate,
        events=events,
        p50=statistics.median(latencies),
        p99=percentile(latencies, 0.99),
        max=latencies[-1],
        lag_p99=percentile(sent.lags, 0.99),
        lag_max=sent.lags[-1],
        achieved_rate=sent.achieved_rate,
    )


def _median_run(runs: list[LatencyRun]) -> LatencyRun:
    return sorted(runs, key=lambda r: r.p99)[len(runs) // 2]


def latency_rows(capacity: float, runs: list[LatencyRun]) -> tuple[list[Row], list[str]]:
    """One row per load (the run with the median p99 when repeated) and notes."""
    rows: list[Row] = []
    notes: list[str] = []
    for fraction in sorted({r.fraction for r in runs}):
        at = [r for r in runs if r.fraction == fraction]
        run = _median_run(at)
        half = abs(fraction - 0.5) < 1e-9
        target = f"p99 ≤ {P99_TARGET_AT_HALF_S * 1000:.0f} ms" if half else ""
        verdict = ("met" if run.p99 <= P99_TARGET_AT_HALF_S else "NOT met") if half else ""
        rows.append(
            (
                f"publish → commit latency at {fraction:.0%} of capacity"
                f" ({run.rate:,.0f} ev/s steady, {run.events:,} events"
                + (f", median p99 of {len(at)} runs" if len(at) > 1 else "")
                + ")",
                f"p50 {run.p50 * 1000:,.0f} ms, p99 {run.p99 * 1000:,.0f} ms",
                f"capacity {capacity:,.0f} ev/s (e2e sustained, same run)",
                target,
                verdict,
            )
        )
        notes.append(
            f"latency at {fraction:.0%}: p99 per run "
            + ", ".join(f"{r.p99 * 1000:,.0f} ms" for r in at)
            + f"; max {run.max * 1000:,.0f} ms; publisher lag behind its schedule"
            f" p99 {run.lag_p99 * 1000:,.1f} ms, max {run.lag_max * 1000:,.1f} ms"
            f" (achieved {run.achieved_rate:,.0f} ev/s; latencies count from the schedule)"
        )
    return rows, notes
