"""``claw-ledger up`` / ``down`` / ``demo``: the whole ledger on one machine."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import click
from rich.markup import escape

from claw_ledger.cli.common import (
    echo,
    emit_json,
    group_option,
    json_option,
    plain,
    processor_config,
    run_async,
    settings,
    terminal,
)
from claw_ledger.config import ENV_BROKERS, MAX_BROKERS

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["command", "demo", "down"]


def bring_up(console: Console) -> None:
    """Services (unless given), migrations, topics. Idempotent."""
    from claw_ledger.config import effective_endpoints
    from claw_ledger.db_roles import kept_roles_note, migrate_with_roles
    from claw_ledger.services.kafka import ensure_topics
    from claw_ledger.services.manager import services_up
    from claw_ledger.topics import topics_for

    resolved = settings()
    with console.status("starting Kafka and Postgres…") as status:
        if resolved.kafka_bootstrap and resolved.database_url:
            endpoints = effective_endpoints(resolved)
        else:
            endpoints = services_up(resolved, on_step=lambda text: status.update(plain(text)))
        status.update("applying migrations, creating the writer and reader roles…")
        kept = run_async(migrate_with_roles(resolved.with_endpoints(endpoints))).kept
        status.update("creating topics…")
        run_async(
            ensure_topics(
                endpoints.kafka_bootstrap,
                topics_for(resolved).all,
                resolved.partitions,
            )
        )
    if kept:
        console.print(escape(kept_roles_note(kept)), style="yellow")
    console.print(f"[green]Kafka[/]    {escape(endpoints.kafka_bootstrap)}")
    console.print(f"[green]Postgres[/] {escape(endpoints.database_url)}")


@click.command("up")
@click.option("--detach", "-d", is_flag=True, help="Start the processor in the background.")
@group_option()
@click.option(
    "--brokers",
    type=click.IntRange(min=1, max=MAX_BROKERS),
    help="Kafka nodes to start: 1 (default) or a replicated cluster, e.g. 3. "
    "[env: CLAW_LEDGER_BROKERS]",
)
def command(detach: bool, group: str, brokers: int | None) -> None:
    """Start Kafka and Postgres (unless given), migrate, and run the processor.

    Without --detach the processor runs in the foreground with a live status
    line until Ctrl-C. Servers given by --kafka/--database-url (or their env
    variables) are used as they are and nothing is started for them.
    `--brokers 3` starts a three-node Kafka cluster (see `services node --help`).
    """
    if brokers is not None:
        # flags travel as environment, as the root group's do
        os.environ[ENV_BROKERS] = str(brokers)
    console = terminal(stderr=True)
    bring_up(console)
    if detach:
        from claw_ledger.processor_control import start_processor

        pid, already = start_processor(settings(), group)
        console.print(
            f"[green]processor[/] {'already running' if already else 'started'} (pid {pid});"
            " stop everything with `claw-ledger down`"
        )
        return
    from consumers.runner import run_processor

    console.print("[green]processor[/] running; Ctrl-C to stop")
    run_processor(processor_config(group, 2000), status=sys.stderr.isatty())


@click.command("down")
@json_option()
def down(as_json: bool) -> None:
    """Stop the detached checkpointer and processor and the local Kafka and Postgres
    (data is kept)."""
    from claw_ledger.checkpointer_control import stop_checkpointer
    from claw_ledger.processor_control import stop_processor
    from claw_ledger.services.manager import services_down

    resolved = settings()
    checkpointer = stop_checkpointer(resolved)
    processor = stop_processor(resolved)
    stopped = services_down(resolved)
    if as_json:
        emit_json(
            {
                "checkpointer_stopped": checkpointer,
                "processor_stopped": processor,
                "services_stopped": stopped,
            }
        )
    else:
        names = (["checkpointer"] if checkpointer else []) + (["processor"] if processor else [])
        echo(f"stopped: {', '.join(names + stopped) or 'nothing'}")


@click.command("demo")
@json_option("Print the demo's results as JSON.")
def demo(as_json: bool) -> None:
    """Publish a short, realistic scenario and print its timeline.

    Needs a running ledger (`claw-ledger up --detach`).
    """
    from claw_ledger.demo import run_demo

    run_demo(settings(), as_json=as_json)
