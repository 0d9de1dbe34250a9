"""``claw-ledger bundle`` (seal, export, show) and ``claw-ledger bundler run``."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from claw_ledger.cli.common import (
    choice_option,
    echo,
    emit_json,
    json_option,
    key_option,
    log_options,
    resolve_key,
    run_async,
    settings,
)

__all__ = ["bundler", "command"]

log = logging.getLogger("claw_ledger.bundler")

#: where the seal and the bundler take their inclusion proofs from
_proofs_option = choice_option(
    "--proofs",
    ("auto", "log", "memory"),
    help="Where the inclusion proofs come from: the checkpointer's log (log), a tree the"
    " bundler builds and signs itself under its own origin (memory), or the log once it"
    " has a checkpoint, else memory (auto). With the log, a run whose newest events are"
    " not in a checkpoint yet waits (exit 2 for `seal`).",
)
_origin_option = click.option(
    "--origin",
    metavar="ORIGIN",
    help="Origin of the checkpoints the bundler signs over its own tree of the log"
    " (default claw-ledger/<topic prefix>/bundler).",
)


@click.group("bundle")
def command() -> None:
    """Sealed proof bundles of runs: seal one, export it for an auditor, show what it proves.

    A sealed bundle is a clawsig proof bundle of a run, extended with the
    run's ledger events, each with an inclusion proof against one signed
    checkpoint, and signed by the ledger's key (docs/formats.md §6.1). The
    bundler (`claw-ledger bundler run`) seals every completed or halted run;
    `bundle seal` seals one now.

    \b
    Examples:
      claw-ledger bundle seal job-42 --key ledger
      claw-ledger bundle export job-42 -o job-42.sealed.json
      claw-ledger verify job-42.sealed.json --ledger-key did:key:z6Mk...
      claw-ledger bundle show job-42
    """


def _print_seal(result: Any, as_json: bool) -> None:
    if as_json:
        emit_json(result.to_dict())
        return
    if result.status == "waiting":
        echo(f"job {result.job_id}: not sealed yet: {result.detail}", err=True)
        return
    echo(
        f"job {result.job_id} ({result.run_status}): {result.status} [{result.trigger}]"
        f" bundle {result.bundle_hash_b64u}, checkpoint size {result.checkpoint_size},"
        f" {result.event_count} events, {result.receipt_count} receipts"
    )


@command.command("seal")
@click.argument("job_id", metavar="RUN")
@key_option("The ledger's key (role ledger): signs the bundle, its checkpoint and bundle.sealed.")
@_origin_option
@_proofs_option
@json_option("Print JSON.")
def seal(job_id: str, key_ref: str, origin: str | None, proofs: str, as_json: bool) -> None:
    """Seal RUN now and record bundle.sealed.

    A completed or halted run not sealed yet is sealed for that trigger (the
    bundler then skips it); otherwise a new on-demand bundle is sealed, e.g.
    of a running run. Exit 1 when the ledger refuses (an unknown or not
    started job, a key without the ledger role), 2 when the log does not hold
    the run's newest events yet (try again).
    """
    from claw_ledger.bundling import Bundler

    bundler = Bundler(settings(), resolve_key(key_ref), origin=origin, proofs=proofs)
    result = run_async(bundler.seal(job_id))
    _print_seal(result, as_json)
    if result.status == "waiting":
        sys.exit(2)


@command.command("export")
@click.argument("job_id", metavar="RUN")
@click.option("-o", "--out", type=click.Path(dir_okay=False, writable=True), help="Output file.")
@click.option("--bundle", "bundle_hash", metavar="HASH", help="A given sealed bundle of RUN.")
def export(job_id: str, out: str | None, bundle_hash: str | None) -> None:
    """Write RUN's newest sealed bundle, its exact bytes (their SHA-256 is the bundle hash)."""
    from claw_ledger.bundling import load_bundle

    row, raw = run_async(load_bundle(settings(), job_id, bundle_hash))
    if out is None:
        sys.stdout.buffer.write(raw)
        sys.stdout.buffer.flush()
        return
    Path(out).write_bytes(raw)
    echo(
        f"sealed bundle {row['bundle_hash_b64u']} of {job_id} ({row['run_status']},"
        f" {row['event_count']} events, {row['receipt_count']} receipts) -> {out}",
        err=True,
    )
    echo(f"verify it: claw-ledger verify {out} --ledger-key {row['sealed_by']}", err=True)


def _action(decision: Mapping[str, Any] | None) -> str:
    if decision is None:
        return "-"
    action = decision.get("action") or {}
    if action.get("kind") == "model":
        what = f"model {action.get('provider')}/{action.get('model')}"
    elif action.get("kind") == "tool":
        what = f"tool {action.get('tool')}"
    else:
        what = str(action)
    policy = decision.get("policy_hash_b64u") or "-"
    return (
        f"{what} at {decision.get('decided_at')} ({decision.get('reason_code')},"
        f" policy {policy}, decision {decision.get('decision_id')})"
    )


