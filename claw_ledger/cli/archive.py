"""``claw-ledger archive``: the partitions of the events table, and detaching old ones."""

from __future__ import annotations

import click

from claw_ledger.cli.common import echo, emit_json, print_table, progress_bar, run_async, settings

__all__ = ["command"]


@click.group("archive")
def command() -> None:
    """Partitions of the events table: list them, detach the oldest for archiving.

    The events table is cut by position into partitions, created ahead of need
    by the processor. Detaching the oldest one verifies it, records the chain
    head of every Kafka partition at the cut, and takes its rows out of the
    ledger table; `audit` and `replay` then verify from that cut on. Export the
    detached table before dropping it (docs/operations.md, "Archiving old events").

    \b
    Examples:
      claw-ledger archive list
      claw-ledger archive detach --before 1000001
      claw-ledger archive detach --partition events_000000000001 --json
    """


@command.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_command(as_json: bool) -> None:
    """The partitions (attached or detached) and what is archived."""
    from claw_ledger.archiving import archive_status

    status = run_async(archive_status(settings()))
    if as_json:
        emit_json(status)
        return
    print_table(
        "events partitions",
        ["name", "positions", "state", "created"],
        [
            [
                p["name"],
                f"{p['position_from']}..{p['position_to'] - 1}",
                p["state"] + (f" {p['detached_at'][:19]}" if p["detached_at"] else ""),
                p["created_at"][:19],
            ]
            for p in status["partitions"]
        ],
    )
    archived = status["archived"]
    echo(
        f"partitions of {status['partition_rows']:,} positions,"
        f" {status['partitions_ahead']} kept ahead of the last position"
    )
    if archived is None:
        echo("nothing archived: every event is in the table")
    else:
        echo(
            f"archived: positions below {archived['before_position']:,}"
            f" ({archived['events']:,} events), last cut {archived['detached_at'][:19]}"
            f" by {archived['detached_by']}"
        )


@command.command("detach")
@click.option(
    "--before",
    type=click.IntRange(min=2),
    help="Cut at this position: the oldest attached partition ends just below it.",
)
@click.option("--partition", "name", help="Or name the partition (the oldest attached one).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def detach_command(before: int | None, name: str | None, as_json: bool) -> None:
    """Verify and detach the oldest attached partition (database owner only).

    The partition must be full (the ledger has moved past it). Its rows are
    replayed onto the previous cut's state first; if they do not verify,
    nothing is detached (exit 1). Exit 2 for another role than the owner, or
    a partition that is not the oldest or still filling. The detached table
    stays in the database until you export and drop it.
    """
    from claw_ledger.archiving import detach_oldest, export_hint

    if (before is None) == (name is None):
        raise click.UsageError("give exactly one of --before POSITION or --partition NAME")
    with progress_bar("verify", None, quiet=as_json) as advance:
        result = run_async(detach_oldest(settings(), name=name, before=before, progress=advance))
    if as_json:
        emit_json(result.to_json())
        return
    echo(
        f"detached {result.partition}: positions {result.position_from}..{result.position_to - 1},"
        f" {result.events:,} events; chains now verify from position {result.position_to}"
    )
    echo(f"export it, then drop it: {export_hint(result.partition)}")


@command.command("partition-rows")
@click.argument("rows", type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def partition_rows_command(rows: int, as_json: bool) -> None:
    """Cut partitions not yet holding a row at ROWS positions each (database owner only)."""
    from claw_ledger.archiving import resize_partitions

    headroom = run_async(resize_partitions(settings(), rows))
    if as_json:
        emit_json({"partition_rows": rows, "headroom": headroom})
    else:
        echo(f"partitions from now on hold {rows:,} positions; {headroom:,} cut ahead")
