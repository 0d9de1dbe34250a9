"""Component figures for the report, each beside a baseline measured in the same run.

Rows are ``(measure, result, baseline, target, verdict)`` tuples, like
:func:`bench.signing.signing_rows`, so that ``bench/__main__`` can add them to
its table.
"""

from __future__ import annotations

import subprocess

import psutil
from rich.console import Console
from rich.table import Table

from bench import authorize, cli_start, merkle, replay, sealing, simulate, verify_path

__all__ = ["Row", "micro_rows", "print_replay_rows", "processor_cpu_seconds", "replay_rows"]

Row = tuple[str, str, str, str, str]


def _row(
    measure: str, result: str, baseline: str, target: str = "", met: bool | None = None
) -> Row:
    """A report row; ``met``: whether the result meets ``target`` (None: no verdict)."""
    verdict = "" if met is None else "met" if met else "NOT met"
    return (measure, result, baseline, target, verdict)


def cli_row() -> Row:
    start = cli_start.measure(10)
    gap = start["difference"]
    return _row(
        "CLI start: `claw-ledger --version`, median wall time of 10",
        f"{start['claw_ledger_version'] * 1000:,.0f} ms",
        f"`python -c pass` {start['python_pass'] * 1000:,.0f} ms (gap {gap * 1000:,.0f} ms)",
        "within 300 ms of `python -c pass`",
        met=gap <= 0.3,
    )


def verify_row() -> Row:
    path = verify_path.measure(20_000)
    return _row(
        "verify_message (parse, schema, hash, signature) per event, one core",
        f"{path['verify_message_us']:,.0f} µs",
        f"raw Ed25519 verify {path['nacl_verify_us']:,.0f} µs"
        f" (ratio {path['nacl_verify_us'] / path['verify_message_us']:.2f})",
    )


def merkle_row() -> Row:
    tree = merkle.measure()
    prove_and_check = tree["inclusion_proof_us"] + tree["inclusion_verify_us"]
    return _row(
        f"inclusion proof over a {tree['leaves']:,.0f}-leaf tree: compute + verify (median)",
        f"{prove_and_check:,.0f} µs",
        f"compute {tree['inclusion_proof_us']:,.0f} µs, verify"
        f" {tree['inclusion_verify_us']:,.0f} µs; consistency"
        f" {tree['consistency_proof_us']:,.0f} + {tree['consistency_verify_us']:,.0f} µs",
        "≤ 1 ms",
        met=prove_and_check <= 1000,
    )


def replay_rows(events: int = 20_000, rss_events: int = 0) -> list[Row]:
    """The verified replay over ``events`` streamed events (no database), and its
    memory over ``rss_events`` (0: not measured)."""
    fold = replay.measure(events)
    raw = fold["raw_verify_per_s"]
    jobs = int(fold["jobs"])
    rows: list[Row] = [
        _row(
            f"replay rebuild with signature checks, {jobs} worker process(es),"
            f" {fold['events']:,.0f} events, wall",
            f"{fold['rebuild_per_s']:,.0f} /s (main process {fold['rebuild_main_cpu_us']:,.0f}"
            " µs CPU per event)",
            f"raw verify {raw:,.0f} /s, one core, mean of {fold['raw_verify_before_per_s']:,.0f}"
            f" before and {fold['raw_verify_after_per_s']:,.0f} after"
            f" (ratio {fold['rebuild_vs_raw']:.2f});"
            f" in-process rebuild {fold['rebuild_in_process_per_s']:,.0f} /s",
            "≥ 0.8 × raw verify",
            met=fold["rebuild_vs_raw"] >= 0.8,
        ),
        _row(
            f"replay rebuild without signature checks, {fold['events']:,.0f} events, one core",
            f"{fold['rebuild_no_signatures_per_s']:,.0f} /s"
            f" ({fold['rebuild_no_signatures_cpu_us']:,.0f} µs CPU per event)",
            f"the fold alone (verdicts given) {fold['fold_alone_per_s']:,.0f} /s",
            "≥ 50,000 /s",
            met=fold["rebuild_no_signatures_per_s"] >= 50_000,
        ),
    ]
    if rss_events:
        memory = replay.measure_rss(rss_events)
        rows.append(
            _row(
                f"replay RSS over {memory['events']:,.0f} events (without signature checks)",
                f"{memory['rss_warm_mib']:,.0f} MiB after the first tenth →"
                f" peak {memory['rss_peak_mib']:,.0f} MiB ({memory['growth'] * 100:+.1f} %)",
                f"{memory['per_s']:,.0f} ev/s meanwhile",
                "bounded: ≤ +10 % after the first tenth",
                met=memory["growth"] <= 0.10,
            )
        )
    return rows


