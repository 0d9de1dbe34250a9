"""HTTP API timeline queries over a large ledger, beside a primary-key lookup.

A fresh database is filled with ``events`` synthetic ledger rows in one
``INSERT … SELECT generate_series`` (the query path reads rows, it never
verifies them, so signing a million events would only slow the run down),
then ``claw-ledger serve`` runs in a process of its own and a client sends
timeline queries with each filter of the CLI (and deep cursors), one at
a time. The baseline, in the same run on the same server: ``GET
/v1/events/{id}``, a lookup by the unique ``event_id`` index.

Usage: python -m bench.api_queries --database-url URL [--events 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from bench.serve_process import ServeProcess

__all__ = ["api_rows", "measure"]

Row = tuple[str, str, str, str, str]

_TYPES = (
    "key.registered",
    "policy.published",
    "token.issued",
    "token.revoked",
    "receipt.recorded",
    "run.manifest_approved",
    "run.started",
    "run.completed",
    "agent.halted",
    "agent.resumed",
)
_SIGNERS = 20
_STREAMS = 50_000
_PARTITIONS = 4
_START = datetime(2026, 1, 1, tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STEP_MS = 10

_FILL = f"""
INSERT INTO events (event_id, event_type, stream, producer, occurred_at, payload_hash_b64u,
                    envelope_sha256, envelope_raw, payload, kafka_topic, kafka_partition,
                    kafka_offset, ledger_seq, prev_chain_hash, chain_hash)
SELECT md5('bench' || i)::uuid,
       (ARRAY{list(_TYPES)!r})[1 + i % {len(_TYPES)}],
       'job:' || (i % {_STREAMS}),
       'did:key:z6MkBench' || (i % {_SIGNERS}),
       $1::timestamptz + i * interval '{_STEP_MS} milliseconds',
       md5('h' || i), md5('e' || i), convert_to('{{"bench":' || i || '}}', 'UTF8'),
       jsonb_build_object('body', jsonb_build_object('n', i)),
       'bench.ingress', i % {_PARTITIONS}, i / {_PARTITIONS}, i / {_PARTITIONS} + 1,
       NULL, md5('c' || i)
FROM generate_series(0, $2 - 1) AS i
"""


async def _fill(url: str, events: int) -> str:
    """Fill the ledger and make a reader key; the key."""
    from claw_ledger.apikeys import new_key

    key = new_key()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(_FILL, _START, events)
        await conn.execute("ANALYZE events")
        await conn.execute(
            "INSERT INTO api_keys (key_id, name, role, key_sha256)"
            " VALUES ($1, 'bench', 'reader', $2)",
            key.key_id,
            key.key_sha256,
        )
    finally:
        await conn.close()
    return key.key


def _server(database_url: str, state_dir: str) -> ServeProcess:
    """``claw-ledger serve`` over ``database_url`` and nothing else of this shell's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAW_LEDGER_")} | {
        "CLAW_LEDGER_DATABASE_URL": database_url,
        "CLAW_LEDGER_READER_URL": database_url,
        "CLAW_LEDGER_STATE_DIR": state_dir,
    }
    return ServeProcess(env)


def _queries(events: int, count: int, rng: random.Random) -> list[dict[str, Any]]:
    """``count`` timeline queries, each with filters as a user would send them."""
    span = events * _STEP_MS

    def moment(ms: int) -> str:
        return (_START + timedelta(milliseconds=ms)).isoformat()

    def time_cursor(ms: int) -> str:
        return f"t{int((_START - _EPOCH).total_seconds() * 1_000_000) + ms * 1000}.0"

    kinds: list[Callable[[], dict[str, Any]]] = [
        lambda: {"stream": f"job:{rng.randrange(_STREAMS)}"},
        lambda: {"type": rng.choice(_TYPES), "cursor": str(rng.randrange(events))},
        lambda: {"signer": f"did:key:z6MkBench{rng.randrange(_SIGNERS)}"},
        lambda: {"since": moment(rng.randrange(span)), "type": rng.choice(_TYPES)},
        lambda: (lambda t: {"since": moment(t), "until": moment(t + 60_000)})(rng.randrange(span)),
        lambda: {"until": moment(rng.randrange(span)), "cursor": time_cursor(rng.randrange(span))},
        lambda: {"cursor": str(rng.randrange(events))},
    ]
    return [kinds[i % len(kinds)]() | {"limit": 50} for i in range(count)]


def _timed(client: httpx.Client, calls: list[tuple[str, dict[str, Any]]]) -> list[float]:
    times = []
    for path, params in calls:
        started = time.perf_counter()
        response = client.get(path, params=params)
        times.append(time.perf_counter() - started)
        if response.status_code not in (200, 404):
            raise RuntimeError(f"{path} {params}: {response.status_code} {response.text[:200]}")
    return times


def _p99(times: list[float]) -> float:
    return statistics.quantiles(times, n=100)[98]


async def measure(database_url: str, events: int, queries: int = 1200) -> dict[str, float]:
    """Fill a (fresh, migrated) database at ``database_url`` and time the API on it."""
    started = time.perf_counter()
    key = await _fill(database_url, events)
    filled = time.perf_counter() - started
    rng = random.Random(42)
    lookups = await _event_ids(database_url, [rng.randrange(events) for _ in range(queries)])
    timeline = [("/v1/timeline", q) for q in _queries(events, queries, rng)]
    point: list[tuple[str, dict[str, Any]]] = [(f"/v1/events/{i}", {}) for i in lookups]
    with tempfile.TemporaryDirectory() as state, _server(database_url, state) as server:
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
            _timed(client, timeline[:100] + point[:100])  # warm the pool and the caches
            # interleaved, so both see the same machine at the same time
            both = [c for pair in zip(timeline, point, strict=True) for c in pair]
            times = _timed(client, both)
    return {
        "events": float(events),
        "fill_s": filled,
        "timeline_p50_ms": statistics.median(times[0::2]) * 1000,
        "timeline_p99_ms": _p99(times[0::2]) * 1000,
        "lookup_p50_ms": statistics.median(times[1::2]) * 1000,
        "lookup_p99_ms": _p99(times[1::2]) * 1000,
    }


async def _event_ids(url: str, numbers: list[int]) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT md5('bench' || n)::uuid::text AS id FROM unnest($1::bigint[]) AS n", numbers
        )
    finally:
        await conn.close()
    return [r["id"] for r in rows]


async def api_rows(server_url: str, events: int) -> list[Row]:
    """The bench row, on a new database of the Postgres server at ``server_url``."""
    from claw_ledger.services.postgres import create_database
    from storage.migrate import migrate

    name = f"bench_api_{uuid.uuid4().hex[:8]}"
    await create_database(server_url, name)
    url = server_url.rsplit("/", 1)[0] + "/" + name
    try:
        await migrate(url)
        figures = await measure(url, events)
    finally:
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
    return [
        (
            f"API timeline query with filters over {events:,} events, HTTP, p99"
            f" (p50 {figures['timeline_p50_ms']:.1f} ms)",
            f"{figures['timeline_p99_ms']:.1f} ms",
            f"GET /v1/events/{{id}} (unique index) p99 {figures['lookup_p99_ms']:.1f} ms,"
            f" p50 {figures['lookup_p50_ms']:.1f} ms",
            "≤ 50 ms",
            "met" if figures["timeline_p99_ms"] <= 50 else "NOT met",
        )
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.api_queries")
    parser.add_argument("--database-url", required=True, help="a Postgres server (any database)")
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    for row in asyncio.run(api_rows(args.database_url, args.events)):
        print(" | ".join(row))
