"""Shadow policies in the authorize decision, and the summary of what they said.

A shadow candidate WPC (``policy.shadowed``, ``ledger/types/shadows.py``) is
judged by :func:`ledger.authorize.decide_call` itself, beside the job's WPC:
this module holds what that needs without the decision's own types (which
candidates cover a call, the verdict it gives), the body of the
``call.shadowed`` event of a disagreement, and :class:`ShadowSummary`, the fold
``claw-ledger simulate --shadow`` runs over the recorded disagreements.
Nothing here does I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from ledger.errors import ReasonCode
from ledger.state import LedgerState

if TYPE_CHECKING:
    from ledger.authorize import Decision

__all__ = [
    "CallWindow",
    "ShadowSelector",
    "ShadowSummary",
    "ShadowVerdict",
    "decided_at",
    "shadow_candidates",
    "shadowed_body",
]


@dataclass(frozen=True, slots=True)
class ShadowVerdict:
    """What a shadow candidate WPC would have answered for the same call."""

    scope: str
    policy_hash_b64u: str
    allowed: bool
    reason_code: ReasonCode
    detail: str

    @property
    def decision(self) -> Literal["allow", "deny"]:
        return "allow" if self.allowed else "deny"


def shadow_candidates(state: LedgerState, job_id: str, sub: str, wpc: str) -> list[tuple[str, str]]:
    """``(scope, candidate hash)`` of each active shadow covering a call of
    ``job_id`` by subject ``sub``, each candidate once (under its most specific
    scope); a candidate that is the job's own WPC ``wpc`` cannot disagree and is left out."""
    if not state.shadows:
        return []
    found: list[tuple[str, str]] = []
    for scope in (f"job:{job_id}", f"sub:{sub}", "*"):
        record = state.shadows.get(scope)
        if record is None or not record.get("active"):
            continue
        candidate = str(record["policy_hash_b64u"])
        if candidate != wpc and all(candidate != c for _, c in found):
            found.append((scope, candidate))
    return found


def shadowed_body(decision: Decision, shadow: ShadowVerdict) -> dict[str, Any]:
    """The body of the ``call.shadowed`` event of ``shadow`` on ``decision``."""
    return {
        "decision_id": decision.decision_id,
        "job_id": decision.job_id,
        "action": decision.action.to_dict(),
        "policy_hash_b64u": decision.policy_hash_b64u,
        "decision": decision.decision,
        "reason_code": decision.reason_code.value,
        "shadow_scope": shadow.scope,
        "shadow_policy_hash_b64u": shadow.policy_hash_b64u,
        "shadow_decision": shadow.decision,
        "shadow_reason_code": shadow.reason_code.value,
        "decided_at": decision.decided_at,
    }


def decided_at(body: Mapping[str, Any]) -> datetime:
    """When a recorded call was decided: its body's ``decided_at``."""
    return datetime.fromisoformat(str(body["decided_at"]).replace("Z", "+00:00"))


def _label(action: Mapping[str, Any]) -> str:
    if action.get("kind") == "tool":
        return f"tool:{action.get('tool')}"
    return f"model:{action.get('provider')}/{action.get('model')}"


@dataclass(frozen=True, slots=True)
class CallWindow:
    """Recorded calls of a job (any job when ``None``) decided in ``[since, until)``."""

    job_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def of_job(self, body: Mapping[str, Any]) -> bool:
        return self.job_id is None or body.get("job_id") == self.job_id

    def in_window(self, decided: datetime) -> bool:
        if self.since is not None and decided < self.since:
            return False
        return not (self.until is not None and decided >= self.until)


@dataclass(frozen=True, slots=True)
class ShadowSelector(CallWindow):
    """Which recorded disagreements to summarise (all when nothing is set)."""

    policy_hash_b64u: str | None = None

    def wants(self, body: Mapping[str, Any]) -> bool:
        if not self.of_job(body):
            return False
        if (
            self.policy_hash_b64u is not None
            and body.get("shadow_policy_hash_b64u") != self.policy_hash_b64u
        ):
            return False
        return self.in_window(decided_at(body))


@dataclass
class ShadowSummary:
    """The ``call.shadowed`` events seen: how many, which way, by action and candidate."""

    selector: ShadowSelector = field(default_factory=ShadowSelector)
    shadowed: int = 0
    #: allowed for real, denied by the candidate (what enforcing it would break)
    would_deny: int = 0
    #: denied for real, allowed by the candidate
    would_allow: int = 0
    denied_by_action: Counter[str] = field(default_factory=Counter)
    allowed_by_action: Counter[str] = field(default_factory=Counter)
    by_policy: Counter[str] = field(default_factory=Counter)
    by_reason: Counter[str] = field(default_factory=Counter)
    calls: list[dict[str, Any]] = field(default_factory=list)

    def add(self, position: int | None, body: Mapping[str, Any]) -> None:
        """One recorded ``call.shadowed`` body (ignored when the selector does not want it)."""
        if not self.selector.wants(body):
            return
        self.shadowed += 1
        label = _label(body["action"])
        if body["decision"] == "allow":
            self.would_deny += 1
            self.denied_by_action[label] += 1
        else:
            self.would_allow += 1
            self.allowed_by_action[label] += 1
        self.by_policy[str(body["shadow_policy_hash_b64u"])] += 1
        self.by_reason[f"{body['reason_code']} -> {body['shadow_reason_code']}"] += 1
        self.calls.append({"position": position, **body})

    def to_dict(self) -> dict[str, Any]:
        return {
            "shadowed": self.shadowed,
            "would_deny": self.would_deny,
            "would_allow": self.would_allow,
            "would_deny_by_action": dict(sorted(self.denied_by_action.items())),
            "would_allow_by_action": dict(sorted(self.allowed_by_action.items())),
            "by_shadow_policy": dict(sorted(self.by_policy.items())),
            "by_reason": dict(sorted(self.by_reason.items())),
        }
