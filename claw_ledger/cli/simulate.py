"""``claw-ledger simulate``: would a candidate WPC have allowed the calls we made?

``--policy`` re-decides the recorded calls under a candidate; ``--shadow``
summarises what the shadow policies in force said (``call.shadowed``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from claw_ledger.cli.common import (
    echo,
    emit_json,
    json_option,
    load_wpc_reference,
    progress_bar,
    run_async,
    settings,
    shows_progress,
    zoned_time_option,
)

__all__ = ["command"]


def _echo_by_action(summary: Any, denied: str, allowed: str) -> None:
    """The summary's counts per action, denials first, each list in name order."""
    for label, counts in ((denied, summary.denied_by_action), (allowed, summary.allowed_by_action)):
        for name, count in sorted(counts.items()):
            echo(f"  {label} {name}: {count}")


#: events between two updates of the progress bar
_PROGRESS_EVERY = 1000


async def _simulate(
    simulation: Any, database_url: str, audited: bool, advance: Callable[[int], None]
) -> dict[str, Any] | None:
    """Fold the ledger through ``simulation``; the archive cut it started from, if any.
    ``advance(events read)`` is told every few events."""
    from ledger.replay import StoredEvent
    from ledger.simulate import DECISION_EVENT_TYPES
    from storage.partitions import archive_boundary
    from storage.projection_queries import open_connection
    from storage.replay_queries import iter_decisions, iter_events

    skip = sorted(DECISION_EVENT_TYPES) if audited else []

    conn = await open_connection(database_url)
    try:
        # one snapshot: the decisions and the state they are judged against agree
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            boundary = await archive_boundary(conn)
            if boundary is not None:
                # the detached events (and their decisions) verified when they were cut
                simulation.fold.resume_snapshot(boundary.state_snapshot)
            async for position, body in iter_decisions(conn):
                simulation.expect(position, body)
            read = 0
            async for stored in iter_events(conn, skip_types=skip):
                read += 1
                if read % _PROGRESS_EVERY == 0:
                    advance(read)
                if audited:
                    # the chain was checked by audit; with the decisions left out
                    # the fold computes its own links instead of checking the stored ones
                    stored = StoredEvent(
                        stored.raw,
                        recorded_at=stored.recorded_at,
                        position=stored.position,
                        event_id=stored.event_id,
                    )
                simulation.feed(stored)
                if simulation.fold.broken is not None:
                    break
            simulation.finish()
            advance(read)
    finally:
        await conn.close()
    return None if boundary is None else boundary.to_json()


async def _events_in(database_url: str, audited: bool) -> int:
    """The events a simulation reads (before it starts: for its progress bar)."""
    from ledger.simulate import DECISION_EVENT_TYPES
    from storage.projection_queries import open_connection
    from storage.replay_queries import count_events

    conn = await open_connection(database_url)
    try:
        return await count_events(conn, sorted(DECISION_EVENT_TYPES) if audited else ())
    finally:
        await conn.close()


async def _shadowed(summary: Any, database_url: str, job_id: str | None) -> None:
    from storage.projection_queries import open_connection
    from storage.replay_queries import iter_shadowed

    conn = await open_connection(database_url)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            async for position, body in iter_shadowed(conn, job_id):
                summary.add(position, body)
    finally:
        await conn.close()


def _shadow_report(job_id: str | None, since: str | None, until: str | None, as_json: bool) -> None:
    from claw_ledger.config import effective_database_url
    from ledger.shadow import ShadowSelector, ShadowSummary

    selector = ShadowSelector(
        job_id=job_id,
        since=zoned_time_option(since, "--since"),
        until=zoned_time_option(until, "--until"),
    )
    summary = ShadowSummary(selector)
    run_async(_shadowed(summary, effective_database_url(settings(), role="reader"), job_id))
    if as_json:
        emit_json({"summary": summary.to_dict(), "calls": summary.calls})
    else:
        for call in summary.calls:
            action = call["action"]
            what = (
                f"tool {action['tool']}"
                if action["kind"] == "tool"
                else f"model {action['provider']}/{action['model']}"
            )
            echo(
                f"{call['decided_at']}  {call['job_id']}  {what}: {call['decision']}"
                f" ({call['reason_code']}), shadow {call['shadow_policy_hash_b64u']}"
                f" ({call['shadow_scope']}): {call['shadow_decision']}"
                f" ({call['shadow_reason_code']})"
            )
        echo(
            f"{summary.shadowed} shadow disagreements: {summary.would_deny} would be denied,"
            f" {summary.would_allow} would be allowed"
        )
        _echo_by_action(summary, "would deny ", "would allow")
    if summary.would_deny:
        raise SystemExit(1)


