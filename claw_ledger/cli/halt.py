"""``claw-ledger halt`` / ``resume`` / ``halts``: the kill switch, as signed events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from claw_ledger.cli.common import (
    emit_json,
    key_option,
    report_publish,
    resolve_key,
    settings,
    sign_and_publish,
)

__all__ = ["command", "halts", "resume"]

_F = TypeVar("_F", bound=Callable[..., Any])

_TARGET_HELP = "'*' (every agent), 'sub:<subject>' or 'job:<job id>'"


def _check_target(target: str) -> str:
    if target == "*" or (
        target.startswith(("sub:", "job:")) and len(target) > 4 and " " not in target
    ):
        return target
    raise click.BadParameter(f"{target!r}: use {_TARGET_HELP}", param_hint="TARGET")


def _target_command(name: str, event_type: str) -> Callable[[_F], click.Command]:
    """The ``name`` command: TARGET, a reason and an operator key that signs ``event_type``."""

    def decorate(func: _F) -> click.Command:
        for option in (
            click.option("--json", "as_json", is_flag=True, help="Print JSON."),
            key_option(f"Operator key that signs {event_type}."),
            click.option("--reason", required=True, help="Why (recorded)."),
            click.argument("target"),
        ):
            func = option(func)
        return click.command(name)(func)

    return decorate


@_target_command("halt", "agent.halted")
def command(target: str, reason: str, key_ref: str, as_json: bool) -> None:
    """Halt TARGET: '*' (every agent), 'sub:<subject>' or 'job:<job id>'.

    While a halt covers a job or its token's subject, run.started,
    receipt.recorded and token.issued for it are refused (AGENT_HALTED).
    `claw-ledger resume TARGET` lifts it.

    \b
    Examples:
      claw-ledger halt 'job:job-42' --reason "unexpected egress" --key operator
      claw-ledger halt 'sub:agent:alpha' --reason "prompt injection suspected" --key operator
      claw-ledger halt '*' --reason "incident 2026-17" --key operator
    """
    _publish("agent.halted", target, reason, key_ref, as_json)


@_target_command("resume", "agent.resumed")
def resume(target: str, reason: str, key_ref: str, as_json: bool) -> None:
    """Lift the halt on TARGET (exactly that target: resuming '*' leaves others).

    \b
    Example:
      claw-ledger resume 'job:job-42' --reason "egress explained" --key operator
    """
    _publish("agent.resumed", target, reason, key_ref, as_json)


def _publish(event_type: str, target: str, reason: str, key_ref: str, as_json: bool) -> None:
    target = _check_target(target)
    outcome = sign_and_publish(
        resolve_key(key_ref),
        event_type,
        f"halt:{target}",
        {"target": target, "reason": reason},
    )
    verb = "halted" if event_type == "agent.halted" else "resumed"
    report_publish(outcome, as_json, f"{verb} {target}")


@click.command("halts")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def halts(as_json: bool) -> None:
    """List the active halts."""
    from claw_ledger.reads import query_sync
    from storage.projection_queries import active_halts

    rows = query_sync(settings(), active_halts)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no active halts")
    for row in rows:
        click.echo(f"{row['target']:<30} since {row['halted_at']}  {row['reason']}")
