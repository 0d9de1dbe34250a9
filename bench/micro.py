"""Component figures for the report, each beside a baseline measured in the same run.

Rows are ``(measure, result, baseline, target, verdict)`` tuples, like
:func:`bench.signing.signing_rows`, so that ``bench/__main__`` can add them to
its table.
"""

from __future__ import annotations

import subprocess

import psutil

from bench import authorize, cli_start, merkle, replay, simulate, verify_path

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


def authorize_rows() -> list[Row]:
    decide = authorize.measure(20_000)
    return [
        (
            "authorize decide_call in process, token seen before: p99 (p50), wall",
            f"{decide['decide_warm_p99_us']:,.0f} µs ({decide['decide_warm_p50_us']:,.0f} µs)",
            f"raw Ed25519 verify p99 {decide['raw_verify_p99_us']:,.0f} µs"
            f" (p50 {decide['raw_verify_p50_us']:,.0f} µs)",
            "p99 ≤ 100 µs",
            _verdict(decide["decide_warm_p99_us"] <= 100),
        ),
        (
            "authorize decide_call in process, first sight of a token: p99 (p50), wall",
            f"{decide['decide_first_sight_p99_us']:,.0f} µs"
            f" ({decide['decide_first_sight_p50_us']:,.0f} µs)",
            f"raw Ed25519 verify p99 {decide['raw_verify_p99_us']:,.0f} µs",
            "",
            "",
        ),
        (
            "authorize decide_call with an active shadow policy (disagreeing): p99 (p50), wall",
            f"{decide['shadow_p99_us']:,.0f} µs ({decide['shadow_p50_us']:,.0f} µs),"
            f" +{decide['shadow_p99_overhead'] * 100:.0f} % at p99",
            f"no shadow, same run, call by call: p99 {decide['no_shadow_p99_us']:,.0f} µs"
            f" (p50 {decide['no_shadow_p50_us']:,.0f} µs)",
            "≤ +20 % at p99",
            _verdict(decide["shadow_p99_overhead"] <= 0.2),
        ),
    ]


def simulate_rows(decisions: int = 200_000) -> list[Row]:
    sim = simulate.measure(decisions)
    raw = f"raw Ed25519 verify {sim['raw_verify_per_s']:,.0f} /s"
    return [
        (
            f"simulate {decisions:,} recorded decisions over an audited ledger, decisions/s,"
            " one core",
            f"{sim['audited_per_s']:,.0f} /s",
            f"{raw} (ratio {sim['audited_per_s'] / sim['raw_verify_per_s']:.2f})",
            "≥ 50,000 /s",
            _verdict(sim["audited_per_s"] >= 50_000),
        ),
        (
            f"simulate {decisions:,} recorded decisions, every event verified, decisions/s,"
            " one core",
            f"{sim['verified_per_s']:,.0f} /s",
            f"{raw} (ratio {sim['verified_per_s'] / sim['raw_verify_per_s']:.2f})",
            "",
            "",
        ),
    ]


def micro_rows() -> list[Row]:
    return [
        *cli_rows(),
        *verify_rows(),
        *merkle_rows(),
        *replay_rows(),
        *authorize_rows(),
        *simulate_rows(),
    ]


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
