"""Start, stop and configure the checkpointer (``claw-ledger checkpointer``).

The detached checkpointer is ``checkpointer run`` in its own session, its pid
in ``<state_dir>/checkpointer.pid`` and its output in
``<state_dir>/checkpointer.log``. It rides out database outages by itself
(it reconnects and resumes from the stored tree), so it needs no supervisor.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from claw_ledger.config import Settings
from claw_ledger.services.process import pid_alive, spawn_detached, terminate

__all__ = [
    "checkpointer_pid",
    "log_tail",
    "start_checkpointer",
    "stop_checkpointer",
]


def _pid_file(settings: Settings) -> Path:
    return settings.state_dir / "checkpointer.pid"


def _log_file(settings: Settings) -> Path:
    return settings.state_dir / "checkpointer.log"


def checkpointer_pid(settings: Settings) -> int | None:
    try:
        pid = int(_pid_file(settings).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def log_tail(settings: Settings, lines: int = 15) -> str:
    try:
        text = _log_file(settings).read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def start_checkpointer(settings: Settings, run_args: list[str]) -> tuple[int | None, bool]:
    """Start ``checkpointer run RUN_ARGS`` detached; (pid, already_running).

    The pid is ``None`` when the process exited within its first second
    (a key that may not sign, another checkpointer): the log says why.
    """
    existing = checkpointer_pid(settings)
    if existing is not None:
        return existing, True
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["CLAW_LEDGER_STATE_DIR"] = str(settings.state_dir)
    for name, value in (
        ("CLAW_LEDGER_KAFKA", settings.kafka_bootstrap),
        ("CLAW_LEDGER_DATABASE_URL", settings.database_url),
        ("CLAW_LEDGER_WRITER_URL", settings.writer_url),
    ):
        if value:
            env[name] = value
    env["CLAW_LEDGER_TOPIC_PREFIX"] = settings.topic_prefix
    pid = spawn_detached(
        [sys.executable, "-m", "claw_ledger", "checkpointer", "run", *run_args],
        log_path=_log_file(settings),
        env=env,
    )
    _pid_file(settings).write_text(f"{pid}\n")
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            _pid_file(settings).unlink(missing_ok=True)
            return None, False
        time.sleep(0.1)
    return pid, False


def stop_checkpointer(settings: Settings) -> bool:
    pid = checkpointer_pid(settings)
    _pid_file(settings).unlink(missing_ok=True)
    if pid is None:
        return False
    terminate(pid, timeout=20)
    return True
