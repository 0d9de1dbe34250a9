"""A pid file that outlived its process names no process of ours: ``status`` does not
call it running, and ``stop`` and ``down`` never signal the process that has its pid now."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures_ledger import run_cli


@pytest.fixture
def stranger() -> Iterator[subprocess.Popen[bytes]]:
    """Another program, holding the pid a stale pid file names."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        yield process
    finally:
        process.kill()
        process.wait(timeout=30)


@pytest.mark.parametrize("name", ["processor", "checkpointer"])
def test_a_stale_pid_file_is_not_taken_for_a_running_command(
    offline_cli_env: dict[str, str], stranger: subprocess.Popen[bytes], name: str
) -> None:
    state_dir = Path(offline_cli_env["CLAW_LEDGER_STATE_DIR"])
    (state_dir / f"{name}.pid").write_text(f"{stranger.pid}\n")
    status = run_cli(offline_cli_env, name, "status", timeout=60)
    assert status.returncode == 1 and "not running" in status.stdout, status.stdout
    stopped = run_cli(offline_cli_env, name, "stop", timeout=60)
    assert stopped.returncode == 0 and "was not running" in stopped.stdout, stopped.stdout
    assert stranger.poll() is None  # untouched


def test_down_leaves_the_process_a_stale_pid_file_names(
    offline_cli_env: dict[str, str], stranger: subprocess.Popen[bytes]
) -> None:
    state_dir = Path(offline_cli_env["CLAW_LEDGER_STATE_DIR"])
    for name in ("processor", "checkpointer"):
        (state_dir / f"{name}.pid").write_text(f"{stranger.pid}\n")
    down = run_cli(offline_cli_env, "down", timeout=120)
    assert down.returncode == 0, down.stderr
    assert "processor" not in down.stdout and "checkpointer" not in down.stdout, down.stdout
    assert stranger.poll() is None
