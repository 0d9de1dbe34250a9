"""An archive cut (ADR 0021) on a ledger whose checkpointer keeps the transparency
log: a partition is detached only once the log holds its events, the audit of the
log still passes across the cut, and a proof of an archived event says why not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ledger.roles import Role
from tests.fixtures_ledger import LedgerHarness, run_cli, send_halts, start_ledger

pytestmark = pytest.mark.integration

PARTITION_ROWS = 10


def _once(ledger: LedgerHarness) -> dict[str, Any]:
    result = run_cli(ledger.env, "checkpointer", "run", "--key", "ledger", "--once", "--json")
    assert result.returncode == 0, result.stderr
    checkpoint: dict[str, Any] = json.loads(result.stdout)["checkpoint"]
    assert checkpoint is not None
    return checkpoint


async def _halts(ledger: LedgerHarness, count: int, job: str) -> list[str]:
    async with ledger.producer() as producer:
        ids = await send_halts(producer, ledger.keys[Role.OPERATOR], range(count), job, 5)
    for event_id in ids:
        assert (await ledger.verdict(event_id))["status"] == "committed"
    return ids


async def test_detach_waits_for_the_log_and_the_log_audits_across_the_cut(
    ledger_servers: Any, ledger_settings: Any, tmp_path: Path
) -> None:
    ledger = await start_ledger(
        ledger_servers, ledger_settings, tmp_path, partition_rows=PARTITION_ROWS
    )
    env = ledger.env
    try:
        _once(ledger)
        halts = await _halts(ledger, 15, "logged")
        # the first partition now holds events the checkpointer has not appended
        refused = run_cli(env, "archive", "detach", "--before", str(PARTITION_ROWS + 1))
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "transparency log has not appended" in refused.stderr

        size = _once(ledger)["tree_size"]
        detached = run_cli(env, "archive", "detach", "--before", str(PARTITION_ROWS + 1), "--json")
        assert detached.returncode == 0, detached.stderr
        await _halts(ledger, 3, "after-cut")
        _once(ledger)

        audit = run_cli(env, "audit", "--json")
        report = json.loads(audit.stdout)
        assert audit.returncode == 0, report["problems"]
        assert report["archived"]["before_position"] == PARTITION_ROWS + 1
        assert report["transparency_log"]["leaves"] > size

        conn = await ledger.connect()
        try:
            archived = await conn.fetchval(
                "SELECT event_id::text FROM event_keys WHERE position <= $1"
                " ORDER BY position LIMIT 1",
                PARTITION_ROWS,
            )
            assert not await conn.fetchval(
                "SELECT count(*) FROM events WHERE position <= $1", PARTITION_ROWS
            )
        finally:
            await conn.close()
        assert archived is not None
        gone = run_cli(env, "prove", "inclusion", archived, "--json")
        assert gone.returncode != 0
        assert "is archived" in gone.stderr
        proof = run_cli(env, "prove", "inclusion", halts[-1], "--json")
        assert proof.returncode == 0, proof.stderr
        assert json.loads(proof.stdout)["event_id"] == halts[-1]
    finally:
        ledger.processor.stop()
