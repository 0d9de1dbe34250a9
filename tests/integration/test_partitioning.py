"""The partitioned events table (migration 0017, ADR 0021) on the real servers:
partitions cut ahead of ingest, the oldest detached by the owner, and the audit
and replay verifying every chain from the archive cut on."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from ledger.roles import Role
from tests.fixtures_ledger import (
    LedgerHarness,
    run_cli,
    run_cli_on_a_terminal,
    send_halts,
    start_ledger,
)

pytestmark = pytest.mark.integration

PARTITION_ROWS = 10


async def _publish_halts(ledger: LedgerHarness, count: int, job: str, jobs: int = 7) -> list[str]:
    operator = ledger.keys.get(Role.OPERATOR) or await ledger.register_key(Role.OPERATOR)
    ledger.keys[Role.OPERATOR] = operator
    async with ledger.producer() as producer:
        event_ids = await send_halts(producer, operator, range(count), job, jobs)
    for event_id in event_ids:
        verdict = await ledger.verdict(event_id)
        assert verdict["status"] == "committed", verdict
    return event_ids


@pytest_asyncio.fixture(loop_scope="session")
async def ledger(
    ledger_servers: Any, ledger_settings: Any, tmp_path: Path
) -> AsyncIterator[LedgerHarness]:
    """A fresh ledger whose events table is cut every ``PARTITION_ROWS`` positions."""
    harness = await start_ledger(
        ledger_servers,
        ledger_settings,
        tmp_path,
        register_roles=False,
        partition_rows=PARTITION_ROWS,
    )
    try:
        yield harness
    finally:
        harness.processor.stop()


def _json(result: Any) -> dict[str, Any]:
    assert result.stdout, result.stderr
    value: dict[str, Any] = json.loads(result.stdout)
    return value


async def test_ingest_cuts_partitions_and_detach_keeps_chains_verifiable(
    ledger: LedgerHarness,
) -> None:
    # 2 registrations + 45 halts: more than the partitions cut ahead at the start
    await _publish_halts(ledger, 45, "archive")
    conn = await ledger.connect()
    try:
        total = await conn.fetchval("SELECT count(*) FROM events")
        partitions = await conn.fetch(
            "SELECT name, position_from, position_to FROM event_partitions ORDER BY position_from"
        )
        holding = await conn.fetch(
            "SELECT tableoid::regclass::text AS name, count(*) FROM events GROUP BY 1"
        )
    finally:
        await conn.close()
    assert total == 47
    assert len(holding) >= 4, "rows spread over several partitions"
    # positions have gaps (a rolled-back commit spends its positions): count what is there
    per_partition = {r["name"]: r["count"] for r in holding}
    archived = sum(per_partition.get(p["name"], 0) for p in partitions[:2])
    assert all(p["position_to"] - p["position_from"] == PARTITION_ROWS for p in partitions)

    env = ledger.env
    # only the oldest, at its exact end, and only once it is full
    refused = run_cli(env, "archive", "detach", "--before", "15")
    assert refused.returncode == 2 and "not a partition boundary" in refused.stderr
    refused = run_cli(env, "archive", "detach", "--partition", partitions[1]["name"])
    assert refused.returncode == 2 and "not the oldest" in refused.stderr

    # as the owner runs it on a terminal: a bar of the partition's events verified
    code, out, shown = run_cli_on_a_terminal(env, "archive", "detach", "--before", "11")
    assert code == 0 and out.startswith(f"detached {partitions[0]['name']}:"), shown
    verified, in_partition = re.findall(r"verify\b.*?(\d+)/(\d+)", shown)[-1]
    assert int(verified) == int(in_partition) == per_partition[partitions[0]["name"]] > 0
    first = _json(run_cli(env, "archive", "list", "--json"))["archived"]
    assert first["before_position"] == 11
    assert first["events"] == per_partition[partitions[0]["name"]]
    second = _json(
        run_cli(env, "archive", "detach", "--partition", partitions[1]["name"], "--json")
    )
    assert second["boundary"]["before_position"] == 21
    assert second["boundary"]["events"] == archived

    audit = run_cli(env, "audit", "--json")
    report = _json(audit)
    assert audit.returncode == 0, report["problems"]
    assert report["events"] == total - archived
    assert report["archived"]["before_position"] == 21
    text = run_cli(env, "audit")
    assert "archived: positions below 21" in text.stdout

    replayed = run_cli(env, "replay", "--source", "ledger", "--compare", "--json")
    summary = _json(replayed)
    assert replayed.returncode == 0, summary
    assert summary["archived"]["events"] == archived
    assert summary["events"] == total - archived
    assert summary["diffs"] == []
    # a moment inside the archived range cannot be rebuilt from the table
    early = run_cli(env, "replay", "--until", "2000-01-01T00:00:00Z", "--json")
    assert early.returncode == 2 and "before the archive cut" in early.stderr

    # the detached rows are still in the database, outside the ledger table, for export
    conn = await ledger.connect()
    try:
        kept = await conn.fetchval(f'SELECT count(*) FROM "{partitions[0]["name"]}"')
        attached = await conn.fetchval(
            "SELECT count(*) FROM pg_inherits WHERE inhrelid = $1::regclass",
            partitions[0]["name"],
        )
        # an archived event can never be recorded again: its keys stay
        keys = await conn.fetchval("SELECT count(*) FROM event_keys")
    finally:
        await conn.close()
    assert kept == per_partition[partitions[0]["name"]] and attached == 0
    assert keys == total

    # ingest goes on after the cut, and the chains still verify from it
    await _publish_halts(ledger, 5, "after-cut")
    audit = run_cli(env, "audit", "--json")
    assert audit.returncode == 0, _json(audit)["problems"]
    listing = _json(run_cli(env, "archive", "list", "--json"))
    states = {p["name"]: p["state"] for p in listing["partitions"]}
    assert states[partitions[0]["name"]] == "detached"
    assert states[partitions[2]["name"]] == "attached"


async def test_audit_finds_a_break_right_after_the_cut(ledger: LedgerHarness) -> None:
    # one stream, so one chain: it holds positions on both sides of the cut
    # whichever order the lane commits its batches in
    await _publish_halts(ledger, 20, "cut-break", jobs=1)
    detached = run_cli(ledger.env, "archive", "detach", "--before", "11", "--json")
    assert detached.returncode == 0, detached.stderr
    conn = await ledger.connect()
    try:
        row = await conn.fetchrow(
            "SELECT e.position, e.kafka_partition FROM events e JOIN archive_chain_heads h"
            " ON h.kafka_topic = e.kafka_topic AND h.kafka_partition = e.kafka_partition"
            " AND e.ledger_seq = h.ledger_seq + 1 ORDER BY e.position LIMIT 1"
        )
        assert row is not None, "a chain continues after the cut"
        # the owner forges the first link after the cut (triggers off, as an attacker would)
        await conn.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
        await conn.execute(
            "UPDATE events SET prev_chain_hash = 'forged' WHERE position = $1",
            row["position"],
        )
        await conn.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")
    finally:
        await conn.close()
    audit = run_cli(ledger.env, "audit", "--json")
    assert audit.returncode == 1
    problems = _json(audit)["problems"]
    assert any(
        p["partition"] == row["kafka_partition"] and "prev hash" in p["problem"] for p in problems
    ), problems


async def test_the_api_answers_an_archived_event_with_where_it_went(
    ledger: LedgerHarness,
) -> None:
    import httpx

    from claw_ledger.api import ApiConfig, create_app
    from tests.fixtures_api import UvicornThread, create_key

    event_ids = await _publish_halts(ledger, 20, "api-archive", jobs=1)
    detached = run_cli(ledger.env, "archive", "detach", "--before", "11", "--json")
    assert detached.returncode == 0, detached.stderr
    conn = await ledger.connect()
    try:
        positions = {
            str(r["event_id"]): r["position"]
            for r in await conn.fetch("SELECT event_id, position FROM event_keys")
        }
    finally:
        await conn.close()
    archived = next(e for e in event_ids if positions[e] < 11)
    kept = next(e for e in event_ids if positions[e] >= 11)
    key = create_key(ledger.env, "archive-reader", "reader")
    assert ledger.settings.database_url
    config = ApiConfig(ledger.settings.database_url, None, "unused.ingress")
    headers = {"Authorization": f"Bearer {key}"}
    with (
        UvicornThread(create_app(config=config)) as server,
        httpx.Client(base_url=server.url, headers=headers, timeout=30) as client,
    ):
        gone = client.get(f"/v1/events/{archived}")
        assert gone.status_code == 410, gone.text
        error = gone.json()["error"]
        assert error["reason_code"] == "API_EVENT_ARCHIVED"
        assert f"position {positions[archived]}" in error["message"]
        assert "positions below 11" in error["message"]
        assert client.get(f"/v1/events/{kept}").json()["status"] == "committed"
        unknown = client.get("/v1/events/00000000-0000-4000-8000-000000000000")
        assert unknown.json()["error"]["reason_code"] == "API_NOT_FOUND"


async def test_writer_cannot_detach(ledger: LedgerHarness) -> None:
    """The processor's role owns nothing: the archive is the owner's alone."""
    from dataclasses import replace

    from claw_ledger.archiving import detach_oldest
    from claw_ledger.db_roles import migrate_with_roles, role_urls
    from ledger.errors import ConfigError

    try:
        await _publish_halts(ledger, 12, "writer")
        await migrate_with_roles(ledger.settings)
        assert ledger.settings.database_url
        writer_url, _ = role_urls(ledger.settings.state_dir, ledger.settings.database_url)
        as_writer = replace(ledger.settings, database_url=writer_url)
        with pytest.raises(ConfigError, match="needs the database owner"):
            await detach_oldest(as_writer, before=PARTITION_ROWS + 1)
        conn = await asyncpg.connect(ledger.settings.database_url)
        try:
            assert await conn.fetchval("SELECT count(*) FROM archive_boundaries") == 0
            assert await conn.fetchval("SELECT count(*) FROM events") == 14
        finally:
            await conn.close()
    finally:
        if ledger.settings.database_url:
            await _drop_roles(ledger.settings.database_url)


async def _drop_roles(owner_url: str) -> None:
    """Roles are server-wide: remove this database's before it is left behind."""
    from urllib.parse import urlsplit

    from storage.roles import role_names

    conn = await asyncpg.connect(owner_url)
    try:
        for name in role_names(urlsplit(owner_url).path[1:]):
            if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", name):
                await conn.execute(f'DROP OWNED BY "{name}"')
                await conn.execute(f'DROP ROLE "{name}"')
    finally:
        await conn.close()