def _proves(raw: bytes, row: Mapping[str, Any]) -> dict[str, Any]:
    from claw_ledger.background import forked
    from ledger.canonical import parse_json_strict
    from ledger.offline_verify import verify_bytes
    from ledger.run_facts import kill_switch_view, run_facts

    result = verify_bytes(raw, ledger_key=str(row["sealed_by"]), background=forked)
    payload = parse_json_strict(raw)["payload"]
    seal = payload["seal"]
    events = [parse_json_strict(e["envelope"].encode())["payload"] for e in seal["events"]]
    facts = run_facts(str(seal["job_id"]), events)
    return {
        "bundle": dict(row),
        "verification": {
            "valid": result.valid,
            "reason_code": result.reason_code,
            "failed_step": None if result.failure is None else result.failure.to_dict(),
        },
        "run": {
            "job_id": seal["job_id"],
            "status": seal["run_status"],
            "agent_did": seal["agent_did"],
            "policy_hash_b64u": (seal["urm"].get("policy") or {}).get("wpc_hash_b64u"),
            "token": seal["token"],
            "counts": seal["counts"],
            "outputs": seal["outputs"],
        },
        "decisions": seal["decisions"],
        "halts": [
            {
                "halt": view["halt"],
                "last_allowed": view["last_allowed"],
                "blocked_after": view["blocked"],
            }
            for view in kill_switch_view(facts)
        ],
    }


@command.command("show")
@click.argument("job_id", metavar="RUN")
@click.option("--bundle", "bundle_hash", metavar="HASH", help="A given sealed bundle of RUN.")
@json_option("Print JSON.")
def show(job_id: str, bundle_hash: str | None, as_json: bool) -> None:
    """What RUN's newest sealed bundle proves: the run, its policy and token hashes, and for
    each halt the last call allowed before it and the calls blocked after it.

    The bundle is verified against the ledger key that sealed it; exit 1 when
    the verification fails.
    """
    from claw_ledger.bundling import load_bundle

    row, raw = run_async(load_bundle(settings(), job_id, bundle_hash))
    proves = _proves(raw, row)
    verification = proves["verification"]
    if as_json:
        emit_json(proves)
        sys.exit(0 if verification["valid"] else 1)
    run = proves["run"]
    counts = run["counts"]
    echo(f"bundle:     {row['bundle_hash_b64u']}  ({row['bundle_id']})")
    echo(
        f"run:        {run['job_id']}  ({run['status']}), sealed {row['sealed_at']}"
        f" [{row['trigger']}] by {row['sealed_by']}"
    )
    echo(f"checkpoint: tree size {row['checkpoint_size']}")
    verdict = "VALID" if verification["valid"] else f"INVALID ({verification['reason_code']})"
    echo(f"verified:   {verdict}")
    echo(f"policy:     {run['policy_hash_b64u']}")
    token = run["token"] or {}
    echo(
        f"token:      {token.get('jti', '-')}  scope {token.get('token_scope_hash_b64u', '-')}"
        f"  hash {token.get('token_sha256_b64u', '-')}"
    )
    echo(
        f"contents:   {counts['events']} events, {counts['receipts']} receipts,"
        f" {counts['decisions_allowed']} calls allowed, {counts['decisions_denied']} denied,"
        f" {counts['halts']} halts"
    )
    for view in proves["halts"]:
        halt = view["halt"]
        until = f", resumed {halt['resumed_at']}" if halt["resumed_at"] else " (still active)"
        echo(
            f"halt:       {halt['target']} at {halt['halted_at']}{until}: {halt['reason']}"
            f" (policy {halt['policy_hash_b64u'] or '-'})"
        )
        echo(f"  last allowed before it: {_action(view['last_allowed'])}")
        echo(f"  blocked after it: {len(view['blocked_after'])}")
        for decision in view["blocked_after"]:
            echo(f"    {_action(decision)}")
    for output in run["outputs"] or []:
        echo(f"output:     {output['name']}  {output['sha256']}")
    if not verification["valid"]:
        failed = verification["failed_step"] or {}
        echo(f"error: {verification['reason_code']}: {failed.get('detail', '')}", err=True)
        sys.exit(1)


@click.group("bundler")
def bundler() -> None:
    """The bundling processor: seals every completed or halted run, once.

    \b
    Example:
      claw-ledger bundler run --key ledger
    """


@bundler.command("run")
@log_options()
@key_option("The ledger's key (role ledger): signs the bundles, checkpoints and bundle.sealed.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=2.0,
    show_default=True,
    help="Seconds between two looks at the jobs and halts.",
)
@click.option("--once", is_flag=True, help="Seal what is pending, then exit.")
@_origin_option
@_proofs_option
def run(key_ref: str, interval: float, once: bool, origin: str | None, proofs: str) -> None:
    """Watch for completed and halted runs and seal each (run, trigger) once.

    A run is sealed when it completes, and when a halt covering it is active
    while it runs (trigger halted:<halt event>). What is sealed is read from
    the ledger, so a restart seals nothing twice. Stops on SIGINT or SIGTERM.
    """
    import asyncio

    from claw_ledger.bundling import Bundler, SealResult

    bundler_ = Bundler(settings(), resolve_key(key_ref), origin=origin, proofs=proofs)

    def report(result: SealResult) -> None:
        if result.status == "failed":
            log.error("%s [%s]: failed: %s", result.job_id, result.trigger, result.detail)
        elif result.status != "waiting":
            _print_seal(result, as_json=False)

    async def main() -> None:
        await bundler_.check_key()
        if once:
            await bundler_.run_once(report)
            return
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        log.info("bundler: sealing runs as %s", bundler_.key.did)
        await bundler_.run(interval=interval, stop=stop, report=report)

    run_async(main())