@click.command("simulate")
@click.option(
    "--policy",
    metavar="FILE|HASH",
    help="The candidate WPC: a file, or a policy hash in the registry.",
)
@click.option(
    "--shadow",
    is_flag=True,
    help="Summarise the recorded shadow disagreements (call.shadowed) instead.",
)
@click.option("--job", "job_id", metavar="JOB", help="Only this job's calls.")
@click.option(
    "--sub", "sub", metavar="SUBJECT", help="Only calls made with tokens of this subject."
)
@click.option(
    "--since", metavar="TIME", help="Only calls decided at or after TIME (with its zone)."
)
@click.option("--until", metavar="TIME", help="Only calls decided before TIME (with its zone).")
@click.option("--all-calls", is_flag=True, help="List every simulated call, not only the changed.")
@click.option(
    "--audited",
    is_flag=True,
    help="The ledger was verified by `claw-ledger audit`: do not verify the decision"
    " events again (control events still are). Much faster on a large ledger.",
)
@json_option("Print the report as JSON.")
def command(
    policy: str | None,
    shadow: bool,
    job_id: str | None,
    sub: str | None,
    since: str | None,
    until: str | None,
    all_calls: bool,
    audited: bool,
    as_json: bool,
) -> None:
    """Re-decide the recorded calls under a candidate WPC; publish and change nothing.

    Every recorded authorize decision (call.authorized, call.denied) of the
    selected calls is decided again by the authorize decision itself, with
    the candidate WPC in place of the job's and the tokens, halts and
    revocations as the ledger held them at that moment (a verified replay of
    the ledger). What only the token's bytes could tell (a bad signature, a
    replayed nonce) is kept as recorded.

    Prints each call whose outcome changes and a summary by tool and model.
    Exit 1 when any call that was allowed would now be denied (gate a policy
    change in CI with it), 0 otherwise, 2 on usage errors.

    With --shadow (instead of --policy), the calls on which a shadow policy
    (`claw-ledger wpc shadow`) disagreed with the real answer, as the
    authorize service recorded them live: each one, and counts by tool and
    model, by candidate and by reason. Exit 1 when a shadow policy would have
    denied a call that was allowed.

    \b
    Examples:
      claw-ledger simulate --policy stricter.json5
      claw-ledger simulate --policy HASH --job job-42 --json
      claw-ledger simulate --policy stricter.json5 --since 2026-11-01T00:00:00Z
      claw-ledger audit && claw-ledger simulate --policy HASH --audited
      claw-ledger simulate --shadow --since 2026-11-01T00:00:00Z
    """
    from claw_ledger.config import effective_database_url
    from ledger.simulate import CallSelector, Simulation
    from ledger.wpc import policy_hash_b64u, validate_wpc

    if shadow:
        if policy is not None or sub is not None or all_calls or audited:
            raise click.UsageError("--shadow takes only --job, --since, --until and --json")
        _shadow_report(job_id, since, until, as_json)
        return
    if policy is None:
        raise click.UsageError("give --policy FILE|HASH (a candidate) or --shadow")
    window = CallSelector(
        job_id=job_id,
        sub=sub,
        since=zoned_time_option(since, "--since"),
        until=zoned_time_option(until, "--until"),
    )
    document = load_wpc_reference(policy)
    simulation = Simulation(validate_wpc(document), window)
    if all_calls:
        simulation = Simulation(validate_wpc(document), window, keep=lambda call: True)
    reader_url = effective_database_url(settings(), role="reader")
    total = run_async(_events_in(reader_url, audited)) if shows_progress(as_json) else None
    with progress_bar("simulate", total, quiet=as_json) as advance:
        archived = run_async(_simulate(simulation, reader_url, audited, advance))
    if simulation.fold.broken is not None:
        raise click.ClickException(f"the ledger does not verify: {simulation.fold.broken}")
    summary = simulation.summary
    report = {
        "policy_hash_b64u": policy_hash_b64u(document),
        "summary": summary.to_dict(),
        "calls": [call.to_dict() for call in simulation.calls],
        # the decisions below an archive cut left with their partition: not simulated
        "archived": archived,
    }
    if as_json:
        emit_json(report)
    else:
        for call in simulation.calls:
            item = call.to_dict()
            echo(
                f"{item['decided_at']}  {item['job_id']}  {call.simulated.action}:"
                f" {item['recorded']['decision']} ({item['recorded']['reason_code']})"
                f" -> {item['simulated']['decision']} ({item['simulated']['reason_code']})"
            )
        echo(
            f"{summary.simulated} calls simulated: {summary.unchanged} unchanged,"
            f" {summary.newly_denied} newly denied, {summary.newly_allowed} newly allowed"
        )
        _echo_by_action(summary, "newly denied ", "newly allowed")
        if archived is not None:
            echo(
                f"  archived: the calls decided before position {archived['before_position']:,}"
                " were detached with their partition and are not simulated"
            )
    if summary.newly_denied:
        raise SystemExit(1)
