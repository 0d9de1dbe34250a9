"""Shadow policies: ``policy.shadowed``, ``policy.shadow_ended`` and ``call.shadowed``.

A policy admin puts a candidate WPC *in shadow* over a scope (``*``,
``sub:<S>``, ``job:<J>``, as for halts): from then on the authorize decision
(:func:`ledger.authorize.decide_call`) also judges each call of a job the
scope covers under the candidate, beside the WPC in force, and the authorize
service records every call on which the two disagree as ``call.shadowed``.
The real answer never depends on a shadow. Shadowing a scope again replaces
its candidate; ``policy.shadow_ended`` ends it (``SHADOW_NOT_ACTIVE`` when
none is active). The candidate must be a registered, active WPC when it is
put in shadow. Shadows are projected into ``shadows`` (keyed by scope) and
loaded into :attr:`ledger.state.LedgerState.shadows`; ``call.shadowed``
changes no state and writes no projection (the events are the record; ADR
0023).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from ledger.encoding import CANONICAL_UUID_PATTERN
from ledger.errors import EventError, ReasonCode
from ledger.registry import EventBody, EventTypeSpec, RuleSettings
from ledger.state import EventContext, LedgerState, ProjectionRow
from ledger.types._common import (
    JOB_ID,
    Ending,
    action_summary,
    body_of,
    require_stream,
    row,
    spec,
    usable_policy,
)
from ledger.types.decisions import CallAction

__all__ = [
    "SHADOW_EVENT_NAMESPACE",
    "SPECS",
    "CallShadowed",
    "PolicyShadowEnded",
    "PolicyShadowed",
    "shadow_event_id",
]

_SCOPE = r"^(\*|sub:\S{1,300}|job:\S{1,300})$"
_UUID = f"^{CANONICAL_UUID_PATTERN}$"
_HASH = r"^[A-Za-z0-9_-]{43}$"
_RFC3339 = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$"
_CODES = frozenset(code.value for code in ReasonCode)

#: ``call.shadowed`` event ids are uuid5(this, "<decision_id>/<shadow policy hash>"):
#: a re-sent shadow record is a duplicate, never a second event
SHADOW_EVENT_NAMESPACE = uuid.UUID("5b0c3c1e-6d53-4d0e-9d0a-6c6a77736864")


def shadow_event_id(decision_id: str, shadow_policy_hash: str) -> str:
    """The event id of the ``call.shadowed`` of this decision and candidate."""
    return str(uuid.uuid5(SHADOW_EVENT_NAMESPACE, f"{decision_id}/{shadow_policy_hash}"))


class PolicyShadowed(EventBody):
    """A candidate WPC is judged beside the one in force for every call in a scope."""

    policy_hash_b64u: str = Field(pattern=_HASH, description="the candidate WPC")
    scope: str = Field(pattern=_SCOPE, description="`*`, `sub:<s>`, `job:<j>`")
    reason: str = Field(default="", max_length=2000)


class PolicyShadowEnded(EventBody):
    """Ends the shadow policy of exactly this scope."""

    scope: str = Field(pattern=_SCOPE)
    reason: str = Field(default="", max_length=2000)


class CallShadowed(EventBody):
    """A call on which a shadow WPC disagreed with the real answer (which stood)."""

    decision_id: str = Field(pattern=_UUID, description="the real decision's")
    job_id: str = Field(pattern=JOB_ID)
    action: CallAction
    policy_hash_b64u: str | None = Field(default=..., pattern=_HASH)
    decision: Literal["allow", "deny"]
    reason_code: str = Field(max_length=100)
    shadow_scope: str = Field(pattern=_SCOPE)
    shadow_policy_hash_b64u: str = Field(pattern=_HASH)
    shadow_decision: Literal["allow", "deny"]
    shadow_reason_code: str = Field(max_length=100)
    decided_at: str = Field(pattern=_RFC3339)


def _check_shadowed(state: LedgerState, ctx: EventContext, settings: RuleSettings, /) -> None:
    body = body_of(ctx, PolicyShadowed)
    require_stream(ctx, f"shadow:{body.scope}")
    usable_policy(state, body.policy_hash_b64u)


def _apply_shadowed(
    state: LedgerState, ctx: EventContext, settings: RuleSettings, /
) -> list[ProjectionRow]:
    body = body_of(ctx, PolicyShadowed)
    record = _ENDING.open(
        ctx, "shadowed", body.reason, scope=body.scope, policy_hash_b64u=body.policy_hash_b64u
    )
    state.shadows[body.scope] = record
    return [row("shadows", "scope", record)]


def _check_call(state: LedgerState, ctx: EventContext, settings: RuleSettings, /) -> None:
    body = body_of(ctx, CallShadowed)
    require_stream(ctx, f"job:{body.job_id}")
    expected = shadow_event_id(body.decision_id, body.shadow_policy_hash_b64u)
    if ctx.event.event_id != expected:
        raise EventError(
            ReasonCode.SCHEMA_VALIDATION_FAILED,
            f"a call.shadowed event_id must be uuid5 of its decision and candidate ({expected})",
        )
    if body.decision == body.shadow_decision:
        raise EventError(
            ReasonCode.SCHEMA_VALIDATION_FAILED,
            "call.shadowed records a disagreement: decision and shadow_decision differ",
        )
    for decision, code in (
        (body.decision, body.reason_code),
        (body.shadow_decision, body.shadow_reason_code),
    ):
        if code not in _CODES or (decision == "allow") != (code == ReasonCode.OK):
            raise EventError(
                ReasonCode.SCHEMA_VALIDATION_FAILED,
                f"reason code {code!r} does not go with {decision!r} (OK for an allow only)",
            )


def _apply_call(
    state: LedgerState, ctx: EventContext, settings: RuleSettings, /
) -> list[ProjectionRow]:
    return []


def _summary(body: Mapping[str, Any], /) -> str:
    what = action_summary(body)
    return (
        f"{what} {body.get('decision')} ({body.get('reason_code')}) shadow"
        f" {body.get('shadow_decision')} ({body.get('shadow_reason_code')})"
        f" wpc={body.get('shadow_policy_hash_b64u')}"
    )


# fmt: off
_ENDING = Ending("shadows", "scope", "shadow", "ended", ReasonCode.SHADOW_NOT_ACTIVE,
                 "no shadow policy is active for {}")

#: event type, body, stream, roles, projections written; check, apply, timeline summary
SPECS: tuple[EventTypeSpec, ...] = (
    spec("policy.shadowed", PolicyShadowed, "shadow:<scope>", "policy-admin", "shadows",
         _check_shadowed, _apply_shadowed, "scope policy_hash_b64u reason"),
    spec("policy.shadow_ended", PolicyShadowEnded, "shadow:<scope>", "policy-admin", "shadows",
         _ENDING.check, _ENDING.apply, "scope reason"),
    spec("call.shadowed", CallShadowed, "job:<job_id>", "authorizer", "",
         _check_call, _apply_call, _summary),
)
# fmt: on
