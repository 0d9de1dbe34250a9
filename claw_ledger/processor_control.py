"""Start, stop and supervise the detached verifying processor (pid file in the state dir)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from claw_ledger.config import Settings
from claw_ledger.services.process import pid_alive, spawn_detached, terminate

__all__ = [
    "processor_command",
    "processor_pid",
    "start_processor",
    "stop_processor",
    "supervise_processor",
]


def processor_command(*args: str) -> list[str]:
    """``claw-ledger processor ARGS`` run by this interpreter, as a child's argv."""
    return [sys.executable, "-m", "claw_ledger", "processor", *args]


def _pid_file(settings: Settings) -> Path:
    return settings.state_dir / "processor.pid"


def processor_pid(settings: Settings) -> int | None:
    try:
        pid = int(_pid_file(settings).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def start_processor(
    settings: Settings, group: str = "claw-ledger-verifier", lanes: str = "control,ingress"
) -> tuple[int, bool]:
    """Start ``claw-ledger processor run`` detached; returns (pid, already_running)."""
    existing = processor_pid(settings)
    if existing is not None:
        return existing, True
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["CLAW_LEDGER_STATE_DIR"] = str(settings.state_dir)
    if settings.kafka_bootstrap:
        env["CLAW_LEDGER_KAFKA"] = settings.kafka_bootstrap
    if settings.database_url:
        env["CLAW_LEDGER_DATABASE_URL"] = settings.database_url
    if settings.writer_url:
        env["CLAW_LEDGER_WRITER_URL"] = settings.writer_url
    env["CLAW_LEDGER_TOPIC_PREFIX"] = settings.topic_prefix
    pid = spawn_detached(
        processor_command("supervise", "--group", group, "--lanes", lanes),
        log_path=settings.state_dir / "processor.log",
        env=env,
    )
    _pid_file(settings).write_text(f"{pid}\n")
    time.sleep(0.2)
    return pid, False


def stop_processor(settings: Settings) -> bool:
    pid = processor_pid(settings)
    _pid_file(settings).unlink(missing_ok=True)
    if pid is None:
        return False
    terminate(pid, timeout=20)
    return True


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
        if code == 2:  # a configuration error does not heal by restarting
            return 2
        if time.monotonic() - started > 60:
            delay = 1.0
        print(
            f"processor exited with {code}; restarting in {delay:.0f}s", file=sys.stderr, flush=True
        )
        time.sleep(delay)
        delay = min(delay * 2, 60.0)
