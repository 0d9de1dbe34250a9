"""The kill switch: ``agent.halted`` and ``agent.resumed`` (ADR 0016).

A halt targets ``*``, ``sub:<S>`` or ``job:<J>``. Its rule revokes every
token in scope that is active and unexpired when the halt is recorded (each
token row names the halt's event in ``revoked_by_halt``) and keeps their ids
in the halt record's ``revoked_jtis``: the revocation is a function of the
ledger, so replay reproduces it and no token slips between a halt and
separate revocation events. While a halt covers a job or the subject of its
token, ``run.started``, ``receipt.recorded`` and ``token.issued`` for it are
refused with ``AGENT_HALTED``. ``tools`` and ``model_egress`` record what the
execution layer denies (both by default); ``policy_hash_b64u`` may name the
halt WPC (mode halt) in force for the scope.

Lifting is re-authorisation: ``agent.resumed`` must name an active WPC that is
not a halt WPC (``RESUME_POLICY_*`` codes). Tokens the halt revoked stay
revoked; a token issued afterwards for the scope must be pinned to that WPC
(or to one that superseded it), else ``RESUME_POLICY_PIN_MISMATCH``.
Halting an already halted target is accepted (a kill switch is never refused
for being engaged); resuming one that is not halted is ``HALT_NOT_ACTIVE``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NoReturn

from pydantic import Field

from ledger.control_cache import may_hold_rows, rows_in_scope
from ledger.errors import EventError, PolicyError, ReasonCode
from ledger.registry import EventBody, EventTypeSpec, RuleSettings
from ledger.state import EventContext, LedgerState, ProjectionRow
from ledger.types._common import (
    ACTIVE,
    Ending,
    active_halt,
    body_of,
    epoch,
    mark_revoked,
    require_stream,
    row,
    spec,
    usable_policy,
)
from ledger.wpc import check_policy_hash

__all__ = [
    "SPECS",
    "AgentHalted",
    "AgentResumed",
    "active_halt",
    "missing_resume_policy",
    "require_reauthorised",
    "resume_policy",
    "tokens_in_scope",
]

_TARGET = r"^(\*|sub:\S{1,300}|job:\S{1,300})$"


class AgentHalted(EventBody):
    """The kill switch: revokes the target's tokens; no new token, start or receipt for it."""

    target: str = Field(pattern=_TARGET, description="`*`, `sub:<s>`, `job:<j>`")
    reason: str = Field(min_length=1, max_length=2000)
    tools: bool = Field(default=True, description="tool execution denied")
    model_egress: bool = Field(default=True, description="model calls denied")

    @property
    def full_stop(self) -> bool:
        """Tools and model egress both denied: the tokens in scope are revoked too."""
        return self.tools and self.model_egress

    policy_hash_b64u: str | None = Field(default=None, description="the halt WPC in force")


class AgentResumed(EventBody):
    """Lifts the halt of exactly this target under a new active, non-halt WPC."""

    target: str = Field(pattern=_TARGET)
    reason: str = Field(min_length=1, max_length=2000)
    # Optional in the schema so that a resume without one reaches the rule and
    # is refused with its own code (RESUME_POLICY_REQUIRED), not a schema error.
    policy_hash_b64u: str | None = Field(default=None, description="required by the rule")


# --- scope ----------------------------------------------------------------------------


def tokens_in_scope(state: LedgerState, target: str, now: int) -> list[str]:
    """The ids of the active, unexpired tokens a halt of ``target`` covers, sorted.

    ``*``: every token; ``sub:S``: tokens issued to S; ``job:J``: tokens bound
    to J (``mission_id``) and the token J started with. A processor holding
    tokens in part reads the scope's rows up front (:data:`ledger.control_reads.CONTROL_SCOPES`).
    """
    started = None
    if target.startswith("job:"):
        job = state.jobs.get(target[4:])
        started = job.get("cst_jti") if job else None
    candidates = {str(token["jti"]): token for token in rows_in_scope(state.tokens, target)}
    if started is not None and (token := state.tokens.get(started)) is not None:
        candidates[started] = token  # known by key: read by key
    # sorted: the state's dict order depends on how it was loaded, the record must not
    return sorted(
        jti
        for jti, token in candidates.items()
        if token["status"] == ACTIVE and int(token["exp"]) > now and _covers(target, token, started)
    )


