"""``claw-ledger status`` and ``/readyz`` tell a ledger whose processor died from
one that is merely idle.

Before, readiness looked at the servers and the lag only: with the processor
killed and nothing published, the lag stayed 0 and the ledger said ``ready:
yes`` while nothing could be committed; the dead processor was listed beside
the live ones, with nothing to tell them apart. Each processor beats every
0.5 s, idle or busy, so the age of its last beat is the figure to judge by.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures_ledger import LedgerHarness, run_cli, started_ledger

pytestmark = pytest.mark.integration

#: short enough for a test, well above the beat interval (0.5 s)
BEAT_AGE = "3"


def _status(ledger: LedgerHarness, *extra: str) -> tuple[int, dict[str, Any]]:
    result = run_cli(ledger.env, "status", "--json", "--max-beat-age", BEAT_AGE, *extra)
    return result.returncode, json.loads(result.stdout)


async def _until(ledger: LedgerHarness, wanted: bool, timeout: float = 30) -> dict[str, Any]:
    """The status document once its processors check is ``wanted``."""
    deadline = time.monotonic() + timeout
    while True:
        code, document = await asyncio.to_thread(_status, ledger)
        if document["checks"]["processors"]["ok"] is wanted:
            assert code == (0 if document["ready"] else 1)
            return document
        assert time.monotonic() < deadline, document
        await asyncio.sleep(0.5)


async def test_a_killed_processor_is_silent_and_the_ledger_not_ready_until_one_runs(
    ledger_servers: Any, ledger_settings: Any, tmp_path: Path
) -> None:
    async with started_ledger(ledger_servers, ledger_settings, tmp_path) as ledger:
        live = await _until(ledger, True)
        assert live["ready"] is True
        # one row per lane the process consumes, each named host:pid:topic:id
        first = set(live["commit_batches"])
        assert {worker.split(":")[2] for worker in first} == {
            ledger.topics.ingress,
            ledger.topics.control,
        }
        assert len({tuple(worker.split(":")[:2]) for worker in first}) == 1
        assert all(live["commit_batches"][w]["last_beat_seconds"] < float(BEAT_AGE) for w in first)

        ledger.processor.kill()
        dead = await _until(ledger, False)
        assert dead["ready"] is False
        assert dead["checks"]["lag"]["ok"] is True  # nothing waits: the lag alone says ready
        assert "claw-ledger processor start" in dead["checks"]["processors"]["detail"]
        assert all(dead["commit_batches"][w]["last_beat_seconds"] > float(BEAT_AGE) for w in first)
        text = await asyncio.to_thread(run_cli, ledger.env, "status", "--max-beat-age", BEAT_AGE)
        assert text.returncode == 1
        assert "ready: NO" in text.stdout
        for worker in first:
            (line,) = [x for x in text.stdout.splitlines() if x.startswith(f"processor {worker}: ")]
            assert "SILENT: last beat" in line and line.endswith("(stopped, or stuck)")

        ledger.processor.start()
        again = await _until(ledger, True)
        assert again["ready"] is True
        # the killed one is still listed, for the five minutes after its last beat
        beats = again["commit_batches"]
        assert set(beats) > first
        assert all(beats[w]["last_beat_seconds"] > float(BEAT_AGE) for w in first)
        assert all(beats[w]["last_beat_seconds"] < float(BEAT_AGE) for w in set(beats) - first)
        # a looser bound counts the killed one's rows as beating: the bound is the caller's
        _, loose = await asyncio.to_thread(_status, ledger, "--max-beat-age", "300")
        assert loose["checks"]["processors"]["detail"].startswith(f"{len(beats)} beating")
