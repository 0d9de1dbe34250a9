"""``make bench`` waits for commits; a processor that exits meanwhile ends the wait
at once with its exit code and log, instead of after the wait's hour."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import ledger as bench_ledger


async def test_a_processor_that_exits_ends_the_wait_at_once(tmp_path: Path) -> None:
    log = tmp_path / "processors.log"
    command = [sys.executable, "-c", "import sys; sys.exit(70)", "processor", "run"]
    proc = subprocess.Popen(command)
    proc.wait(timeout=30)
    bench_ledger._RUNNING[proc] = log
    try:

        async def nothing_committed() -> int:
            return 0

        began = time.monotonic()
        with pytest.raises(RuntimeError) as caught:
            await bench_ledger.until_committed(
                nothing_committed, 10, timeout=3600, every=0.01, what="events"
            )
    finally:
        del bench_ledger._RUNNING[proc]
    assert time.monotonic() - began < 5
    message = str(caught.value)
    assert "only 0 of 10 events committed" in message
    assert "`processor run`" in message and "exited with code 70" in message
    assert str(log) in message


async def test_a_wait_without_processors_still_times_out() -> None:
    async def some_committed() -> int:
        return 3

    with pytest.raises(RuntimeError, match="only 3 of 10 events committed in 0s"):
        await bench_ledger.until_committed(
            some_committed, 10, timeout=0.05, every=0.01, what="events"
        )