def _covers(target: str, token: dict[str, Any], job_token: str | None) -> bool:
    if target == "*":
        return True
    if target.startswith("sub:"):
        return bool(token["sub"] == target[4:])
    return bool(token["mission_id"] == target[4:] or token["jti"] == job_token)


def missing_resume_policy() -> NoReturn:
    """``RESUME_POLICY_REQUIRED``: a lift must name the WPC it re-authorises under."""
    raise EventError(
        ReasonCode.RESUME_POLICY_REQUIRED,
        "a resume must name the WPC it re-authorises under: a lift without one"
        " cannot be told apart from an attacker's",
        hint="`claw-ledger resume TARGET --policy HASH --reason TEXT --key KEY`",
    )


def resume_policy(state: LedgerState, policy_hash: str | None) -> dict[str, Any]:
    """The registry record of the WPC a resume re-authorises under, else the refusal.

    ``RESUME_POLICY_REQUIRED`` (none named), ``MALFORMED_POLICY_HASH``,
    ``RESUME_POLICY_NOT_ACTIVE`` (unknown, superseded or revoked),
    ``RESUME_POLICY_IS_HALT`` (a halt-mode WPC authorises nothing).
    """
    if policy_hash is None:
        missing_resume_policy()
    check_policy_hash(policy_hash)
    record = state.policies.get(policy_hash)
    if record is None or record["status"] != ACTIVE:
        status = "not in the registry" if record is None else str(record["status"])
        raise PolicyError(
            ReasonCode.RESUME_POLICY_NOT_ACTIVE,
            f"WPC {policy_hash} is {status}: a resume needs an active WPC",
            hint="publish one with `claw-ledger wpc publish FILE --key K`",
        )
    if record["halt_mode"]:
        raise PolicyError(
            ReasonCode.RESUME_POLICY_IS_HALT,
            f"WPC {policy_hash} is a halt WPC (mode halt): it authorises nothing",
        )
    return record


def _successors(state: LedgerState, policy_hash: str) -> set[str]:
    """``policy_hash`` and every WPC that superseded it, transitively."""
    chain: set[str] = set()
    current: str | None = policy_hash
    while current is not None and current not in chain:
        chain.add(current)
        record = state.policies.get(current)
        current = record.get("superseded_by") if record else None
    return chain


def _resumed_at(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(record["resumed_at"]).replace("Z", "+00:00"))


def require_reauthorised(
    state: LedgerState, what: str, *, job_id: str | None, sub: str | None, pin: str | None
) -> None:
    """A token for a scope whose halt was lifted must be pinned to the lift's WPC.

    Of the lifted halts covering the token (``*``, ``sub:``, ``job:``), the
    latest lift decides (a tie goes to the most specific target); a WPC that
    superseded the lift's WPC is accepted too. ``RESUME_POLICY_PIN_MISMATCH``.
    """
    targets = [f"job:{job_id}" if job_id else None, f"sub:{sub}" if sub else None, "*"]
    lifted = [
        record
        for target in targets
        if target is not None
        and (record := state.halts.get(target)) is not None
        and not record["active"]
        and record.get("resume_policy_hash_b64u")
    ]
    if not lifted:
        return
    # max() keeps the first of equals: the most specific target
    deciding = max(lifted, key=_resumed_at)
    required = str(deciding["resume_policy_hash_b64u"])
    if pin is None or pin not in _successors(state, required):
        raise PolicyError(
            ReasonCode.RESUME_POLICY_PIN_MISMATCH,
            f"{what} refused: halt {deciding['target']!r} was lifted under WPC {required};"
            + (" the token has no pin" if pin is None else f" the token is pinned to {pin}"),
            hint=f"issue the token with --policy {required}",
        )


