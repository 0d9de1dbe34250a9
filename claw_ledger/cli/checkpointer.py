"""``claw-ledger checkpointer``: run the transparency log's checkpointer (ADR 0017)."""

from __future__ import annotations

import sys

import click

from claw_ledger.cli.common import (
    echo,
    emit_json,
    exit_with_running_status,
    json_option,
    key_option,
    log_options,
    resolve_key,
    run_async,
    settings,
    stack_options,
)

__all__ = ["command"]

#: when a round signs: (--every-<what>, its range, default, help)
_EVERY = (
    (
        "events",
        click.IntRange(min=1),
        10_000,
        "Sign a checkpoint as soon as this many events wait.",
    ),
    (
        "seconds",
        click.FloatRange(min=0.05),
        1.0,
        "...or when the oldest waiting event has waited this long.",
    ),
)

_round_options = stack_options(
    key_option("The ledger's key (role ledger): a key file path or a key NAME."),
    *(
        click.option(f"--every-{what}", type=bound, default=default, show_default=True, help=text)
        for what, bound, default, text in _EVERY
    ),
    click.option(
        "--origin",
        envvar="CLAW_LEDGER_LOG_ORIGIN",
        metavar="ORIGIN",
        help="The log's name, e.g. ledger.example.com/claw; fixed by the first"
        " checkpoint [default: claw-ledger.local/<database>; env CLAW_LEDGER_LOG_ORIGIN].",
    ),
)


@click.group("checkpointer")
def command() -> None:
    """The checkpointer: appends committed events to the transparency log and signs
    a checkpoint every N events or T seconds (published as `checkpoint.signed`).

    One per ledger (a second one refuses to start, exit 3). It signs with the
    ledger's registered key, which must hold the `ledger` role.

    \b
    Examples:
      claw-ledger keys new ledger
      claw-ledger keys register ledger --role ledger --key admin
      claw-ledger checkpointer start --key ledger          # detached
      claw-ledger checkpointer run --key ledger --every-seconds 5
      claw-ledger checkpointer run --key ledger --once     # one round, then exit
    """


@command.command("run")
@log_options()
@_round_options
@click.option("--once", is_flag=True, help="Append what is committed now, sign once, exit.")
@json_option("With --once: the checkpoint as JSON.")
def run(
    key_ref: str,
    every_events: int,
    every_seconds: float,
    origin: str | None,
    once: bool,
    as_json: bool,
) -> None:
    """Run the checkpointer in the foreground until interrupted.

    \b
    Exit codes: 0 stopped (or --once done), 2 a configuration error (key not
    registered or without the ledger role, another origin), 3 another
    checkpointer runs for this ledger.
    """
    from claw_ledger.checkpointer import (
        EXIT_LOCKED,
        CheckpointerConfig,
        CheckpointerLocked,
        run_checkpointer,
    )
    from claw_ledger.config import effective_database_url, effective_kafka_bootstrap
    from claw_ledger.logs import report_fatal
    from claw_ledger.topics import topics_for

    resolved = settings()
    config = CheckpointerConfig(
        writer_url=effective_database_url(resolved, role="writer"),
        kafka_bootstrap=effective_kafka_bootstrap(resolved),
        ingress_topic=topics_for(resolved).ingress,
        key=resolve_key(key_ref),
        origin=origin,
        every_events=every_events,
        every_seconds=every_seconds,
    )
    try:
        last = run_async(run_checkpointer(config, once=once))
    except CheckpointerLocked as exc:
        report_fatal(f"error: {exc}", echo)
        sys.exit(EXIT_LOCKED)
    if once:
        if as_json:
            emit_json({"checkpoint": last.to_dict() if last else None})
        elif last is None:
            echo("nothing new to append: no checkpoint signed")
        else:
            echo(f"signed the checkpoint of size {last.tree_size} ({last.origin})")


@command.command("start")
@_round_options
@json_option()
def start(
    key_ref: str, every_events: int, every_seconds: float, origin: str | None, as_json: bool
) -> None:
    """Start the checkpointer detached (idempotent); logs in <state_dir>/checkpointer.log."""
    from claw_ledger.checkpointer_control import log_tail, start_checkpointer

    resolve_key(key_ref)  # a missing key file is reported here, not in the log
    args = ["--key", key_ref, "--every-events", str(every_events)]
    args += ["--every-seconds", str(every_seconds)]
    if origin:
        args += ["--origin", origin]
    resolved = settings()
    pid, already = start_checkpointer(resolved, args)
    if pid is None:
        echo(f"error: the checkpointer exited at once:\n{log_tail(resolved)}", err=True)
        sys.exit(2)
    if as_json:
        emit_json({"pid": pid, "already_running": already})
    else:
        echo(f"checkpointer {'already running' if already else 'started'} (pid {pid})")


@command.command("stop")
@json_option()
def stop(as_json: bool) -> None:
    """Stop the detached checkpointer (it finishes the round it is writing)."""
    from claw_ledger.checkpointer_control import stop_checkpointer

    stopped = stop_checkpointer(settings())
    if as_json:
        emit_json({"stopped": stopped})
    else:
        echo("checkpointer stopped" if stopped else "checkpointer was not running")


@command.command("status")
@json_option()
def status(as_json: bool) -> None:
    """Is the detached checkpointer running? Exit 0 when it is."""
    from claw_ledger.checkpointer_control import checkpointer_pid

    exit_with_running_status("checkpointer", checkpointer_pid(settings()), as_json)
