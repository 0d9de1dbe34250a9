"""Tampering with the ledger behind the processor's back is detected by
``claw-ledger audit``; a second consumer group is refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from claw_ledger.processor_control import processor_command
from ledger.roles import Role
from tests.fixtures_ledger import start_ledger

pytestmark = pytest.mark.integration


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "claw_ledger", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_audit_reports_altered_and_missing_rows(
    ledger_servers: Any, ledger_settings: Any, tmp_path: Path
) -> None:
    ledger = await start_ledger(ledger_servers, ledger_settings, tmp_path)
    try:
        operator = ledger.keys[Role.OPERATOR]
        for n in range(6):
            verdict = await ledger.publish(
                operator,
                "agent.halted",
                "halt:job:audit",
                {"target": "job:audit", "reason": f"r{n}"},
            )
            assert verdict["status"] == "committed"
        clean = _cli(ledger.env, "audit", "--json")
        assert clean.returncode == 0, clean.stdout
        conn = await ledger.connect()
        try:
            partition, last_seq = await conn.fetchrow(
                "SELECT kafka_partition, max(ledger_seq) FROM events"
                " WHERE stream = 'halt:job:audit' GROUP BY kafka_partition"
            )
            # only a superuser who disables the guard can do this: that is what audit is for
            await conn.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
            await conn.execute(
                "UPDATE events SET envelope_raw = convert_to(replace("
                "convert_from(envelope_raw, 'UTF8'), '\"r2\"', '\"r9\"'), 'UTF8')"
                " WHERE stream = 'halt:job:audit'"
            )
            altered = _cli(ledger.env, "audit", "--json")
            await conn.execute(
                "DELETE FROM events WHERE kafka_partition = $1 AND ledger_seq = $2",
                partition,
                last_seq,
            )
            truncated = _cli(ledger.env, "audit", "--json")
            await conn.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")
        finally:
            await conn.close()
        assert altered.returncode == 1
        problems = {p["problem"] for p in json.loads(altered.stdout)["problems"]}
        assert "chain hash mismatch" in problems
        assert "envelope does not verify" in problems
        assert truncated.returncode == 1
        tail = json.loads(truncated.stdout)["problems"]
        assert any(p["problem"].startswith(f"chain ends at seq {last_seq - 1}") for p in tail)
    finally:
        ledger.processor.stop()


async def test_a_second_consumer_group_is_refused(running_ledger: Any) -> None:
    result = subprocess.run(
        processor_command("run", "--group", "intruder", "--no-status"),
        env=running_ledger.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert f"--group {running_ledger.processor.group}" in result.stderr
