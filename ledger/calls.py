"""What an authorize call is: the action, the request, and the decision with
everything its ``call.authorized`` / ``call.denied`` event records.

Frozen values, no I/O; :mod:`ledger.authorize` decides them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from ledger.errors import ReasonCode
from ledger.shadow import ShadowVerdict
from ledger.types._common import JOB_ID

__all__ = [
    "MAX_NONCE_LENGTH",
    "Action",
    "CallRequest",
    "Decision",
    "replayed",
    "unavailable",
    "unrecordable",
]

#: Longest nonce accepted (it is stored, keyed by token).
MAX_NONCE_LENGTH = 200
_JOB_ID_RE = re.compile(JOB_ID)
_NAME_RE = re.compile(r"^[^\s/]{1,200}$")
_TOOL_RE = re.compile(r"^\S{1,200}$")


@dataclass(frozen=True, slots=True)
class Action:
    """A tool by name, or a model call by provider and model."""

    kind: Literal["tool", "model"]
    tool: str | None = None
    provider: str | None = None
    model: str | None = None

    @classmethod
    def for_tool(cls, name: str) -> Action:
        if not _TOOL_RE.fullmatch(name):
            raise ValueError(f"tool name {name!r}: 1-200 characters, no whitespace")
        return cls("tool", tool=name)

    @classmethod
    def for_model(cls, provider: str, model: str) -> Action:
        for what, value in (("provider", provider), ("model", model)):
            if not _NAME_RE.fullmatch(value):
                raise ValueError(f"{what} {value!r}: 1-200 characters, no whitespace or '/'")
        return cls("model", provider=provider, model=model)

    @classmethod
    def parse(cls, text: str) -> Action:
        """``tool:NAME`` or ``model:PROVIDER/MODEL``."""
        kind, _, rest = text.partition(":")
        if kind == "tool":
            return cls.for_tool(rest)
        if kind == "model" and "/" in rest:
            provider, _, model = rest.partition("/")
            return cls.for_model(provider, model)
        raise ValueError(f"{text!r}: expected tool:NAME or model:PROVIDER/MODEL")

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> Action:
        """From the JSON form :meth:`to_dict` writes (a request body, an event body)."""
        kind = value.get("kind")
        if kind == "tool" and set(value) == {"kind", "tool"}:
            return cls.for_tool(str(value["tool"]))
        if kind == "model" and set(value) == {"kind", "provider", "model"}:
            return cls.for_model(str(value["provider"]), str(value["model"]))
        raise ValueError(
            'action must be {"kind":"tool","tool":NAME} or {"kind":"model","provider":P,"model":M}'
        )

    def to_dict(self) -> dict[str, str]:
        if self.kind == "tool":
            return {"kind": "tool", "tool": str(self.tool)}
        return {"kind": "model", "provider": str(self.provider), "model": str(self.model)}

    def __str__(self) -> str:
        return f"tool {self.tool}" if self.kind == "tool" else f"model {self.provider}/{self.model}"


@dataclass(frozen=True, slots=True)
class CallRequest:
    """What the runtime or gateway asks before a call: its token, job, action and nonce."""

    token: str
    job_id: str
    action: Action
    nonce: str

    def __post_init__(self) -> None:
        if not _JOB_ID_RE.fullmatch(self.job_id):
            raise ValueError(f"job id {self.job_id!r}: 1-300 characters, no whitespace")
        if not 0 < len(self.nonce) <= MAX_NONCE_LENGTH or self.nonce.strip() != self.nonce:
            raise ValueError(f"a nonce is 1-{MAX_NONCE_LENGTH} characters, no outer whitespace")
        if not self.token.strip():
            raise ValueError("the token is empty")


@dataclass(frozen=True, slots=True)
class Decision:
    """An answer, and everything its ``call.authorized``/``call.denied`` event records."""

    decision_id: str
    allowed: bool
    reason_code: ReasonCode
    detail: str
    job_id: str
    action: Action
    decided_at: str
    token_jti: str | None = None
    token_scope_hash_b64u: str | None = None
    policy_hash_b64u: str | None = None
    halt_target: str | None = None
    halt_state: Literal["committed", "seen"] | None = None
    #: the control event seen on the control lane, not yet committed, that denied (ADR 0025)
    seen_event_id: str | None = None
    #: the shadow candidates' verdicts on this call (never part of the answer)
    shadows: tuple[ShadowVerdict, ...] = ()

    @property
    def decision(self) -> Literal["allow", "deny"]:
        return "allow" if self.allowed else "deny"

    @property
    def event_type(self) -> str:
        return "call.authorized" if self.allowed else "call.denied"

    @property
    def stream(self) -> str:
        return f"job:{self.job_id}"

    def to_dict(self) -> dict[str, Any]:
        """The answer as ``authorize --json`` and ``POST /v1/authorize`` give it."""
        halt = (
            None
            if self.halt_target is None
            else {"target": self.halt_target, "state": self.halt_state}
        )
        return {
            "decision": self.decision,
            "reason_code": self.reason_code.value,
            "policy_hash_b64u": self.policy_hash_b64u,
            "halt": halt,
            "decision_id": self.decision_id,
            "detail": self.detail,
        } | ({} if self.seen_event_id is None else {"seen_event_id": self.seen_event_id})

    def event_body(self) -> dict[str, Any]:
        """The body of the decision's event (``ledger/types/decisions.py``)."""
        body: dict[str, Any] = {
            "decision_id": self.decision_id,
            "job_id": self.job_id,
            "action": self.action.to_dict(),
            "token_jti": self.token_jti,
            "token_scope_hash_b64u": self.token_scope_hash_b64u,
            "policy_hash_b64u": self.policy_hash_b64u,
            "halt_target": self.halt_target,
            "halt_state": self.halt_state,
            "reason_code": self.reason_code.value,
            "decided_at": self.decided_at,
        }
        if self.seen_event_id is not None:
            # absent, not null, otherwise: decisions before ADR 0025 keep their exact bytes
            body["seen_event_id"] = self.seen_event_id
        return body

    def disagreements(self) -> tuple[ShadowVerdict, ...]:
        """The shadow verdicts whose allow/deny differs from this answer."""
        return tuple(s for s in self.shadows if s.allowed != self.allowed)


def _turned(decision: Decision, code: ReasonCode, detail: str) -> Decision:
    # a candidate that allowed the call needed the same nonce: it is turned alike
    shadows = tuple(
        replace(s, allowed=False, reason_code=code, detail=detail) if s.allowed else s
        for s in decision.shadows
    )
    return replace(decision, allowed=False, reason_code=code, detail=detail, shadows=shadows)


def replayed(decision: Decision) -> Decision:
    """An allow turned into the deny of a nonce the store had seen for this token."""
    return _turned(
        decision, ReasonCode.NONCE_REPLAYED, f"nonce already used with token {decision.token_jti}"
    )


def unavailable(decision: Decision, detail: str) -> Decision:
    """An allow turned into a deny because the nonce store could not be reached."""
    return _turned(decision, ReasonCode.LEDGER_UNAVAILABLE, detail)


def unrecordable(decision: Decision, code: ReasonCode, detail: str) -> Decision:
    """An allow turned into a deny because the ledger would refuse its record (``code``)."""
    return _turned(decision, code, detail)
