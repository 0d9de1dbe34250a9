"""The kill switch: ``agent.halted`` and ``agent.resumed``.

A halt targets ``*``, ``sub:<S>`` or ``job:<J>``. While a halt covers a job or
the subject of its token, ``run.started``, ``receipt.recorded`` and
``token.issued`` for it are refused with ``AGENT_HALTED``; ``agent.resumed``
for the same target lifts it (resuming ``*`` lifts only the ``*`` halt).
Halting an already halted target is accepted (a kill switch is never
refused); resuming one that is not halted is refused with ``HALT_NOT_ACTIVE``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ledger.errors import EventError, ReasonCode
from ledger.registry import EventBody, EventTypeSpec, RuleSettings
from ledger.state import EventContext, LedgerState, ProjectionRow
from ledger.types._common import active_halt, body_of, require_stream, row, spec

__all__ = ["SPECS", "AgentHalted", "AgentResumed", "active_halt"]

_TARGET = r"^(\*|sub:\S{1,300}|job:\S{1,300})$"


class AgentHalted(EventBody):
    """The kill switch: no new token, start or receipt for the target."""

    target: str = Field(pattern=_TARGET, description="`*`, `sub:<s>`, `job:<j>`")
    reason: str = Field(min_length=1, max_length=2000)


class AgentResumed(EventBody):
    """Lifts the halt of exactly this target."""

    target: str = Field(pattern=_TARGET)
    reason: str = Field(min_length=1, max_length=2000)


def _check_halted(state: LedgerState, ctx: EventContext, settings: RuleSettings, /) -> None:
    # A kill switch is never refused for being engaged already: halting an
    # active target again is recorded and refreshes the reason.
    body = body_of(ctx, AgentHalted)
    require_stream(ctx, f"halt:{body.target}")


def _apply_halted(
    state: LedgerState, ctx: EventContext, settings: RuleSettings, /
) -> list[ProjectionRow]:
    body = body_of(ctx, AgentHalted)
    record: dict[str, Any] = {
        "target": body.target,
        "active": True,
        "reason": body.reason,
        "halted_by": ctx.signer,
        "halted_at": ctx.event.occurred_at,
        "halted_event_id": ctx.event.event_id,
        "resumed_reason": None,
        "resumed_by": None,
        "resumed_at": None,
        "resumed_event_id": None,
    }
    state.halts[body.target] = record
    return [row("halts", "target", record)]


def _check_resumed(state: LedgerState, ctx: EventContext, settings: RuleSettings, /) -> None:
    body = body_of(ctx, AgentResumed)
    require_stream(ctx, f"halt:{body.target}")
    record = state.halts.get(body.target)
    if record is None or not record["active"]:
        raise EventError(ReasonCode.HALT_NOT_ACTIVE, f"{body.target} is not halted")


def _apply_resumed(
    state: LedgerState, ctx: EventContext, settings: RuleSettings, /
) -> list[ProjectionRow]:
    body = body_of(ctx, AgentResumed)
    record = state.halts[body.target]
    record.update(
        active=False,
        resumed_reason=body.reason,
        resumed_by=ctx.signer,
        resumed_at=ctx.event.occurred_at,
        resumed_event_id=ctx.event.event_id,
    )
    return [row("halts", "target", record)]


#: event type, body, stream, roles, projections written; check, apply, timeline summary
# fmt: off
SPECS: tuple[EventTypeSpec, ...] = (
    spec("agent.halted", AgentHalted, "halt:<target>", "operator", "halts",
         _check_halted, _apply_halted, "target reason"),
    spec("agent.resumed", AgentResumed, "halt:<target>", "operator", "halts",
         _check_resumed, _apply_resumed, "target reason"),
)
# fmt: on
