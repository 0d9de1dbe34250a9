"""``claw-ledger state at T``: what held at a moment, rebuilt by a verified replay."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

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
        _print_view(view)
        if result.fold.broken is not None:
            echo(f"BREAK: {result.fold.broken}")
    sys.exit(1 if result.fold.broken else 0)


#: each part of the view: its label, how one entry reads, and what an empty part says
_PARTS: tuple[tuple[str, str, Callable[[Any], str], str], ...] = (
    ("halted", "halted", lambda halt: f"{halt['target']}  ({halt['reason']})", "none"),
    (
        "valid_tokens",
        "token",
        lambda t: f"{t['jti']}  sub={t['sub']} job={t['mission_id']}",
        "none valid",
    ),
    ("active_policies", "policy", str, "none active"),
    ("running_jobs", "running", lambda job: f"{job['job_id']}  since {job['started_at']}", "none"),
)


def _print_view(view: dict[str, Any]) -> None:
    """Every part, an empty one included: "nothing halted" is an answer, and a
    responder should not have to read it from a missing line."""
    if view["events"] == 0 and not view["breaks"]:
        echo(f"state at {view['at']}: no event was recorded at or before it")
        return
    echo(f"state at {view['at']} after {view['events']:,} events")
    for key, label, line, empty in _PARTS:
        for entry in view[key] or [None]:
            echo(f"  {label:<8} {empty if entry is None else line(entry)}")