# --- agent.halted ---------------------------------------------------------------------


def _check_halted(state: LedgerState, ctx: EventContext, settings: RuleSettings, /) -> None:
    # A kill switch is never refused for being engaged already: halting an
    # active target again is recorded and refreshes the reason.
    body = body_of(ctx, AgentHalted)
    require_stream(ctx, f"halt:{body.target}")
    if body.policy_hash_b64u is not None:
        record = usable_policy(state, body.policy_hash_b64u)
        if not record["halt_mode"]:
            raise PolicyError(
                ReasonCode.HALT_POLICY_NOT_HALT,
                f"WPC {body.policy_hash_b64u} is not a halt WPC (mode halt)",
                hint="halt without --policy (deny-all is the default) or name a mode-halt WPC",
            )


def _apply_halted(
    state: LedgerState, ctx: EventContext, settings: RuleSettings, /
) -> list[ProjectionRow]:
    body = body_of(ctx, AgentHalted)
    previous = state.halts.get(body.target)
    # re-engaging an active halt keeps what it revoked: nothing in scope was issued since
    carried = list(previous.get("revoked_jtis") or []) if previous and previous["active"] else []
    # a full stop revokes the tokens in flight (seed 004); a partial halt (only tools, or
    # only model egress) leaves them, or the half it allows could never run
    # no token at all (a replay of halts alone): nothing in scope, and no clock to read
    in_flight = body.full_stop and may_hold_rows(state.tokens)
    revoked = tokens_in_scope(state, body.target, epoch(ctx.event.occurred_at)) if in_flight else []
    rows: list[ProjectionRow] = []
    for jti in revoked:
        token = state.tokens[jti]
        mark_revoked(token, ctx, f"halt {body.target}: {body.reason}")
        token["revoked_by_halt"] = ctx.event.event_id
        rows.append(row("tokens", "jti", token))
    record = _RESUMPTION.open(ctx, "halted", body.reason, target=body.target)
    record.update(
        deny_tools=body.tools,
        deny_model_egress=body.model_egress,
        policy_hash_b64u=body.policy_hash_b64u,
        revoked_jtis=sorted({*carried, *revoked}),
        resume_policy_hash_b64u=None,
    )
    state.halts[body.target] = record
    rows.append(row("halts", "target", record))
    return rows


# --- agent.resumed --------------------------------------------------------------------


_RESUMPTION = Ending(
    "halts", "target", "halt", "resumed", ReasonCode.HALT_NOT_ACTIVE, "{} is not halted"
)


def _check_resumed(state: LedgerState, ctx: EventContext, settings: RuleSettings, /) -> None:
    _RESUMPTION.check(state, ctx, settings)
    resume_policy(state, body_of(ctx, AgentResumed).policy_hash_b64u)


def _apply_resumed(
    state: LedgerState, ctx: EventContext, settings: RuleSettings, /
) -> list[ProjectionRow]:
    record = _RESUMPTION.end(state, ctx)
    record["resume_policy_hash_b64u"] = body_of(ctx, AgentResumed).policy_hash_b64u
    return [row("halts", "target", record)]


#: event type, body, stream, roles, projections written; check, apply, timeline summary
# fmt: off
SPECS: tuple[EventTypeSpec, ...] = (
    spec("agent.halted", AgentHalted, "halt:<target>", "operator", "halts tokens",
         _check_halted, _apply_halted, "target reason policy_hash_b64u", lane="control"),
    spec("agent.resumed", AgentResumed, "halt:<target>", "operator", "halts",
         _check_resumed, _apply_resumed, "target reason policy_hash_b64u", lane="control"),
)
# fmt: on
