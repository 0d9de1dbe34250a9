"""A ``claw-ledger`` command run detached from the shell that started it.

Its pid is in ``<state_dir>/<name>.pid`` and its output in
``<state_dir>/<name>.log``; the child inherits this process's environment
plus the settings it needs to find the same Kafka, database and state dir.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import psutil

from claw_ledger.config import Settings
from claw_ledger.services.process import pid_alive, spawn_detached, terminate

__all__ = ["DetachedCommand"]


@dataclass(frozen=True)
class DetachedCommand:
    """``claw-ledger NAME ...`` as a detached child, known by its pid file."""

    name: str

    def argv(self, *args: str) -> list[str]:
        """``claw-ledger NAME ARGS`` run by this interpreter, as a child's argv."""
        return [sys.executable, "-m", "claw_ledger", self.name, *args]

    def pid_file(self, settings: Settings) -> Path:
        return settings.state_dir / f"{self.name}.pid"

    def log_file(self, settings: Settings) -> Path:
        return settings.state_dir / f"{self.name}.log"

    def running_pid(self, settings: Settings) -> int | None:
        """The pid in the pid file while that process runs this command, else ``None``."""
        try:
            pid = int(self.pid_file(settings).read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if pid_alive(pid) and self._runs_here(pid, settings) else None

    def _runs_here(self, pid: int, settings: Settings) -> bool:
        """Whether ``pid`` is this command of this state dir. A pid file outlives a
        process killed outright, and its pid may since be another process's: taken
        for ours, ``status`` called it running and ``stop`` and ``down`` killed it."""
        try:
            process = psutil.Process(pid)
            if process.cmdline()[1:4] != ["-m", "claw_ledger", self.name]:
                return False
            state_dir = process.environ().get("CLAW_LEDGER_STATE_DIR")
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            return False  # gone, or another user's: not one this user started
        return state_dir is None or Path(state_dir).resolve() == settings.state_dir.resolve()

    def spawn(self, settings: Settings, *args: str) -> int:
        """Start ``claw-ledger NAME ARGS`` in its own session and record its pid."""
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["CLAW_LEDGER_STATE_DIR"] = str(settings.state_dir)
        for variable, value in (
            ("CLAW_LEDGER_KAFKA", settings.kafka_bootstrap),
            ("CLAW_LEDGER_DATABASE_URL", settings.database_url),
            ("CLAW_LEDGER_WRITER_URL", settings.writer_url),
        ):
            if value:
                env[variable] = value
        env["CLAW_LEDGER_TOPIC_PREFIX"] = settings.topic_prefix
        pid = spawn_detached(self.argv(*args), log_path=self.log_file(settings), env=env)
        self.pid_file(settings).write_text(f"{pid}\n")
        return pid

    def stop(self, settings: Settings) -> bool:
        """Terminate the running command; ``False`` when none was running."""
        pid = self.running_pid(settings)
        self.pid_file(settings).unlink(missing_ok=True)
        if pid is None:
            return False
        terminate(pid, timeout=20)
        return True
