"""``claw-ledger halt`` / ``resume`` / ``halts``: the kill switch, as signed events (ADR 0016)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import click

from claw_ledger.cli.common import (
    echo,
    emit_json,
    json_option,
    publish_and_report,
    settings,
    signing_options,
)

__all__ = ["command", "halts", "resume"]

F = TypeVar("F", bound=Callable[..., Any])

_TARGET_HELP = "'*' (every agent), 'sub:<subject>' or 'job:<job id>'"


def _policy_option(help_text: str) -> Callable[[F], F]:
    """``--policy HASH``: the WPC a halt or a resume names."""
    return click.option("--policy", "policy_hash", metavar="HASH", help=help_text)


#: what the ledger takes (docs/formats.md §10, `agent.halted`): no whitespace of any kind
_TARGET_RE = re.compile(r"\*|(sub|job):\S{1,300}")


def _check_target(target: str) -> str:
    if _TARGET_RE.fullmatch(target):
        return target
    raise click.BadParameter(f"{target!r}: use {_TARGET_HELP}", param_hint="TARGET")


def _rows(policy_hash: str | None, target: str) -> tuple[Any, Any]:
    """The registry row of ``policy_hash`` (if any) and the halt row of ``target``."""
    from claw_ledger.reads import query_sync
    from storage.projection_queries import get_halt, get_policy

    policy = query_sync(settings(), get_policy, policy_hash) if policy_hash else None
    return policy, query_sync(settings(), get_halt, target)


@click.command("halt")
@click.argument("target")
@click.option("--reason", required=True, help="Why (recorded).")
@click.option(
    "--tools/--no-tools",
    default=True,
    show_default="denied",
    help="Deny tool execution in scope (--no-tools leaves tools running).",
)
@click.option(
    "--model-egress/--no-model-egress",
    default=True,
    show_default="denied",
    help="Deny model calls in scope (--no-model-egress leaves them running).",
)
@_policy_option("A halt WPC (mode halt, deny-all) to record as the policy in force for the scope.")
@signing_options("Operator key that signs agent.halted.")
def command(
    target: str,
    reason: str,
    tools: bool,
    model_egress: bool,
    policy_hash: str | None,
    key_ref: str,
    as_json: bool,
) -> None:
    """Halt TARGET: '*' (every agent), 'sub:<subject>' or 'job:<job id>'.

    The halt tells the execution layer to deny tool execution and model calls
    (both by default). Such a full stop also revokes every active token in
    scope (they stay revoked after a resume); a halt that leaves one of them
    running (--no-tools, --no-model-egress) revokes none, and the tokens are
    denied only what it denies. While it is active, token.issued, run.started
    and receipt.recorded in scope are refused (AGENT_HALTED).
    `claw-ledger resume TARGET --policy HASH` lifts it. Exit 1 when the
    ledger refuses the halt (only for a --policy that is not an active
    mode-halt WPC: a halt without --policy is never refused).

    \b
    Examples:
      claw-ledger halt 'job:job-42' --reason "unexpected egress" --key operator
      claw-ledger halt 'sub:agent:alpha' --reason "injection" --no-model-egress --key operator
      claw-ledger halt '*' --reason "incident 2026-17" --policy HALT_WPC_HASH --key operator
    """
    target = _check_target(target)
    if not tools and not model_egress:
        raise click.UsageError(
            "--no-tools with --no-model-egress denies nothing at the execution layer;"
            " a halt denies tools, model calls or both"
        )
    body: dict[str, Any] = {
        "target": target,
        "reason": reason,
        "tools": tools,
        "model_egress": model_egress,
    }
    if policy_hash is not None:
        from ledger.errors import PolicyError, ReasonCode
        from ledger.state import LedgerState
        from ledger.types.policies import usable_policy

        policy, _ = _rows(policy_hash, target)
        state = LedgerState(policies={policy_hash: policy} if policy else {})
        if not usable_policy(state, policy_hash)["halt_mode"]:
            raise PolicyError(
                ReasonCode.HALT_POLICY_NOT_HALT,
                f"WPC {policy_hash} is not a halt WPC (mode halt)",
                hint="halt without --policy (deny-all is the default) or name a mode-halt WPC",
            )
        body["policy_hash_b64u"] = policy_hash
    publish_and_report(key_ref, "agent.halted", f"halt:{target}", body, as_json, f"halted {target}")


@click.command("resume")
@click.argument("target")
@_policy_option("Required: the active, non-halt WPC the scope is re-authorised under.")
@click.option("--reason", required=True, help="Why (recorded).")
@signing_options("Operator key that signs agent.resumed.")
def resume(target: str, policy_hash: str | None, reason: str, key_ref: str, as_json: bool) -> None:
    """Lift the halt on TARGET by re-authorising it under a new WPC.

    Exactly that target is lifted (resuming '*' leaves 'sub:' and 'job:'
    halts). --policy names an active WPC that is not a halt WPC: a lift
    without one is refused (RESUME_POLICY_REQUIRED, exit 1), since a bare
    "unhalt" cannot be told apart from an attacker's. Tokens the halt
    revoked stay revoked; tokens issued afterwards for the scope must be
    pinned to that WPC (RESUME_POLICY_PIN_MISMATCH otherwise).

    \b
    Example:
      claw-ledger resume 'job:job-42' --policy NEW_WPC_HASH --reason "egress explained" \\
          --key operator
    """
    from ledger.errors import EventError, ReasonCode
    from ledger.state import LedgerState
    from ledger.types.halts import missing_resume_policy, resume_policy

    target = _check_target(target)
    if policy_hash is None:
        missing_resume_policy()
    policy, halt = _rows(policy_hash, target)
    if halt is None or not halt["active"]:
        raise EventError(
            ReasonCode.HALT_NOT_ACTIVE,
            f"{target} is not halted",
            hint="`claw-ledger halts` lists the active halts",
        )
    resume_policy(LedgerState(policies={policy_hash: policy} if policy else {}), policy_hash)
    publish_and_report(
        key_ref,
        "agent.resumed",
        f"halt:{target}",
        {"target": target, "reason": reason, "policy_hash_b64u": policy_hash},
        as_json,
        f"resumed {target} under WPC {policy_hash}",
    )


@click.command("halts")
@click.option("--all", "include_lifted", is_flag=True, help="Include lifted halts.")
@json_option("Print JSON.")
def halts(include_lifted: bool, as_json: bool) -> None:
    """The kill switch's status: every active halt (--all: lifted ones too).

    For each: scope, since, by whom, why, what the execution layer denies,
    the policy in force (a halt WPC, or deny-all), the tokens the halt
    revoked and the call.denied decisions recorded in scope since.
    """
    from claw_ledger.reads import query_sync
    from storage.projection_queries import halt_document, halt_status

    rows = [
        halt_document(r) for r in query_sync(settings(), halt_status, include_lifted=include_lifted)
    ]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        echo("no active halts" if not include_lifted else "no halts")
    for row in rows:
        denies = [
            n
            for n, on in (("tools", row["deny_tools"]), ("model egress", row["deny_model_egress"]))
            if on
        ]
        who = row["halted_by_name"] or row["halted_by"]
        echo(f"{row['target']}  {'HALTED' if row['active'] else 'lifted'}")
        echo(f"  since          {row['since']}  by {who}")
        echo(f"  why            {row['reason']}")
        echo(f"  denies         {', '.join(denies) or 'nothing'}")
        echo(f"  policy         {row['policy_hash_b64u'] or 'deny-all (no halt WPC named)'}")
        echo(f"  tokens revoked {row['tokens_revoked']}")
        echo(f"  calls denied   {row['calls_denied_since']} since the halt")
        if not row["active"]:
            echo(
                f"  lifted         {row['resumed_at']} under WPC"
                f" {row['resume_policy_hash_b64u'] or '(none: lifted before re-authorisation)'}"
                f"  ({row['resumed_reason']})"
            )
