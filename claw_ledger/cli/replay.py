"""``claw-ledger replay``: rebuild the state from the events, verifying every one."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from claw_ledger.cli.common import (
    EVENT_TYPE,
    choice_option,
    echo,
    emit_json,
    jobs_option,
    json_option,
    replay_shown,
    settings,
    zoned_time_option,
)

if TYPE_CHECKING:
    from claw_ledger.replaying import ReplayResult

__all__ = ["command"]


@click.command("replay")
@click.option("--job", help="Report only the events of this job (its stream, token, halts).")
@click.option("--stream", help="Report only this stream, e.g. halt:*.")
@click.option(
    "--type", "event_type", type=EVENT_TYPE, metavar="TYPE", help="Report only this event type."
)
@click.option("--since", help="Report only events recorded from this time (ISO 8601 with zone).")
@click.option("--from-offset", type=click.IntRange(0), help="Report only from this Kafka offset.")
@click.option("--until", help="Stop before the first event recorded after this time.")
@choice_option(
    "--source",
    ("ledger", "kafka"),
    help="ledger: the events table in commit order; kafka: the ingress topic from the start.",
)
@click.option("--into", "into", metavar="SCHEMA", help="Write the rebuilt projections here.")
@click.option("--compare", is_flag=True, help="Diff the rebuild against the live projections.")
@click.option("--trust-root", metavar="DID", help="Pin the trust root (default: the recorded one).")
@click.option(
    "--signatures/--no-signatures",
    default=True,
    show_default=True,
    help="Check every envelope's Ed25519 signature. --no-signatures trusts the source"
    " for them (every other check still runs): several times faster.",
)
@jobs_option()
@json_option("A JSON summary at the end.")
def command(
    job: str | None,
    stream: str | None,
    event_type: str | None,
    since: str | None,
    from_offset: int | None,
    until: str | None,
    source: str,
    into: str | None,
    compare: bool,
    trust_root: str | None,
    signatures: bool,
    jobs: int | None,
    as_json: bool,
) -> None:
    """Replay the events, verifying each one, and rebuild the projections.

    Every envelope is verified again, every chain link recomputed, and every
    event decided by the same rules as the processor, from an empty state. A
    replay of the ledger stops at the first event that fails (a break) and
    names it; a replay of the topic skips what the processor quarantines.
    Nothing is executed: the rebuild only computes rows.

    --job, --stream, --type, --since and --from-offset select what is
    REPORTED. The state is always rebuilt from every event before, so that
    the rules have their context.

    Trust root: --trust-root, else the one `claw-ledger init` recorded, else
    the first admin key that registers itself.

    Signatures are checked by --jobs worker processes while this one parses
    and decides the events in order; the result is the same as with --jobs 1.

    \b
    Examples:
      claw-ledger replay --compare                  # rebuild and diff with the live tables
      claw-ledger replay --job job-42 --json        # that job's events, fully verified
      claw-ledger replay --until 2026-11-30T06:00:00Z --into replay_0600
      claw-ledger replay --source kafka --into rebuilt --compare
      claw-ledger replay --no-signatures --until 2026-11-30T06:00:00Z   # fast triage

    Exit 0: clean; 1: a break, a difference, or (--source kafka) a topic whose
    oldest records Kafka has removed; 2: bad usage or unreadable source.
    """
    from claw_ledger.replaying import ReplayFilter, ReplayRequest

    request = ReplayRequest(
        source=source,
        trust_root=trust_root,
        until=zoned_time_option(until, "--until"),
        filter=ReplayFilter(
            job, stream, event_type, zoned_time_option(since, "--since"), from_offset
        ),
        into=into,
        compare=compare,
        keep_reported=0 if as_json else 1000,
        signatures=signatures,
        jobs=jobs,
    )
    result = replay_shown(settings(), request, quiet=as_json)
    if as_json:
        emit_json(result.summary())
    else:
        _print(result, request.filter.active())
    sys.exit(0 if result.ok else 1)


def _print(result: ReplayResult, filtered: bool) -> None:
    summary: dict[str, Any] = result.summary()
    if filtered:
        for event in result.reported_events:
            echo(
                f"{event['position'] or event['offset']}  {event['occurred_at']}"
                f"  {event['event_type']}  {event['stream']}"
            )
    checked = (
        f"signatures checked by {result.jobs} process(es)"
        if result.signatures
        else "signatures NOT checked"
    )
    echo(
        f"replayed {summary['events']:,} events from"
        f" {'Kafka' if result.source == 'kafka' else 'the ledger'}"
        f" ({summary['accepted']:,} accepted, {sum(result.fold.skipped.values()):,} skipped,"
        f" {summary['reported']:,} reported) in {summary['duration_s']} s"
        f" ({summary['rate_per_s'] or 0:,} ev/s, {checked});"
        f" trust root {summary['trust_root']} ({summary['trust_root_from']})"
    )
    if result.archived is not None:
        archived = result.archived
        echo(
            f"started from the archive cut: positions below {archived['before_position']:,}"
            f" ({archived['events']:,} events, up to partition {archived['partition']}) are"
            " archived and were verified when they were detached"
        )
    for partition, first in result.removed.items():
        echo(
            f"INCOMPLETE: {partition} starts at offset {first:,}: Kafka removed records"
            " before it (retention or deletion) that this replay could not verify or apply"
        )
    if result.fold.reached_until:
        echo("stopped at --until")
    if result.fold.broken is not None:
        echo(f"BREAK: {result.fold.broken}")
    if result.written is not None:
        echo(f"wrote {result.written:,} rows into the rebuild schema")
    if result.diffs is not None:
        for diff in result.diffs[:200]:
            echo(f"DIFF: {diff}")
        echo(f"{len(result.diffs)} difference(s) with the live projections")
