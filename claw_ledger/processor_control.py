"""Start, stop and supervise the detached verifying processor (pid file in the state dir)."""

from __future__ import annotations

import logging
import time

from claw_ledger.config import Settings
from claw_ledger.detached import DetachedCommand

__all__ = [
    "processor_command",
    "processor_pid",
    "start_processor",
    "stop_processor",
    "supervise_processor",
]

log = logging.getLogger("claw_ledger.processor.supervisor")

_PROCESSOR = DetachedCommand("processor")


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
            )
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