def authorize_rows() -> list[Row]:
    decide = authorize.measure(20_000)
    return [
        _row(
            "authorize decide_call in process, token seen before: p99 (p50), wall",
            f"{decide['decide_warm_p99_us']:,.0f} µs ({decide['decide_warm_p50_us']:,.0f} µs)",
            f"raw Ed25519 verify p99 {decide['raw_verify_p99_us']:,.0f} µs"
            f" (p50 {decide['raw_verify_p50_us']:,.0f} µs)",
            "p99 ≤ 100 µs",
            met=decide["decide_warm_p99_us"] <= 100,
        ),
        _row(
            "authorize decide_call in process, first sight of a token: p99 (p50), wall",
            f"{decide['decide_first_sight_p99_us']:,.0f} µs"
            f" ({decide['decide_first_sight_p50_us']:,.0f} µs)",
            f"raw Ed25519 verify p99 {decide['raw_verify_p99_us']:,.0f} µs",
        ),
        _row(
            "authorize decide_call with an active shadow policy (disagreeing): p99 (p50), wall",
            f"{decide['shadow_p99_us']:,.0f} µs ({decide['shadow_p50_us']:,.0f} µs),"
            f" {decide['shadow_p99_overhead'] * 100:+.0f} % at p99",
            f"no shadow, same run, call by call: p99 {decide['no_shadow_p99_us']:,.0f} µs"
            f" (p50 {decide['no_shadow_p50_us']:,.0f} µs)",
            "≤ +20 % at p99",
            met=decide["shadow_p99_overhead"] <= 0.2,
        ),
    ]


def simulate_rows(decisions: int = 200_000) -> list[Row]:
    sim = simulate.measure(decisions)
    raw = f"raw Ed25519 verify {sim['raw_verify_per_s']:,.0f} /s"
    return [
        _row(
            f"simulate {decisions:,} recorded decisions over an audited ledger, decisions/s,"
            " one core",
            f"{sim['audited_per_s']:,.0f} /s",
            f"{raw} (ratio {sim['audited_per_s'] / sim['raw_verify_per_s']:.2f})",
            "≥ 50,000 /s",
            met=sim["audited_per_s"] >= 50_000,
        ),
        _row(
            f"simulate {decisions:,} recorded decisions, every event verified, decisions/s,"
            " one core",
            f"{sim['verified_per_s']:,.0f} /s",
            f"{raw} (ratio {sim['verified_per_s'] / sim['raw_verify_per_s']:.2f})",
        ),
    ]


def sealing_row() -> Row:
    sealed = sealing.measure_in_fresh_process(10_000)
    total = sealed["build_s"] + sealed["verify_s"]
    return _row(
        f"sealed bundle of {sealed['receipts']:,.0f} receipts ({sealed['events']:,.0f} ledger"
        f" events, {sealed['bytes'] / 1e6:,.1f} MB): build + verify offline",
        f"{total:,.2f} s (build {sealed['build_s']:,.2f} s, verify {sealed['verify_s']:,.2f} s)",
        f"plain clawsig bundle of the same run, build + verify {sealed['baseline_s']:,.2f} s",
        "<= 2 s",
        met=total <= 2.0,
    )


def print_replay_rows(events: int, rss_events: int, console: Console) -> None:
    """``python -m bench --only replay``: the replay rows alone, no servers, printed."""
    table = Table(title="claw-ledger replay benchmarks")
    for column in ("measure", "result", "baseline (same run)", "target", "verdict"):
        table.add_column(column, overflow="fold")
    with console.status(f"replay: {events:,} events…"):
        for row in replay_rows(events, rss_events):
            table.add_row(*row)
    console.print(table)


def micro_rows(
    replay_events: int = 20_000, replay_rss_events: int = 0, simulate_decisions: int = 1_000_000
) -> list[Row]:
    return [
        cli_row(),
        verify_row(),
        merkle_row(),
        *replay_rows(replay_events, replay_rss_events),
        *authorize_rows(),
        sealing_row(),
        *simulate_rows(simulate_decisions),
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
