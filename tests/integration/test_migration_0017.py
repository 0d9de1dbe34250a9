"""Migration 0017 converts a ledger that holds events into the partitioned table.

The rows come from a real processor run; they are copied into a database
migrated up to the migration before it (the pre-0017 layout of ``events``, as
a ledger of the previous release holds it), since this code's processor
refuses an older schema. Then ``migrate`` runs on, and the ledger must be the
same ledger: same rows at the same positions, chains verified by
``claw-ledger audit``, and a processor that continues it.
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from claw_ledger.services.postgres import create_database
from ledger.crypto import KeyPair, save_key
from ledger.roles import Role
from storage.migrate import MIGRATIONS_DIR, discover_migrations, migrate, schema_version
from tests.fixtures_ledger import (
    LedgerHarness,
    ProcessorProcess,
    ledger_env,
    run_cli,
    send_halts,
    start_ledger,
)

pytestmark = pytest.mark.integration

#: tables a migration fills itself; their rows are replaced by the source's
_SEEDED = ("control_state", "control_digests")
_NOT_COPIED = ("schema_migrations", "role_grants")
_EVENT_COLUMNS = (
    "position, event_id::text, event_type, stream, producer, occurred_at, recorded_at,"
    " payload_hash_b64u, envelope_sha256, envelope_raw, payload::text, kafka_topic,"
    " kafka_partition, kafka_offset, ledger_seq, prev_chain_hash, chain_hash"
)


async def _database_before_0017(ledger_servers: Any, tmp_path: Path) -> str:
    directory = tmp_path / "migrations-before-0017"
    directory.mkdir()
    for path in MIGRATIONS_DIR.iterdir():
        if path.name.endswith(".sql") and int(path.name[:4]) < 17:
            (directory / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    name = f"claw_pre17_{uuid.uuid4().hex[:8]}"
    await create_database(ledger_servers.server_url, name)
    url: str = ledger_servers.database_url(name)
    report = await migrate(url, directory=directory)
    assert report.version is not None and report.version < 17
    shutil.rmtree(directory)
    return url


async def _copy_ledger(source_url: str, target_url: str) -> None:
    """Every row of every table the old schema has, from ``source`` into ``target``."""
    source = await asyncpg.connect(source_url)
    target = await asyncpg.connect(target_url)
    try:
        tables = [
            r["tablename"]
            for r in await target.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
            )
            if r["tablename"] not in _NOT_COPIED
        ]
        assert "events" in tables
        for table in tables:
            columns = [
                r["column_name"]
                for r in await target.fetch(
                    "SELECT column_name FROM information_schema.columns"
                    " WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
                    table,
                )
            ]
            rows = await source.fetch(f"SELECT {', '.join(columns)} FROM {table}")
            if table in _SEEDED:
                await target.execute(f"DELETE FROM {table}")
            if rows:
                # COPY writes the identity columns as given: the positions stay
                await target.copy_records_to_table(
                    table, columns=columns, records=[tuple(r) for r in rows]
                )
        await target.execute(
            "SELECT setval(pg_get_serial_sequence('quarantine', 'id'),"
            " (SELECT coalesce(max(id), 0) + 1 FROM quarantine), false)"
        )
        old_max = await target.fetchval("SELECT max(position) FROM events")
        await target.execute(
            f"ALTER TABLE events ALTER COLUMN position RESTART WITH {int(old_max) + 1}"
        )
    finally:
        await source.close()
        await target.close()


async def _events(url: str) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(url)
    try:
        return [
            tuple(r)
            for r in await conn.fetch(f"SELECT {_EVENT_COLUMNS} FROM events ORDER BY position")
        ]
    finally:
        await conn.close()


async def test_migration_keeps_the_ledger_and_the_processor_continues_it(
    ledger_servers: Any, ledger_settings: Any, tmp_path: Path
) -> None:
    ledger = await start_ledger(ledger_servers, ledger_settings, tmp_path, register_roles=False)
    operator = await ledger.register_key(Role.OPERATOR)
    try:
        async with ledger.producer() as producer:
            event_ids = await send_halts(producer, operator, range(30), "before-0017", 5)
        for event_id in event_ids:
            assert (await ledger.verdict(event_id))["status"] == "committed"
        # the transparency log of the previous release: leaves, nodes, a checkpoint
        ledger_key = KeyPair.generate("ledger")
        save_key(ledger_key, tmp_path / "keys" / "ledger.key")
        await ledger.register(ledger_key, "ledger", "ledger")
        once = run_cli(ledger.env, "checkpointer", "run", "--key", "ledger", "--once", "--json")
        assert once.returncode == 0, once.stderr
        checkpoint = json.loads(once.stdout)["checkpoint"]
        assert (await ledger.verdict(checkpoint["event_id"]))["status"] == "committed"
    finally:
        ledger.processor.stop()
    assert ledger.settings.database_url
    old_url = await _database_before_0017(ledger_servers, tmp_path)
    await _copy_ledger(ledger.settings.database_url, old_url)
    before = await _events(old_url)
    # the admin's, the operator's and the ledger key's registrations, 30 halts, the checkpoint
    assert len(before) == 34

    report = await migrate(old_url)
    later = [m.version for m in discover_migrations() if m.version >= 17]
    assert [m.version for m in report.applied] == later
    assert await schema_version(old_url) == later[-1]
    assert await _events(old_url) == before, "every row kept, at its position"

    settings = replace(ledger.settings, database_url=old_url)
    env = ledger_env(settings)
    audit = run_cli(env, "audit", "--json")
    assert audit.returncode == 0, audit.stdout[-3000:] + audit.stderr
    assert json.loads(audit.stdout)["transparency_log"] == {"leaves": 33, "checkpoints": 1}
    # an event is found by its id through event_keys, and its leaf by its position
    proof = run_cli(env, "prove", "inclusion", event_ids[0], "--json")
    assert proof.returncode == 0, proof.stderr
    assert json.loads(proof.stdout)["event_id"] == event_ids[0]

    conn = await asyncpg.connect(old_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM event_keys") == len(before)
        assert (
            await conn.fetchval("SELECT relkind::text FROM pg_class WHERE relname = 'events'")
            == "p"
        )
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await conn.execute("DELETE FROM events WHERE position = 1")
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            partition = await conn.fetchval(
                "SELECT name FROM event_partitions ORDER BY position_from LIMIT 1"
            )
            await conn.execute(f'TRUNCATE "{partition}"')
    finally:
        await conn.close()

    # the same consumer group continues the chains on the converted table
    processor = ProcessorProcess(
        settings, tmp_path / "after-0017.log", ledger.processor.group, batch_size=7
    )
    processor.start()
    after = LedgerHarness(settings, ledger.admin, {}, processor, env)
    try:
        async with after.producer() as producer:
            more = await send_halts(producer, operator, range(30, 50), "after-0017", 5)
        for event_id in more:
            assert (await after.verdict(event_id))["status"] == "committed"
    finally:
        processor.stop()
    rows = await _events(old_url)
    assert len(rows) == len(before) + 20
    assert rows[: len(before)] == before
    assert min(r[0] for r in rows[len(before) :]) > before[-1][0]
    audit = run_cli(env, "audit", "--json")
    assert audit.returncode == 0, audit.stdout[-3000:] + audit.stderr
