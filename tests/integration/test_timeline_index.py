"""A time-ordered timeline page filtered by type reads its own rows from the
(event_type, occurred_at, position) index (migration 0019), not the ledger past its
bound, and answers what a full scan answers."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from storage.ledger_queries import TimelineFilter, fetch_timeline

pytestmark = pytest.mark.integration

START = datetime(2026, 1, 1, tzinfo=UTC)
EVENTS = 20_000


class _Recording:
    """An asyncpg connection that remembers the statements it ran."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.statements: list[tuple[str, tuple[Any, ...]]] = []

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        self.statements.append((sql, args))
        return list(await self.conn.fetch(sql, *args))


async def test_a_rare_type_since_a_moment_reads_the_type_time_index(
    fresh_database: str,
) -> None:
    conn = await asyncpg.connect(fresh_database)
    try:
        await conn.set_type_codec(
            "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )
        # one agent.halted in 500 events, one event a second
        await conn.execute(
            "INSERT INTO events (event_id, event_type, stream, producer, occurred_at,"
            " payload_hash_b64u, envelope_sha256, envelope_raw, payload, kafka_topic,"
            " kafka_partition, kafka_offset, ledger_seq, chain_hash)"
            " SELECT gen_random_uuid(),"
            " CASE WHEN i % 500 = 7 THEN 'agent.halted' ELSE 'receipt.recorded' END,"
            " 'job:' || (i % 40), 'did:key:z', $1::timestamptz + i * interval '1 second',"
            " 'h', 'e', '\\x7b7d', jsonb_build_object('body', jsonb_build_object('n', i)),"
            " 't', 0, i, i + 1, 'c' FROM generate_series(0, $2 - 1) AS i",
            START,
            EVENTS,
        )
        await conn.execute("ANALYZE events")
        since = START + timedelta(seconds=EVENTS // 4)
        recording = _Recording(conn)
        flt = TimelineFilter(event_type="agent.halted", since=since, by_time=True, limit=10)
        page = await fetch_timeline(recording, flt)
        expected = await conn.fetch(
            "SELECT position FROM events WHERE event_type = 'agent.halted'"
            " AND occurred_at >= $1 ORDER BY occurred_at, position LIMIT 10",
            since,
        )
        assert [r["position"] for r in page.rows] == [r["position"] for r in expected]
        assert len(page.rows) == 10 and page.next_cursor == page.rows[-1]["position"]
        ((sql, args),) = recording.statements
        plan = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args)
        # on the partitioned table each partition has its own copy of the index,
        # named after the partition and the columns
        used = set(re.findall(r'"Index Name": "([^"]+)"', plan))
        assert used and all(
            name == "events_type_occurred_idx" or "event_type_occurred_at_position" in name
            for name in used
        ), used
    finally:
        await conn.close()
