"""Start, stop and configure the checkpointer (``claw-ledger checkpointer``).

The detached checkpointer is ``checkpointer run`` in its own session, its pid
in ``<state_dir>/checkpointer.pid`` and its output in
``<state_dir>/checkpointer.log``. It rides out database outages by itself
(it reconnects and resumes from the stored tree), so it needs no supervisor.
"""

from __future__ import annotations

import time

from claw_ledger.config import Settings
from claw_ledger.detached import DetachedCommand
from claw_ledger.services.process import pid_alive

__all__ = [
    "checkpointer_pid",
    "log_tail",
    "start_checkpointer",
    "stop_checkpointer",
]

_CHECKPOINTER = DetachedCommand("checkpointer")


def checkpointer_pid(settings: Settings) -> int | None:
    return _CHECKPOINTER.running_pid(settings)


def log_tail(settings: Settings, lines: int = 15) -> str:
    try:
        text = _CHECKPOINTER.log_file(settings).read_text(errors="replace")
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
    pid = _CHECKPOINTER.spawn(settings, "run", *run_args)
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            _CHECKPOINTER.pid_file(settings).unlink(missing_ok=True)
            return None, False
        time.sleep(0.1)
    return pid, False


def stop_checkpointer(settings: Settings) -> bool:
    return _CHECKPOINTER.stop(settings)
