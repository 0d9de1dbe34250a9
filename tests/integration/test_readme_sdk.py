"""The README's producer SDK example runs as written against a real ledger."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures_ledger import ledger_env, start_ledger

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_sdk_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Producer SDK\n", 1)[1].split("\n## ", 1)[0]
    blocks: list[str] = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the SDK section holds one runnable example"
    return blocks[0]


def test_the_example_needs_one_import_line_from_the_sdk() -> None:
    imports = [
        line
        for line in readme_sdk_example().splitlines()
        if line.startswith(("import ", "from ")) and line not in ("import asyncio", "import os")
    ]
    assert imports == [
        "from producers import LedgerProducer, NewEvent, await_verdict, load_key, topic_names"
    ]


async def test_the_readme_example_publishes_and_gets_verdicts(
    ledger_servers: Any, ledger_settings: Any, tmp_path: Path
) -> None:
    # a ledger of its own: the example halts jobs and publishes a thousand events
    ledger = await start_ledger(ledger_servers, ledger_settings, tmp_path)
    try:
        result = subprocess.run(
            [sys.executable, "-c", readme_sdk_example()],
            env=ledger_env(ledger.settings),
            capture_output=True,
            text=True,
            timeout=180,
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        first, second = result.stdout.strip().splitlines()
        assert first.startswith("Committed(position=")
        assert second == "1000 published"
        # publish_many returns once Kafka holds the events; the processor commits them after
        conn = await ledger.connect()
        try:
            deadline = time.monotonic() + 120
            drills = 0
            while drills < 1000 and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                drills = await conn.fetchval(
                    "SELECT count(*) FROM events WHERE event_type = 'agent.halted'"
                    " AND stream LIKE 'halt:job:drill-%'"
                )
            refused = await conn.fetchval("SELECT count(*) FROM quarantine")
        finally:
            await conn.close()
        assert (drills, refused) == (1000, 0)
    finally:
        ledger.processor.stop()
