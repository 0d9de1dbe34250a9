"""``claw-ledger serve`` in a process of its own, for the HTTP benchmarks.

A server thread in the client's process would share its GIL and add tens of
milliseconds per request, so the server always gets a process.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

import httpx

__all__ = ["ServeProcess"]


class ServeProcess:
    """``with ServeProcess(env, args) as server:`` serve on ``server.url`` until the
    block ends; entering waits until ``/healthz`` answers."""

    def __init__(
        self, env: Mapping[str, str], args: Sequence[str] = (), log: Path | None = None
    ) -> None:
        from claw_ledger.services.process import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [
            *(sys.executable, "-m", "claw_ledger", "serve", "--port", str(self.port)),
            *("--log-level", "warning", *args),
        ]
        self.env = dict(env)
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServeProcess:
        if self.log is None:
            self.proc = self._start(subprocess.DEVNULL)
        else:
            with self.log.open("ab") as log:
                self.proc = self._start(log)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                where = f" (see {self.log})" if self.log else ""
                raise RuntimeError(f"claw-ledger serve did not start{where}")
            time.sleep(0.2)

    def _start(self, output: IO[bytes] | int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self.command,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output if self.log is not None else None,
        )

    def __exit__(self, *_: object) -> None:
        from claw_ledger.services.process import terminate

        assert self.proc is not None
        terminate(self.proc.pid)
        self.proc.wait(timeout=30)
