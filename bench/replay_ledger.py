"""``claw-ledger replay`` and ``claw-ledger audit`` over a benchmark ledger in
Postgres: wall time and peak RSS of each command, beside the raw verify rate
measured just before (one core, PyNaCl)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import psutil

__all__ = ["ledger_read_rows", "run_command"]

Row = tuple[str, str, str, str, str]


def run_command(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``claw-ledger ARGS --json``: its JSON, wall seconds and peak RSS (MiB,
    the command's own process; worker processes counted apart)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "claw_ledger", *args, "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    watched = psutil.Process(proc.pid)
    peak = workers_peak = 0.0
    while proc.poll() is None:
        try:
            peak = max(peak, watched.memory_info().rss / 2**20)
            children = watched.children(recursive=True)
            workers_peak = max(workers_peak, sum(c.memory_info().rss for c in children) / 2**20)
        except psutil.Error:
            pass
        time.sleep(0.2)
    out, err = proc.communicate()
    seconds = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"claw-ledger {' '.join(args)} failed: {err.decode()[-2000:]}")
    return {
        "report": json.loads(out),
        "seconds": seconds,
        "rss_mib": peak,
        "workers_rss_mib": workers_peak,
        "ok": proc.returncode == 0,
    }


def ledger_read_rows(env: dict[str, str], events: int, baseline: float) -> list[Row]:
    """Replay (with and without signatures) and audit the ledger of ``env``
    (``events`` events), each against ``baseline`` raw verifies per second."""
    rows: list[Row] = []
    signed = run_command(["replay"], env)
    unsigned = run_command(["replay", "--no-signatures"], env)
    audit = run_command(["audit"], env)
    plan: tuple[tuple[str, dict[str, Any], str, float | None], ...] = (
        (
            "`claw-ledger replay` (signatures checked, one worker per CPU)",
            signed,
            "≥ 0.8 × raw verify",
            0.8 * baseline,
        ),
        (
            "`claw-ledger replay --no-signatures`",
            unsigned,
            "≥ 50,000 /s",
            50_000.0,
        ),
        ("`claw-ledger audit` (every check; signatures once, in the rebuild)", audit, "", None),
    )
    for name, run, target, floor in plan:
        rate = events / run["seconds"]
        ok = run["ok"]
        rows.append(
            (
                f"{name} over {events:,} events in Postgres, wall",
                f"{rate:,.0f} ev/s; peak RSS {run['rss_mib']:,.0f} MiB"
                f" (+ workers {run['workers_rss_mib']:,.0f} MiB)" + ("" if ok else "; NOT ok"),
                f"raw verify {baseline:,.0f} /s (ratio {rate / baseline:.2f})",
                target,
                "" if floor is None else ("met" if rate >= floor else "NOT met"),
            )
        )
    return rows
