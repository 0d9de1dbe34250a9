"""Policy simulation: would a candidate WPC have allowed the calls we actually made?

The recorded decisions (``call.authorized``, ``call.denied``) are re-decided by
:func:`ledger.authorize.decide_call` itself, with the candidate WPC read in
place of the job's WPC and everything else as it was at that moment: the
verified replay fold (:class:`ledger.replay.Replay`) runs over the ledger's
events in commit order, so each decision sees exactly the tokens, keys, jobs,
halts and revocations the ledger held when it was made.

A simulation cannot see the token's bytes (the ledger keeps only their hash),
so what only those bytes can tell is taken from the recorded decision: a token
that did not parse, whose signature did not verify or that was not the
ledger's token for its jti stays so; a nonce that was replayed stays replayed;
a decision made while the ledger was unreadable or stale stays so. Everything
the state and the policy decide is decided again.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ledger.attributes import attributes
from ledger.authorize import (
    Action,
    AuthorizeSettings,
    CallRequest,
    Decision,
    DecisionView,
    SeenToken,
    decide_call,
    replayed,
)
from ledger.envelope import format_timestamp
from ledger.errors import ReasonCode, TokenError
from ledger.replay import Replay, StoredEvent
from ledger.shadow import CallWindow, decided_at
from ledger.tokens import CLOCK_SKEW_SECONDS, DecodedToken
from ledger.wpc import WpcDocument

__all__ = [
    "DECISION_EVENT_TYPES",
    "CallSelector",
    "SimulatedCall",
    "Simulation",
    "SimulationSummary",
]

DECISION_EVENT_TYPES = frozenset({"call.authorized", "call.denied"})
_SETTINGS = AuthorizeSettings()
_CODES = {code.value: code for code in ReasonCode}
#: memoised decisions per state (the memo is dropped whenever the state changes)
_MEMO_SIZE = 100_000


@dataclass(frozen=True, slots=True)
class CallSelector(CallWindow):
    """Which recorded calls to simulate (all of them when nothing is set)."""

    sub: str | None = None

    def wants(self, body: Mapping[str, Any], decided: datetime, sub: str | None) -> bool:
        if not self.of_job(body):
            return False
        if self.sub is not None and sub != self.sub:
            return False
        return self.in_window(decided)


@dataclass(frozen=True, slots=True)
class SimulatedCall:
    """A recorded decision and the one the candidate WPC gives."""

    position: int | None
    recorded_allowed: bool
    recorded_code: str
    simulated: Decision

    @property
    def changed(self) -> bool:
        return self.recorded_allowed != self.simulated.allowed

    def to_dict(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "decision_id": self.simulated.decision_id,
            "job_id": self.simulated.job_id,
            "action": self.simulated.action.to_dict(),
            "decided_at": self.simulated.decided_at,
            "recorded": {
                "decision": "allow" if self.recorded_allowed else "deny",
                "reason_code": self.recorded_code,
            },
            "simulated": {
                "decision": self.simulated.decision,
                "reason_code": self.simulated.reason_code.value,
                "detail": self.simulated.detail,
            },
        }


def _changed(call: SimulatedCall) -> bool:
    """What :class:`Simulation` keeps by default: the calls whose outcome changed."""
    return call.changed


def _label(action: Action) -> str:
    return str(action.tool) if action.kind == "tool" else f"{action.provider}/{action.model}"


@dataclass
class SimulationSummary:
    simulated: int = 0
    unchanged: int = 0
    newly_denied: int = 0
    newly_allowed: int = 0
    #: per tool name or provider/model: how many became denied / allowed
    denied_by_action: Counter[str] = field(default_factory=Counter)
    allowed_by_action: Counter[str] = field(default_factory=Counter)

    def count(self, call: SimulatedCall) -> None:
        self.simulated += 1
        if not call.changed:
            self.unchanged += 1
            return
        action = call.simulated.action
        key = f"{action.kind}:{_label(action)}"
        if call.recorded_allowed:
            self.newly_denied += 1
            self.denied_by_action[key] += 1
        else:
            self.newly_allowed += 1
            self.allowed_by_action[key] += 1

    def to_dict(self) -> dict[str, Any]:
        return attributes(self, "simulated", "unchanged", "newly_denied", "newly_allowed") | {
            "newly_denied_by_action": dict(sorted(self.denied_by_action.items())),
            "newly_allowed_by_action": dict(sorted(self.allowed_by_action.items())),
        }


@dataclass(frozen=True)
class _RecordedView(DecisionView):
    """The state at the moment of a recorded decision, the candidate WPC in place
    of the job's, and the recorded facts about the token's bytes."""

    candidate: WpcDocument | None = None
    recorded_code: ReasonCode = ReasonCode.OK
    recorded_jti: str | None = None
    #: what :meth:`verified_token` gave per (jti, recorded code) since the state last changed
    seen: dict[tuple[str | None, ReasonCode], SeenToken] = field(default_factory=dict)

    def policy_document(self, policy_hash: str) -> WpcDocument | None:
        return self.candidate

    def verified_token(self, token: str) -> SeenToken:
        memo = self.seen.get((self.recorded_jti, self.recorded_code))
        if memo is not None:
            return memo
        seen = self._recorded_token()
        self.seen[(self.recorded_jti, self.recorded_code)] = seen
        return seen

    def _recorded_token(self) -> SeenToken:
        jti, code = self.recorded_jti, self.recorded_code
        if jti is None or code is ReasonCode.TOKEN_MALFORMED:
            raise TokenError(ReasonCode.TOKEN_MALFORMED, "the recorded token did not parse")
        record = self.state.tokens.get(jti)
        if record is None:
            # no such token on the ledger then: its issuer cannot be named either
            claims: dict[str, Any] = {"jti": jti}
            return SeenToken(DecodedToken({}, claims, b"", b"", ""), None, False, "")
        claims = {
            name: record[name]
            for name in ("jti", "sub", "aud", "scope", "iat", "exp", "mission_id")
            if record.get(name) is not None
        }
        if record.get("policy_hash_b64u") is not None:
            claims["policy_hash_b64u"] = record["policy_hash_b64u"]
        claims["token_scope_hash_b64u"] = record["token_scope_hash_b64u"]
        digest = "" if code is ReasonCode.TOKEN_UNKNOWN else str(record["token_sha256_b64u"])
        decoded = DecodedToken({"kid": record.get("kid")}, claims, b"", b"", digest)
        verified = code is not ReasonCode.TOKEN_SIGNATURE_INVALID
        return SeenToken(
            decoded, str(record["issuer_did"]), verified, str(record["token_scope_hash_b64u"])
        )


class Simulation:
    """Judge recorded decisions against the ledger's state at the moment each was made.

    Give the decisions first, in ``decided_at`` order (:meth:`expect`), then feed
    the ledger's events in commit order (:meth:`feed`) and call :meth:`finish`.
    Each decision is judged just before the fold applies the first event
    recorded after it, so a halt committed a moment after a call does not
    judge that call, whatever order the decision's own event was committed in.
    """

    def __init__(
        self,
        candidate: WpcDocument,
        selector: CallSelector | None = None,
        *,
        trust_root: str | None = None,
        keep: Callable[[SimulatedCall], bool] = _changed,
    ) -> None:
        self.candidate = candidate
        self.selector = selector or CallSelector()
        self.fold = Replay(trust_root=trust_root)
        self.summary = SimulationSummary()
        #: the simulated calls :attr:`keep` chose (by default those whose outcome changed)
        self.calls: list[SimulatedCall] = []
        self._keep = keep
        self._pending: deque[tuple[datetime, int | None, Mapping[str, Any]]] = deque()
        # both only depend on the state between two folded events: cleared at each
        self._seen: dict[tuple[str | None, ReasonCode], SeenToken] = {}
        self._views: dict[tuple[str | None, ReasonCode], _RecordedView] = {}
        self._actions: dict[tuple[tuple[str, Any], ...], Action] = {}
        #: (jti, recorded code, job, action, time class) -> the decision decide_call gave
        self._decisions: dict[
            tuple[str | None, ReasonCode, str, Action, tuple[bool, bool] | None], Decision
        ] = {}

    def expect(self, position: int | None, body: Mapping[str, Any]) -> None:
        """A recorded decision's body (``call.authorized``/``call.denied``), in
        ``decided_at`` order."""
        self._pending.append((decided_at(body), position, body))

    def feed(self, stored: StoredEvent) -> None:
        """Judge the decisions made before ``stored`` was recorded, then fold it."""
        if stored.recorded_at is not None:
            self._judge_before(stored.recorded_at)
        self.fold.feed(stored)
        self._seen, self._views, self._decisions = {}, {}, {}

    def finish(self) -> None:
        """Judge the decisions made after the last event."""
        if self.fold.broken is None:
            while self._pending:
                self._judge(*self._pending.popleft())

    def _judge_before(self, moment: datetime) -> None:
        while self._pending and self._pending[0][0] < moment and self.fold.broken is None:
            self._judge(*self._pending.popleft())

    def _judge(self, decided: datetime, position: int | None, body: Mapping[str, Any]) -> None:
        jti = body.get("token_jti")
        token = self.fold.state.tokens.get(jti) if isinstance(jti, str) else None
        if not self.selector.wants(body, decided, token.get("sub") if token else None):
            return
        code_text = str(body["reason_code"])
        recorded_code = _CODES[code_text]
        shape = tuple(body["action"].items())
        action = self._actions.get(shape)
        if action is None:
            action = self._actions[shape] = Action.from_dict(body["action"])
        now = decided.timestamp()
        recorded_jti = jti if isinstance(jti, str) else None
        job_id = str(body["job_id"])
        decision_id = str(body["decision_id"])
        when = _time_class(token, now)
        memo_key = (recorded_jti, recorded_code, job_id, action, when)
        memo = self._decisions.get(memo_key) if when is not None else None
        if memo is None:
            decision = self._decide(recorded_jti, recorded_code, job_id, action, now, decision_id)
            if when is not None:
                if len(self._decisions) >= _MEMO_SIZE:
                    self._decisions.clear()
                self._decisions[memo_key] = decision
        elif memo.allowed is (recorded_code is ReasonCode.OK) and self._keep is _changed:
            # an unchanged answer nobody keeps: only the summary counts it
            self.summary.simulated += 1
            self.summary.unchanged += 1
            return
        else:
            # the same state, token, job, action and side of the token's lifetime:
            # decide_call gives the same answer; only the id and the time are this call's
            decision = _again(memo, decision_id, format_timestamp(datetime.fromtimestamp(now, UTC)))
        if decision.allowed and recorded_code is ReasonCode.NONCE_REPLAYED:
            decision = replayed(decision)
        call = SimulatedCall(position, recorded_code is ReasonCode.OK, code_text, decision)
        self.summary.count(call)
        if self._keep(call):
            self.calls.append(call)

    def _decide(
        self,
        recorded_jti: str | None,
        recorded_code: ReasonCode,
        job_id: str,
        action: Action,
        now: float,
        decision_id: str,
    ) -> Decision:
        view = self._views.get((recorded_jti, recorded_code))
        if view is None:
            # synced "forever": a recorded decision was fresh unless it says STATE_STALE
            view = self._views[(recorded_jti, recorded_code)] = _RecordedView(
                self.fold.state,
                None if recorded_code is ReasonCode.STATE_STALE else math.inf,
                available=recorded_code is not ReasonCode.LEDGER_UNAVAILABLE,
                unavailable_detail="the ledger was unreadable when this call was decided",
                candidate=self.candidate,
                recorded_code=recorded_code,
                recorded_jti=recorded_jti,
                seen=self._seen,
            )
        request = CallRequest(f"recorded:{recorded_jti}", job_id, action, "recorded")
        return decide_call(view, request, now, _SETTINGS, decision_id=decision_id, shadow=False)


def _again(memo: Decision, decision_id: str, decided_at: str) -> Decision:
    """``memo`` as another call's decision (``dataclasses.replace``, a third of the cost)."""
    return Decision(
        decision_id,
        memo.allowed,
        memo.reason_code,
        memo.detail,
        memo.job_id,
        memo.action,
        decided_at,
        memo.token_jti,
        memo.token_scope_hash_b64u,
        memo.policy_hash_b64u,
        memo.halt_target,
        memo.halt_state,
        memo.seen_event_id,
        memo.shadows,
    )


def _time_class(token: Mapping[str, Any] | None, now: float) -> tuple[bool, bool] | None:
    """What :func:`decide_call` reads of ``now``: whether the token has expired
    (``now >= exp``) and whether it is not valid yet (``iat > now`` + the clock
    skew). ``None`` (not memoised) when the ledger's token record has no integer
    times: :func:`decide_call` then decides on the record alone.

    ``now`` is the only input of :func:`decide_call` that differs between two
    calls of one job, token and action while the state stands still, and these
    two comparisons are all it does with it (``tests/core/test_simulate_memo.py``
    pins this at the boundaries).
    """
    if token is None:
        # no token record: the decision stops before any check of the time
        return (False, False)
    iat, exp = token.get("iat"), token.get("exp")
    if type(iat) is not int or type(exp) is not int:
        return None
    return (now >= exp, iat > now + CLOCK_SKEW_SECONDS)
