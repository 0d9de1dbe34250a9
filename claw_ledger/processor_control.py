"""Start, stop and supervise the detached verifying processor (pid file in the state dir)."""

from __future__ import annotations

import logging
import os
import time

from claw_ledger.config import Settings
from claw_ledger.detached import DetachedCommand

__all__ = [
    "SUPERVISOR_PID_ENV",
    "processor_command",
    "processor_pid",
    "start_processor",
    "stop_processor",
    "stop_with_supervisor",
    "supervise_processor",
]

log = logging.getLogger("claw_ledger.processor.supervisor")

_PROCESSOR = DetachedCommand("processor")

#: set by ``processor supervise`` for its child: the supervisor's pid
SUPERVISOR_PID_ENV = "CLAW_LEDGER_SUPERVISOR_PID"


def processor_command(*args: str) -> list[str]:
    """``claw-ledger processor ARGS`` run by this interpreter, as a child's argv."""
    return _PROCESSOR.argv(*args)


def processor_pid(settings: Settings) -> int | None:
    return _PROCESSOR.running_pid(settings)


def start_processor(
    settings: Settings, group: str = "claw-ledger-verifier", lanes: str = "control,ingress"
) -> tuple[int, bool]:
    """Start ``claw-ledger processor run`` detached; returns (pid, already_running)."""
    existing = processor_pid(settings)
    if existing is not None:
        return existing, True
    pid = _PROCESSOR.spawn(settings, "supervise", "--group", group, "--lanes", lanes)
    time.sleep(0.2)
    return pid, False


def stop_processor(settings: Settings) -> bool:
    return _PROCESSOR.stop(settings)


def supervise_processor(group: str, engine: str = "kafka", lanes: str = "control,ingress") -> int:
    """Run ``processor run`` as a child; restart it with back-off when it fails."""
    import signal
    import subprocess

    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _: object) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    delay = 1.0
    while True:
        started = time.monotonic()
        child = subprocess.Popen(
            processor_command(
                *("run", "--group", group, "--engine", engine, "--lanes", lanes, "--no-status")
            ),
            env=os.environ | {SUPERVISOR_PID_ENV: str(os.getpid())},
        )
        code = child.wait()
        if stopping or code == 0:
            return 0
        if code == 2:
            log.error(
                "processor exited with 2, a configuration error: not restarting it, since a"
                " restart would meet the same error (see the message above)"
            )
            return 2
        if time.monotonic() - started > 60:
            delay = 1.0
        log.warning("processor exited with %d; restarting in %.0fs", code, delay)
        time.sleep(delay)
        delay = min(delay * 2, 60.0)


def stop_with_supervisor(poll_seconds: float = 0.5) -> None:
    """In a supervised ``processor run``: stop cleanly (SIGTERM to this process)
    once the supervisor is gone.

    ``processor status`` and ``stop`` know the supervisor's pid. A supervisor
    killed outright (``kill -9``) cannot pass its SIGTERM on, and its child,
    adopted by init, went on committing, unseen by ``status``, beside the next
    ``processor start``'s. A thread watches the parent pid (any platform;
    Linux's ``PR_SET_PDEATHSIG`` would be one); nothing happens unsupervised.
    """
    import signal
    import threading

    expected = os.environ.get(SUPERVISOR_PID_ENV)
    if not expected or not expected.isdigit():
        return
    supervisor = int(expected)

    def watch() -> None:
        while os.getppid() == supervisor:
            time.sleep(poll_seconds)
        log.warning("the supervisor (pid %d) is gone: stopping this processor", supervisor)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="supervisor-watch", daemon=True).start()
