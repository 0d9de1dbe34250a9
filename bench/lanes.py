"""The control lane's cost and benefit (ADR 0024), each beside a baseline of the same run.

* Ingest with both lanes running (the default) against ``--lanes ingress``
  (no control consumer at all): the same pre-signed workload, on the ingress
  topic, through fresh ledgers; the sustained commit rate (the middle 80 % of
  commits). Target: within 5 %.
* The commit time of control events (``agent.halted`` by the SDK, routed to
  ``<prefix>.control``) while ``backlog`` ordinary events are queued on the
  ingress topic ahead of them, against the same control events on the idle
  ledger just before: median and p99 from the publisher's acknowledgement to
  the ledger's ``recorded_at``.

Usage alone, on the servers of ``CLAW_LEDGER_KAFKA`` / ``CLAW_LEDGER_DATABASE_URL``::

    python -m bench.lanes --events 20000 --backlog 20000 --control-events 10
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from typing import Any

import asyncpg

from bench.ledger import BenchLedger, new_ledger, publish_all, until_committed, wait_committed
from bench.workload import sign_halt_events
from claw_ledger.config import Settings, load_settings
from claw_ledger.topics import topic_names
from producers.sdk import LedgerProducer

__all__ = ["Row", "lane_rows"]

Row = tuple[str, str, str, str, str]


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


async def _sustained_ingest(base: Settings, events: int, partitions: int, lanes: str) -> float:
    """Events per second committed in the middle 80 % of one run, ``--lanes lanes``."""
    ledger = await new_ledger(base, 1, partitions, lanes=lanes)
    try:
        workload = sign_halt_events(ledger.operator, events)
        await publish_all(ledger, workload)
        assert ledger.settings.database_url
        await wait_committed(ledger.settings.database_url, events, timeout=3600)
        ids = [event_id for event_id, _, _ in workload]
        conn = await asyncpg.connect(ledger.settings.database_url)
        try:
            committed = sorted(
                float(r["at"])
                for r in await conn.fetch(
                    "SELECT extract(epoch FROM recorded_at) AS at FROM events"
                    " WHERE event_id = ANY($1::uuid[])",
                    ids,
                )
            )
        finally:
            await conn.close()
    finally:
        ledger.stop_processors()
    lo, hi = committed[len(committed) // 10], committed[len(committed) * 9 // 10]
    return (len(committed) * 0.8) / max(hi - lo, 1e-9)


async def _control_commit_times(ledger: BenchLedger, count: int) -> list[float]:
    """Seconds from Kafka's acknowledgement to the commit, for ``count`` halts sent
    one at a time (50 ms apart) to the control lane."""
    assert ledger.settings.kafka_bootstrap and ledger.settings.database_url
    sent: dict[str, float] = {}
    topics = topic_names(ledger.settings.topic_prefix)
    async with LedgerProducer(ledger.settings.kafka_bootstrap, topics, linger_ms=0) as producer:
        for i in range(count):
            target = f"job:lane-{uuid.uuid4().hex[:8]}"
            position = await producer.publish(
                ledger.operator,
                "agent.halted",
                f"halt:{target}",
                {"target": target, "reason": f"lane bench {i}"},
            )
            assert position.topic == topics.control
            sent[position.event_id] = time.time()
            await asyncio.sleep(0.05)
    conn = await asyncpg.connect(ledger.settings.database_url)

    async def committed() -> int:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM events WHERE event_id = ANY($1::uuid[])", list(sent)
            )
        )

    try:
        await until_committed(committed, count, timeout=600, every=0.2, what="control events")
        rows = await conn.fetch(
            "SELECT event_id::text AS id, extract(epoch FROM recorded_at) AS at FROM events"
            " WHERE event_id = ANY($1::uuid[])",
            list(sent),
        )
    finally:
        await conn.close()
    return sorted(max(0.0, float(r["at"]) - sent[r["id"]]) for r in rows)


async def _pending(ledger: BenchLedger, total: int) -> int:
    """Ordinary events of the backlog not committed yet."""
    assert ledger.settings.database_url
    conn = await asyncpg.connect(ledger.settings.database_url)
    try:
        topic = topic_names(ledger.settings.topic_prefix).ingress
        done = await conn.fetchval(
            "SELECT coalesce(sum(ledger_seq), 0) FROM consumer_positions WHERE topic = $1", topic
        )
    finally:
        await conn.close()
    # the three key registrations of new_ledger are on the ingress topic too
    return max(0, total - (int(done) - 3))


async def _control_behind_backlog(
    base: Settings, backlog: int, control_events: int, partitions: int
) -> dict[str, Any]:
    ledger = await new_ledger(base, 1, partitions)
    try:
        workload = sign_halt_events(ledger.operator, backlog)
        idle = await _control_commit_times(ledger, control_events)
        # flat out, far faster than a processor commits: the backlog queues up
        await publish_all(ledger, workload)
        queued = await _pending(ledger, backlog)
        loaded = await _control_commit_times(ledger, control_events)
        left = await _pending(ledger, backlog)
    finally:
        ledger.stop_processors()
    return {"idle": idle, "loaded": loaded, "queued": queued, "left": left}


def _p99(values: list[float]) -> float:
    return values[max(0, int(len(values) * 0.99) - 1)]


async def lane_rows(
    base: Settings,
    events: int,
    backlog: int,
    control_events: int,
    partitions: int,
    repeat: int = 1,
) -> list[Row]:
    """The two rows; each ingest mode runs ``repeat`` times, alternating (medians)."""
    both: list[float] = []
    alone: list[float] = []
    for _ in range(repeat):
        alone.append(await _sustained_ingest(base, events, partitions, "ingress"))
        both.append(await _sustained_ingest(base, events, partitions, "control,ingress"))
    with_lane, without = statistics.median(both), statistics.median(alone)
    change = (with_lane - without) / without
    times = await _control_behind_backlog(base, backlog, control_events, partitions)
    idle, loaded = times["idle"], times["loaded"]
    return [
        (
            f"ingest with the control lane running (1 processor, {events:,} events)",
            f"{with_lane:,.0f} ev/s ({change:+.1%})",
            f"{without:,.0f} ev/s with --lanes ingress",
            "within 5 %",
            _verdict(change >= -0.05),
        ),
        (
            f"control event commit time, {backlog:,} ordinary events queued ahead"
            f" ({control_events} halts; {times['queued']:,} still queued before,"
            f" {times['left']:,} after)",
            f"p50 {statistics.median(loaded) * 1000:,.0f} ms, p99 {_p99(loaded) * 1000:,.0f} ms",
            f"idle p50 {statistics.median(idle) * 1000:,.0f} ms, p99 {_p99(idle) * 1000:,.0f} ms",
            "p50 ≤ 250 ms",
            _verdict(statistics.median(loaded) <= 0.25),
        ),
    ]


async def _main(args: argparse.Namespace) -> None:
    base = load_settings()
    rows = await lane_rows(
        base, args.events, args.backlog, args.control_events, args.partitions, args.repeat
    )
    for row in rows:
        print(" | ".join(row))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--backlog", type=int, default=200_000)
    parser.add_argument("--control-events", type=int, default=20)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=1)
    asyncio.run(_main(parser.parse_args()))
