"""Authorize decisions: ``call.authorized`` and ``call.denied``.

Every answer of the authorize service (``ledger/authorize.py``) is one of
these events, signed by its ``authorizer`` key, on the job's stream: the
positive and the negative proof of what ran and what was refused. They change
no control state: the rule checks the event's shape and projects it into
``decisions`` (keyed by ``decision_id``). The event id *is* the decision id,
so a decision re-sent after a failure is a duplicate, never a second row.
A denial is recorded for jobs the ledger does not know too, so the rule
reads no state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ledger.encoding import CANONICAL_UUID_PATTERN
from ledger.errors import EventError, ReasonCode
from ledger.registry import EventBody, EventTypeSpec, RuleSettings
from ledger.state import EventContext, LedgerState, ProjectionRow
from ledger.types._common import JOB_ID, JTI, action_summary, body_of, require_stream, row, spec

__all__ = ["SPECS", "CallAction", "CallAuthorized", "CallDenied"]

_UUID = f"^{CANONICAL_UUID_PATTERN}$"
_NAME = r"^\S{1,200}$"
_HASH = r"^[A-Za-z0-9_-]{43}$"
_RFC3339 = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$"
_CODES = frozenset(code.value for code in ReasonCode)


class CallAction(BaseModel):
    """``{"kind": "tool", "tool": NAME}`` or ``{"kind": "model", "provider": P, "model": M}``."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)
    kind: Literal["tool", "model"]
    tool: str | None = Field(default=None, pattern=_NAME)
    provider: str | None = Field(default=None, pattern=r"^[^\s/]{1,200}$")
    model: str | None = Field(default=None, pattern=r"^[^\s/]{1,200}$")

    @model_validator(mode="after")
    def _one_shape(self) -> CallAction:
        if self.kind == "tool" and (self.tool is None or self.provider or self.model):
            raise ValueError("a tool action names the tool only")
        if self.kind == "model" and (self.tool or self.provider is None or self.model is None):
            raise ValueError("a model action names the provider and the model only")
        return self

    def to_dict(self) -> dict[str, str]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class _Decision(EventBody):
    decision_id: str = Field(pattern=_UUID, description="= the event id")
    job_id: str = Field(pattern=JOB_ID)
    action: CallAction = Field(description="`{kind, tool}` or `{kind, provider, model}`")
    token_jti: str | None = Field(default=..., pattern=JTI)
    token_scope_hash_b64u: str | None = Field(default=..., pattern=_HASH)
    policy_hash_b64u: str | None = Field(default=..., pattern=_HASH)
    halt_target: str | None = Field(default=..., pattern=r"^(\*|sub:\S{1,300}|job:\S{1,300})$")
    halt_state: Literal["committed", "seen"] | None = Field(default=...)
    reason_code: str = Field(max_length=100)
    decided_at: str = Field(pattern=_RFC3339)
    # ADR 0025; optional so that decisions recorded before it still validate
    seen_event_id: str | None = Field(
        default=None, pattern=_UUID, description="the uncommitted control event that denied"
    )


class CallAuthorized(_Decision):
    """The authorize service allowed a call (a tool or a model) of a job."""


class CallDenied(_Decision):
    """The authorize service refused a call of a job, with the reason."""


def _check(state: LedgerState, ctx: EventContext, settings: RuleSettings, /) -> None:
    body = body_of(ctx, _Decision)
    require_stream(ctx, f"job:{body.job_id}")
    if ctx.event.event_id != body.decision_id:
        raise EventError(
            ReasonCode.SCHEMA_VALIDATION_FAILED,
            f"a decision's event_id must be its decision_id ({body.decision_id})",
        )
    if isinstance(body, CallAuthorized):
        if body.reason_code != ReasonCode.OK or body.halt_target is not None:
            raise EventError(
                ReasonCode.SCHEMA_VALIDATION_FAILED,
                "call.authorized has reason_code OK and no halt_target",
            )
    elif body.reason_code not in _CODES or body.reason_code == ReasonCode.OK:
        raise EventError(
            ReasonCode.SCHEMA_VALIDATION_FAILED,
            f"call.denied needs a reason code other than OK, not {body.reason_code!r}",
        )
    if body.seen_event_id is not None and isinstance(body, CallAuthorized):
        raise EventError(
            ReasonCode.SCHEMA_VALIDATION_FAILED,
            "call.authorized has no seen_event_id: nothing seen ever allows",
        )
    if body.halt_state == "seen" and body.seen_event_id is None:
        raise EventError(
            ReasonCode.SCHEMA_VALIDATION_FAILED, "a seen halt names its event (seen_event_id)"
        )
    if (body.halt_target is None) != (body.halt_state is None):
        raise EventError(
            ReasonCode.SCHEMA_VALIDATION_FAILED, "halt_target and halt_state go together"
        )


def _apply(state: LedgerState, ctx: EventContext, settings: RuleSettings, /) -> list[ProjectionRow]:
    body = body_of(ctx, _Decision)
    record: dict[str, Any] = {
        "decision_id": body.decision_id,
        "event_id": ctx.event.event_id,
        "job_id": body.job_id,
        "allowed": isinstance(body, CallAuthorized),
        "reason_code": body.reason_code,
        "action": body.action.to_dict(),
        "token_jti": body.token_jti,
        "token_scope_hash_b64u": body.token_scope_hash_b64u,
        "policy_hash_b64u": body.policy_hash_b64u,
        "halt_target": body.halt_target,
        "halt_state": body.halt_state,
        "seen_event_id": body.seen_event_id,
        "decided_at": body.decided_at,
        "signer_did": ctx.signer,
    }
    return [row("decisions", "decision_id", record)]


def _summary(body: Mapping[str, Any], /) -> str:
    what = action_summary(body)
    text = f"{what} {body.get('reason_code')} jti={body.get('token_jti')}"
    text += f" halt={body['halt_target']}" if body.get("halt_target") else ""
    return text + (f" seen={body['seen_event_id']}" if body.get("seen_event_id") else "")


#: event type, body, stream, roles, projections written; check, apply, timeline summary
# fmt: off
SPECS: tuple[EventTypeSpec, ...] = (
    spec("call.authorized", CallAuthorized, "job:<job_id>", "authorizer", "decisions",
         _check, _apply, _summary),
    spec("call.denied", CallDenied, "job:<job_id>", "authorizer", "decisions",
         _check, _apply, _summary),
)
# fmt: on
