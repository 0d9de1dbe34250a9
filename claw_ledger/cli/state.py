"""``claw-ledger state at T``: what held at a moment, rebuilt by a verified replay."""

from __future__ import annotations

import sys

import click

from claw_ledger.cli.common import echo, emit_json, jobs_option, json_option, replay_shown, settings

__all__ = ["command"]


@click.group("state")
def command() -> None:
    """The ledger's state at a point in time (a verified replay up to it)."""


@command.command("at")
@click.argument("moment", metavar="T")
@click.option("--trust-root", metavar="DID", help="Pin the trust root (default: the recorded one).")
@jobs_option()
@json_option()
def at(moment: str, trust_root: str | None, jobs: int | None, as_json: bool) -> None:
    """What was halted, which tokens were valid, which policies were active and
    which jobs were running at T (ISO 8601 with a zone).

    The ledger is replayed from its first event, every envelope and chain link
    verified, up to the last event recorded at or before T (a progress bar on a
    terminal). Exit 1 when the replay breaks before T (nothing after a break is
    trusted).

    \b
    Example:
      claw-ledger state at 2026-11-30T06:00:00Z --json
    """
    from claw_ledger.replaying import ReplayRequest, zoned_time
    from ledger.replay import point_in_time

    try:
        when = zoned_time(moment)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    request = ReplayRequest(trust_root=trust_root, until=when, jobs=jobs)
    result = replay_shown(settings(), request, quiet=as_json)
    view = point_in_time(result.fold.state, when)
    view["events"] = result.events
    view["breaks"] = [result.fold.broken.to_dict()] if result.fold.broken else []
    if as_json:
        emit_json(view)
    else:
        echo(f"state at {view['at']} after {view['events']:,} events")
        for halt in view["halted"]:
            echo(f"  halted   {halt['target']}  ({halt['reason']})")
        for token in view["valid_tokens"]:
            echo(f"  token    {token['jti']}  sub={token['sub']} job={token['mission_id']}")
        for policy in view["active_policies"]:
            echo(f"  policy   {policy}")
        for job in view["running_jobs"]:
            echo(f"  running  {job['job_id']}  since {job['started_at']}")
        if result.fold.broken is not None:
            echo(f"BREAK: {result.fold.broken}")
    sys.exit(1 if result.fold.broken else 0)
