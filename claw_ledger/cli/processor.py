"""``claw-ledger processor``: run the verifying stream processor."""

from __future__ import annotations

import sys
from typing import Any

import click

from claw_ledger.cli.common import (
    choice_option,
    echo,
    emit_json,
    exit_with_running_status,
    group_option,
    json_option,
    log_options,
    processor_config,
    settings,
)

__all__ = ["command"]

#: what --lanes takes (consumers.config.LANES; not imported: --help loads no consumer)
_LANES = ("control", "ingress")
#: what --engine takes; the first is the default
_ENGINES = ("kafka", "faust")
_ENGINE_HELP = "kafka: lean aiokafka consumer; faust: the faust-streaming app (same guarantees)."


def _lanes_option(func: Any) -> Any:
    return click.option(
        "--lanes",
        default="control,ingress",
        show_default=True,
        envvar="CLAW_LEDGER_LANES",
        callback=_check_lanes,
        help="Comma-separated lanes this process consumes, each on a consumer and a task of "
        "its own (control: halts, resumes and revocations on <prefix>.control; ingress: "
        "everything else). Leave one out only to run it in another process. "
        "Env: CLAW_LEDGER_LANES.",
    )(func)


def _check_lanes(ctx: click.Context, param: click.Parameter, value: str) -> str:
    names = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [name for name in names if name not in _LANES]
    if unknown or not names:
        raise click.BadParameter(
            f"unknown lane(s) {', '.join(unknown) or '(none given)'}; "
            f"lanes are {', '.join(_LANES)}, comma-separated"
        )
    return ",".join(lane for lane in _LANES if lane in names)


@click.group("processor")
def command() -> None:
    """The verifying stream processor (aiokafka engine by default, or the faust app).

    \b
    Examples:
      claw-ledger processor run               # foreground, Ctrl-C to stop
      claw-ledger processor run --lanes control   # only halts, resumes, revocations
      claw-ledger processor start             # detached; pid in the state dir
      claw-ledger processor stop
    """


@command.command("run")
@log_options()
@group_option()
@click.option(
    "--batch-size",
    default=2000,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Most records one poll takes.",
)
@click.option("--status/--no-status", default=True, help="Live status line on stderr.")
@choice_option("--engine", _ENGINES, help=_ENGINE_HELP)
@click.option(
    "--control-cache-size",
    default=50_000,
    show_default=True,
    type=click.IntRange(0, None),
    envvar="CLAW_LEDGER_CONTROL_CACHE_SIZE",
    help="Rows of tokens and of jobs kept in memory between batches (others are read "
    "by key when a batch needs them); 0 holds both tables whole, as before 0.2.0. "
    "Env: CLAW_LEDGER_CONTROL_CACHE_SIZE.",
)
@choice_option(
    "--control-check",
    ("background", "start"),
    envvar="CLAW_LEDGER_CONTROL_CHECK",
    help="When the tokens and jobs tables are checked against their digests: start = before "
    "consuming; background = while batches that read neither table commit (a batch that "
    "does waits for the check). Either way a tampered table stops the processor (exit 2). "
    "Env: CLAW_LEDGER_CONTROL_CHECK.",
)
@_lanes_option
def run(
    group: str,
    batch_size: int,
    status: bool,
    engine: str,
    control_cache_size: int,
    control_check: str,
    lanes: str,
) -> None:
    """Verify published events and commit them to the ledger until interrupted.

    Both lanes run by default: the control topic (halts, resumes, revocations)
    on a consumer of its own, so that it never waits behind the ingress backlog.
    """
    from claw_ledger.processor_control import stop_with_supervisor
    from consumers.runner import run_processor

    stop_with_supervisor()
    config = processor_config(
        group,
        batch_size,
        control_cache_size=control_cache_size or None,
        control_check="start" if control_check == "start" else "background",
        lanes=lanes,
    )
    run_processor(
        config,
        engine="faust" if engine == "faust" else "kafka",
        status=status and sys.stderr.isatty(),
    )


@command.command("supervise")
@log_options()
@group_option()
@choice_option("--engine", _ENGINES, help=_ENGINE_HELP)
@_lanes_option
def supervise(group: str, engine: str, lanes: str) -> None:
    """Run the processor and restart it whenever it exits on a failure.

    The processor exits non-zero on a database outage it could not ride out, on
    a Kafka that never answered at start, or on a bug (bad input never does
    that: it is quarantined). Restarting is
    safe: positions in Postgres make every restart exactly-once. SIGTERM stops
    the processor and then the supervisor.
    """
    from claw_ledger.processor_control import supervise_processor

    sys.exit(supervise_processor(group, engine, lanes))


@command.command("start")
@group_option()
@_lanes_option
@json_option()
def start(group: str, lanes: str, as_json: bool) -> None:
    """Start the processor detached (idempotent); logs in <state_dir>/processor.log."""
    from claw_ledger.processor_control import start_processor

    pid, already = start_processor(settings(), group, lanes)
    if as_json:
        emit_json({"pid": pid, "already_running": already})
    else:
        echo(f"processor {'already running' if already else 'started'} (pid {pid})")


@command.command("stop")
def stop() -> None:
    """Stop the detached processor."""
    from claw_ledger.processor_control import stop_processor

    stopped = stop_processor(settings())
    echo("processor stopped" if stopped else "processor was not running")


@command.command("status")
@json_option()
def status_cmd(as_json: bool) -> None:
    """Is the detached processor running? Exit 0 when it is."""
    from claw_ledger.processor_control import processor_pid

    exit_with_running_status("processor", processor_pid(settings()), as_json)
