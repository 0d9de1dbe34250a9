"""``processor supervise`` restarts a processor that dies, and stops cleanly."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from claw_ledger.processor_control import processor_command

pytestmark = [pytest.mark.integration, pytest.mark.crash]


def _children(pid: int) -> list[psutil.Process]:
    return [p for p in psutil.Process(pid).children() if p.is_running()]


def _wait_child(pid: int, not_pid: int | None = None, timeout: float = 60) -> psutil.Process:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = [p for p in _children(pid) if p.pid != not_pid]
        if kids:
            return kids[0]
        time.sleep(0.1)
    raise AssertionError("the supervisor has no processor child")


async def test_supervisor_restarts_a_killed_processor(running_ledger: Any) -> None:
    supervisor = subprocess.Popen(
        processor_command("supervise", "--group", running_ledger.processor.group),
        env=running_ledger.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        first = _wait_child(supervisor.pid)
        first.kill()  # SIGKILL: a crash
        second = _wait_child(supervisor.pid, not_pid=first.pid)
        assert second.pid != first.pid
        # the ledger still works (either processor of the group may take the event)
        await running_ledger.halt("job:supervised", "after a restart")
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=60) == 0
        assert not second.is_running() or second.status() == psutil.STATUS_ZOMBIE
        stderr = supervisor.stderr.read().decode() if supervisor.stderr else ""
        assert "restarting" in stderr
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait(timeout=30)
        if supervisor.stderr:
            supervisor.stderr.close()


async def test_a_processor_stops_when_its_supervisor_is_killed_outright(
    running_ledger: Any, tmp_path: Path
) -> None:
    """`processor status` and `stop` know the supervisor's pid. Killed with SIGKILL, it
    cannot pass a SIGTERM on: its child, adopted by init, kept committing, unseen,
    beside the next `processor start`'s."""
    log = tmp_path / "supervised.log"
    with log.open("wb") as output:
        supervisor = subprocess.Popen(
            processor_command("supervise", "--group", running_ledger.processor.group),
            env=running_ledger.env,
            stdout=output,
            stderr=output,
        )
    child = _wait_child(supervisor.pid)
    try:
        time.sleep(2)  # running, its watch started
        supervisor.kill()
        supervisor.wait(timeout=30)
        child.wait(timeout=60)  # psutil.TimeoutExpired if it lives on
    finally:
        if child.is_running():
            child.kill()
    shown = log.read_text()
    assert f"the supervisor (pid {supervisor.pid}) is gone: stopping this processor" in shown
