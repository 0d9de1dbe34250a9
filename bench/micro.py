"""Component figures for the report, each beside a baseline measured in the same run.

Rows are ``(measure, result, baseline, target, verdict)`` tuples, like
:func:`bench.signing.signing_rows`, so that ``bench/__main__`` can add them to
its table.
"""

from __future__ import annotations

import subprocess

import psutil

from bench import cli_start, merkle, replay, sealing, verify_path

__all__ = ["Row", "micro_rows", "processor_cpu_seconds"]

Row = tuple[str, str, str, str, str]


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def cli_rows() -> list[Row]:
    start = cli_start.measure(10)
    gap = start["difference"]
    return [
        (
            "CLI start: `claw-ledger --version`, median wall time of 10",
            f"{start['claw_ledger_version'] * 1000:,.0f} ms",
            f"`python -c pass` {start['python_pass'] * 1000:,.0f} ms (gap {gap * 1000:,.0f} ms)",
            "within 300 ms of `python -c pass`",
            _verdict(gap <= 0.3),
        )
    ]


def verify_rows() -> list[Row]:
    path = verify_path.measure(20_000)
    return [
        (
            "verify_message (parse, schema, hash, signature) per event, one core",
            f"{path['verify_message_us']:,.0f} µs",
            f"raw Ed25519 verify {path['nacl_verify_us']:,.0f} µs"
            f" (ratio {path['nacl_verify_us'] / path['verify_message_us']:.2f})",
            "",
            "",
        )
    ]


def merkle_rows() -> list[Row]:
    tree = merkle.measure()
    prove_and_check = tree["inclusion_proof_us"] + tree["inclusion_verify_us"]
    return [
        (
            f"inclusion proof over a {tree['leaves']:,.0f}-leaf tree: compute + verify (median)",
            f"{prove_and_check:,.0f} µs",
            f"compute {tree['inclusion_proof_us']:,.0f} µs, verify"
            f" {tree['inclusion_verify_us']:,.0f} µs; consistency"
            f" {tree['consistency_proof_us']:,.0f} + {tree['consistency_verify_us']:,.0f} µs",
            "≤ 1 ms",
            _verdict(prove_and_check <= 1000),
        )
    ]


def replay_rows() -> list[Row]:
    fold = replay.measure(20_000)
    return [
        (
            "replay fold with verification, events/s, one core",
            f"{fold['rebuild_per_s']:,.0f} /s",
            f"raw verify {fold['raw_verify_per_s']:,.0f} /s (ratio {fold['rebuild_vs_raw']:.2f})",
            "≥ 0.8 × raw verify",
            _verdict(fold["rebuild_vs_raw"] >= 0.8),
        ),
        (
            "replay fold without signature checks, events/s, one core",
            f"{fold['rebuild_no_verify_per_s']:,.0f} /s",
            "",
            "≥ 50,000 /s",
            _verdict(fold["rebuild_no_verify_per_s"] >= 50_000),
        ),
    ]


def sealing_rows() -> list[Row]:
    sealed = sealing.measure(10_000)
    total = sealed["build_s"] + sealed["verify_s"]
    return [
        (
            f"sealed bundle of {sealed['receipts']:,.0f} receipts ({sealed['events']:,.0f} ledger"
            f" events, {sealed['bytes'] / 1e6:,.1f} MB): build + verify offline",
            f"{total:,.2f} s (build {sealed['build_s']:,.2f} s,"
            f" verify {sealed['verify_s']:,.2f} s)",
            f"plain clawsig bundle of the same run, build + verify {sealed['baseline_s']:,.2f} s",
            "<= 2 s",
            _verdict(total <= 2.0),
        )
    ]


def micro_rows() -> list[Row]:
    return [*cli_rows(), *verify_rows(), *merkle_rows(), *replay_rows(), *sealing_rows()]


def processor_cpu_seconds(processes: list[subprocess.Popen[bytes]]) -> float:
    """User + system CPU seconds the processor processes have used so far."""
    total = 0.0
    for proc in processes:
        try:
            times = psutil.Process(proc.pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total
