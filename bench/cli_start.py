"""Start-up time of the CLI: ``claw-ledger --version`` beside ``python -c pass``.

Both are run as subprocesses in the same run, alternating, so the difference
is what the CLI's imports cost on this machine at this moment.

Usage: python -m bench.cli_start [--runs 10]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["measure"]


def _cli() -> list[str]:
    """The installed console script next to this interpreter, else the module."""
    script = Path(sys.executable).with_name("claw-ledger")
    if script.is_file():
        return [str(script)]
    found = shutil.which("claw-ledger")
    return [found] if found else [sys.executable, "-m", "claw_ledger"]


def _wall(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def measure(runs: int = 10) -> dict[str, float]:
    """Median wall seconds of ``claw-ledger --version`` and of ``python -c pass``.

    Keys: ``claw_ledger_version``, ``python_pass`` and ``difference`` (the first
    minus the second).
    """
    if runs < 1:
        raise ValueError("runs must be >= 1")
    cli = [*_cli(), "--version"]
    bare = [sys.executable, "-c", "pass"]
    _wall(cli)  # warm the page cache and the bytecode cache once, unmeasured
    version: list[float] = []
    python: list[float] = []
    for _ in range(runs):
        version.append(_wall(cli))
        python.append(_wall(bare))
    result = {
        "claw_ledger_version": statistics.median(version),
        "python_pass": statistics.median(python),
    }
    result["difference"] = result["claw_ledger_version"] - result["python_pass"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    for name, seconds in measure(parser.parse_args().runs).items():
        print(f"{name:<20} {seconds * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
