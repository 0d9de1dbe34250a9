"""The inputs of the capacity model (docs/operations.md, "Sizing"), measured in one run.

* raw Ed25519 verify and the processor's stateless checks, events/s on one core;
* one processor, then two processors in one consumer group, end to end over
  the same number of Kafka partitions: sustained events/s, processor CPU per
  event, events per Postgres commit and commits/s; the scaling factor of two
  processors over one, printed beside ``os.cpu_count()``;
* the Postgres commit path alone: COPY of one batch into the partitioned
  ``events`` (with its ``event_keys`` trigger) against the same rows into an
  unpartitioned table with the pre-0017 layout, in µs per event.

``make bench`` adds these rows to its report (``--capacity-events``); on its own,
``python -m bench.capacity --events 5000`` runs on the servers named by
``CLAW_LEDGER_KAFKA`` / ``CLAW_LEDGER_DATABASE_URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from bench.ledger import (
    commit_times,
    migrated_database,
    new_ledger,
    publish_all,
    wait_committed,
)
from bench.micro import Row, processor_cpu_seconds
from bench.workload import sign_halt_events
from claw_ledger.config import Settings, load_settings
from ledger.crypto import KeyPair
from ledger.encoding import sha256_b64u
from ledger.verify import verify_message
from storage.postgres import EVENT_COLUMNS, init_connection

__all__ = ["CapacityFigures", "capacity_rows", "measure"]


#: the events table as migration 0001 made it: global uniques, no partitions
_FLAT_TABLE = """
CREATE TABLE bench_events_flat (
    position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id uuid NOT NULL UNIQUE, event_type text NOT NULL, stream text NOT NULL,
    producer text NOT NULL, occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(), payload_hash_b64u text NOT NULL,
    envelope_sha256 text NOT NULL, envelope_raw bytea NOT NULL, payload jsonb NOT NULL,
    kafka_topic text NOT NULL, kafka_partition integer NOT NULL, kafka_offset bigint NOT NULL,
    ledger_seq bigint NOT NULL, prev_chain_hash text, chain_hash text NOT NULL,
    UNIQUE (kafka_topic, kafka_partition, kafka_offset),
    UNIQUE (kafka_topic, kafka_partition, ledger_seq)
);
CREATE INDEX ON bench_events_flat (stream, position);
CREATE INDEX ON bench_events_flat (event_type, position);
CREATE INDEX ON bench_events_flat (producer, position);
CREATE INDEX ON bench_events_flat (occurred_at, position);
"""


@dataclass(frozen=True)
class ProcessorRun:
    processors: int
    partitions: int
    events: int
    #: committed events/s over the middle 80 % of commits
    sustained: float
    #: the processors' CPU time per committed event
    cpu_us: float
    #: processor commit transactions (distinct ``recorded_at``: one per transaction)
    commits: int
    events_per_commit: float
    commits_per_s: float


@dataclass(frozen=True)
class CapacityFigures:
    cores: int
    #: per CPU second of one core (process time: a shared machine's wall clock
    #: would count other processes' turns)
    raw_verify_per_s: float
    checks_per_s: float
    #: one processor on a one-partition topic: the ceiling of one partition
    single_partition: ProcessorRun
    one: ProcessorRun
    two: ProcessorRun
    #: COPY of one batch, µs per event: partitioned events + event_keys, and flat
    copy_us_partitioned: float
    copy_us_flat: float
    copy_batch: int
    ensure_partitions_us: float

    @property
    def scaling(self) -> float:
        return self.two.sustained / self.one.sustained

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "scaling": self.scaling}


async def _commit_stats(url: str) -> tuple[int, float]:
    """Commit transactions of the benchmark events, and their span in seconds."""
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "SELECT count(DISTINCT recorded_at) AS commits,"
            " extract(epoch FROM max(recorded_at) - min(recorded_at)) AS span"
            " FROM events WHERE event_type = 'agent.halted'"
        )
    finally:
        await conn.close()
    return int(row["commits"]), float(row["span"] or 0.0)


async def processor_run(
    base: Settings, events: int, processors: int, partitions: int
) -> ProcessorRun:
    """``events`` pre-signed events through ``processors`` processes in one group."""
    ledger = await new_ledger(base, processors, partitions)
    url = ledger.settings.database_url
    assert url
    try:
        workload = sign_halt_events(ledger.operator, events)
        cpu_before = processor_cpu_seconds(ledger.processors)
        await publish_all(ledger, workload)
        await wait_committed(url, events, timeout=3600)
        cpu = processor_cpu_seconds(ledger.processors) - cpu_before
        rows = await commit_times(url)
        commits, span = await _commit_stats(url)
    finally:
        ledger.stop_processors()
    committed = sorted(float(r["at"]) for r in rows)
    lo, hi = committed[len(committed) // 10], committed[len(committed) * 9 // 10]
    return ProcessorRun(
        processors=processors,
        partitions=partitions,
        events=events,
        sustained=(len(committed) * 0.8) / max(hi - lo, 1e-9),
        cpu_us=cpu / events * 1e6,
        commits=commits,
        events_per_commit=events / max(commits, 1),
        commits_per_s=commits / max(span, 1e-9),
    )


def _records(raws: list[tuple[str, str, bytes]], first: int) -> list[tuple[Any, ...]]:
    now = datetime.now(UTC)
    records = []
    for seq, (event_id, stream, raw) in enumerate(raws, start=first + 1):
        envelope = json.loads(raw)
        payload = envelope["payload"]
        records.append(
            (
                uuid.UUID(event_id),
                payload["event_type"],
                stream,
                payload["producer"],
                now,
                envelope["payload_hash_b64u"],
                sha256_b64u(raw),
                raw,
                json.dumps(payload, separators=(",", ":")).encode(),
                seq - 1,
                seq,
                None,
                sha256_b64u(raw),
                "bench",
                0,
            )
        )
    return records


async def commit_path(base: Settings, batch: int = 2_000, batches: int = 8) -> dict[str, float]:
    """COPY of ``batch`` events per transaction: partitioned vs flat, median µs per event."""
    assert base.database_url
    name = f"bench_copy_{uuid.uuid4().hex[:8]}"
    url = await migrated_database(base.database_url, name)
    raws = sign_halt_events(KeyPair.generate("operator"), batch * batches)
    conn = await asyncpg.connect(url)
    try:
        await init_connection(conn)
        await conn.execute(_FLAT_TABLE)
        # room for every position this run takes, cut before the clock starts
        await conn.fetchval("SELECT claw_ensure_event_partitions($1)", batch * batches * 2)
        timings: dict[str, list[float]] = {"events": [], "bench_events_flat": []}
        for n in range(batches):
            records = _records(raws[n * batch : (n + 1) * batch], n * batch)
            order = ("events", "bench_events_flat") if n % 2 else ("bench_events_flat", "events")
            for table in order:
                started = time.perf_counter()
                async with conn.transaction():
                    await conn.copy_records_to_table(table, columns=EVENT_COLUMNS, records=records)
                timings[table].append(time.perf_counter() - started)
        ensure = []
        for _ in range(50):
            started = time.perf_counter()
            await conn.fetchval("SELECT claw_ensure_event_partitions()")
            ensure.append(time.perf_counter() - started)
    finally:
        await conn.close()
    return {
        "partitioned_us": statistics.median(timings["events"]) / batch * 1e6,
        "flat_us": statistics.median(timings["bench_events_flat"]) / batch * 1e6,
        "ensure_us": statistics.median(ensure) * 1e6,
    }


def cpu_rates(n: int = 5_000) -> tuple[float, float]:
    """Raw Ed25519 verifies and ``verify_message`` calls per CPU second, one core."""
    key = KeyPair.generate()
    message, verify_key = b"x" * 43, key.signing_key.verify_key
    signature = key.sign(message)
    started = time.process_time()
    for _ in range(n):
        verify_key.verify(message, signature)
    raw = n / (time.process_time() - started)
    raws = [raw for _, _, raw in sign_halt_events(key, n, workers=1)]
    started = time.process_time()
    for envelope in raws:
        verify_message(envelope)
    return raw, n / (time.process_time() - started)


async def measure(base: Settings, events: int, partitions: int = 4) -> CapacityFigures:
    raw, checks = cpu_rates()
    single = await processor_run(base, events, 1, 1)
    one = await processor_run(base, events, 1, partitions)
    two = await processor_run(base, events, 2, partitions)
    copy = await commit_path(base)
    return CapacityFigures(
        cores=os.cpu_count() or 1,
        raw_verify_per_s=raw,
        checks_per_s=checks,
        single_partition=single,
        one=one,
        two=two,
        copy_us_partitioned=copy["partitioned_us"],
        copy_us_flat=copy["flat_us"],
        copy_batch=2_000,
        ensure_partitions_us=copy["ensure_us"],
    )


def capacity_rows(f: CapacityFigures) -> list[Row]:
    """The figures as report rows ``(measure, result, baseline, target, verdict)``."""
    per_core = 1e6 / f.one.cpu_us if f.one.cpu_us else 0.0
    return [
        (
            "capacity: stateless checks (verify_message) per CPU second, one core",
            f"{f.checks_per_s:,.0f} ev/s",
            f"raw Ed25519 verify {f.raw_verify_per_s:,.0f} /s",
            "",
            "",
        ),
        (
            "capacity: 1 processor, 1 partition (the ceiling of one partition), end to end",
            f"{f.single_partition.sustained:,.0f} ev/s;"
            f" {f.single_partition.cpu_us:,.0f} µs CPU/event",
            f"4 partitions: {f.one.sustained:,.0f} ev/s",
            "",
            "",
        ),
        (
            f"capacity: 1 processor, {f.one.partitions} partitions, end to end",
            f"{f.one.sustained:,.0f} ev/s; {f.one.cpu_us:,.0f} µs CPU/event"
            f" (= {per_core:,.0f} ev/s per processor core)",
            f"{f.checks_per_s:,.0f} checks per CPU second",
            "",
            "",
        ),
        (
            f"capacity: 2 processors, one group, {f.two.partitions} partitions, end to end",
            f"{f.two.sustained:,.0f} ev/s; {f.two.cpu_us:,.0f} µs CPU/event",
            f"1 processor {f.one.sustained:,.0f} ev/s: scaling ×{f.scaling:.2f}"
            f" on {f.cores} core(s)",
            "",
            "",
        ),
        (
            "capacity: Postgres commits (1 processor / 2 processors)",
            f"{f.one.events_per_commit:,.0f} / {f.two.events_per_commit:,.0f} events per commit;"
            f" {f.one.commits_per_s:,.1f} / {f.two.commits_per_s:,.1f} commits/s",
            "",
            "",
            "",
        ),
        (
            f"capacity: COPY of {f.copy_batch:,} events per transaction, µs per event",
            f"{f.copy_us_partitioned:,.1f} µs partitioned (+ event_keys)",
            f"{f.copy_us_flat:,.1f} µs unpartitioned, pre-0017 layout"
            f" (ratio {f.copy_us_partitioned / f.copy_us_flat:.2f});"
            f" partition check {f.ensure_partitions_us:,.0f} µs per 10,000 events",
            "",
            "",
        ),
    ]


async def _main(args: argparse.Namespace) -> None:
    import tempfile
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    # the processors' log and state go to a directory of this run
    base = load_settings(state_dir=Path(tempfile.mkdtemp(prefix="claw-capacity-")))
    figures = await measure(base, args.events, args.partitions)
    table = Table(title=f"claw-ledger capacity inputs ({figures.cores} cores)")
    for column in ("measure", "result", "baseline (same run)"):
        table.add_column(column, overflow="fold")
    for row in capacity_rows(figures):
        table.add_row(*row[:3])
    console = Console()
    console.print(table)
    if args.json:
        console.print_json(json.dumps(figures.to_json()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    asyncio.run(_main(parser.parse_args()))
