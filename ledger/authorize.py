"""The authorize decision: may this call (a tool, a model) run now for this job?

:func:`decide_call` is the one implementation, a pure function of a
:class:`DecisionView` (the control state and how fresh it is), a
:class:`CallRequest`, the time and :class:`AuthorizeSettings`. The authorize
service, its CLI and a policy simulation all call it; none repeats a check.

The checks run in this order and the first failure decides the reason code
(docs/formats.md §12, "Authorize decisions"):

0. the state is readable (``LEDGER_UNAVAILABLE``) and follows the ledger
   within the bound (``STATE_STALE``);
1. the token parses (``TOKEN_MALFORMED``), its ``kid`` names a registered key
   whose signature verifies (``TOKEN_SIGNATURE_INVALID``) and that key is an
   active issuer (``TOKEN_ISSUER_NOT_ALLOWED``);
2. expiry (``TOKEN_EXPIRED``, ``TOKEN_BAD_LIFETIME`` when not valid yet);
3. revocation: the ledger recorded exactly this token (``TOKEN_UNKNOWN``) and
   it is not revoked (``TOKEN_REVOKED``);
4. job binding: the job exists (``JOB_UNKNOWN``), the token is bound to it
   (``JOB_BINDING_MISMATCH``) and it is running (``RUN_NOT_STARTED``,
   ``RUN_ALREADY_COMPLETED``);
5. policy pin = the job's WPC (``POLICY_PIN_MISMATCH``), and that WPC is
   active (``WPC_UNKNOWN``, ``WPC_REVOKED``, ``WPC_SUPERSEDED``);
6. scope hash: the token's recomputes from its claims and is the URM's
   (``TOKEN_SCOPE_HASH_MISMATCH``);
7. the WPC's rules for the action (``TOOL_NOT_ALLOWED``, ``MODEL_NOT_ALLOWED``);
8. no active halt covers the job, the token's subject or everything
   (``AGENT_HALTED``).

Deny early (``ledger/seen_controls.py``, ADR 0025): after the committed check
of steps 1, 3, 5 and 8, a restricting control event the service has *seen* on
the control lane but the ledger has not committed yet denies alike: a revoked
issuer key (step 1), a revoked token (step 3), a revoked WPC (step 5), a halt
(step 8, ``halt_state`` ``seen``). The decision names that event
(``seen_event_id``). Nothing seen ever allows.

Shadow policies (``ledger/types/shadows.py``, ADR 0023): for a call that
reaches step 7, each active shadow candidate covering the job, the token's
subject or everything is judged at step 7 by the same rules in place of the
job's WPC, and step 8 applies to it as to the real answer. The verdicts ride
along in :attr:`Decision.shadows`; they never change the real answer. A call
denied before step 7 is denied alike under any candidate (those steps do not
read the WPC's rules), so it carries no shadow verdict.

An allow also needs a decision the ledger will record: the service's own key
registered, not revoked (committed or seen) and holding a role that may
publish decisions. Otherwise the ledger would quarantine the record and the
call would run without its signed trace, so the service turns the allow into
a deny with the code the ledger would give the record (``UNKNOWN_SIGNER``,
``SIGNER_REVOKED``, ``ROLE_NOT_ALLOWED``; :func:`recorder_refusal`).

The last check, the nonce never seen before for this token
(``NONCE_REPLAYED``), needs a shared store: the caller makes it, only for a
call everything else allowed, and turns the decision with :func:`replayed`.
Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from ledger.calls import Action, CallRequest, Decision, replayed, unavailable, unrecordable
from ledger.crypto import kid_for_public_key, public_key_from_did
from ledger.encoding import B64U_SHA256_RE
from ledger.envelope import format_epoch
from ledger.errors import ReasonCode, RejectedError, TokenError
from ledger.events import new_event_id
from ledger.javascript import js_trim
from ledger.roles import Role
from ledger.seen_controls import SeenControls
from ledger.shadow import ShadowVerdict, shadow_candidates
from ledger.state import LedgerState
from ledger.tokens import CLOCK_SKEW_SECONDS, JTI_RE, DecodedToken, decode_token
from ledger.tokens import token_scope_hash_b64u as scope_hash_of
from ledger.types._common import REVOKED, usable_policy
from ledger.verify import signer_refusal
from ledger.wpc import AllowDeny, WpcDocument, validate_wpc

__all__ = [
    "DEFAULT_MAX_STALENESS_SECONDS",
    "Action",
    "AuthorizeSettings",
    "CallRequest",
    "Decision",
    "DecisionView",
    "ShadowVerdict",
    "action_verdict",
    "decide_call",
    "recorder_refusal",
    "replayed",
    "unavailable",
    "unrecordable",
]

#: How far the decision state may lag the ledger before every answer is a deny.
DEFAULT_MAX_STALENESS_SECONDS = 5.0
#: verified tokens remembered per view; the view is rebuilt on every state change
_TOKEN_MEMO_SIZE = 10_000

JOB_APPROVED = "approved"
JOB_COMPLETED = "completed"


@dataclass(frozen=True, slots=True)
class AuthorizeSettings:
    """What an operator may tune about the decision."""

    #: older than this, the state (the processor's heartbeat it was synced to) is stale
    max_staleness_seconds: float = DEFAULT_MAX_STALENESS_SECONDS

    def __post_init__(self) -> None:
        if not 0 < self.max_staleness_seconds <= 3600:
            raise ValueError("max_staleness_seconds must be in (0, 3600]")


def _index_kids(dids: Iterable[str], into: dict[str, tuple[str, ...]]) -> None:
    """Add each DID under the ``kid`` its key has (the token header names it)."""
    for did in dids:
        try:
            kid = kid_for_public_key(bytes(public_key_from_did(did)))
        except RejectedError:
            continue
        if did not in into.get(kid, ()):
            into[kid] = (*into.get(kid, ()), did)


@dataclass(frozen=True, slots=True)
class SeenToken:
    """A token decoded; the DID of the registered key its ``kid`` names (the
    one whose signature verifies, ``None`` when no key has that kid); whether
    the signature verified; the scope hash its claims give (or why none)."""

    decoded: DecodedToken
    signer: str | None
    verified: bool
    scope_hash: str | TokenError


@dataclass(frozen=True)
class DecisionView:
    """The control state a decision reads, and how far it can be trusted.

    ``synced_at`` (epoch seconds) is the moment up to which the state holds
    everything the ledger had committed (the processor heartbeat it was read
    after); ``None`` when unknown. ``available`` is false while the state
    cannot be read. The memo fields are caches of pure computations.
    """

    state: LedgerState
    synced_at: float | None
    available: bool = True
    unavailable_detail: str = ""
    kids: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: restricting control events seen before commit (deny early; shared, not copied)
    seen_controls: SeenControls = field(default_factory=SeenControls)
    _policies: dict[str, WpcDocument | None] = field(default_factory=dict, repr=False)
    _tokens: dict[str, SeenToken] = field(default_factory=dict, repr=False)
    #: (job, subject, job's WPC) -> the shadow candidates covering it; reset with the state
    _shadow_scopes: dict[tuple[str, str, str], list[tuple[str, str]]] = field(
        default_factory=dict, repr=False
    )
    #: (scope, candidate, action) -> the candidate's step-7 verdict (a hash names one content)
    _shadow_rules: dict[tuple[str, str, Action], ShadowVerdict] = field(
        default_factory=dict, repr=False
    )

    @classmethod
    def of(cls, state: LedgerState, synced_at: float | None, **kw: Any) -> DecisionView:
        """A view of ``state`` (its kid index computed once)."""
        kids: dict[str, tuple[str, ...]] = {}
        _index_kids(state.keys, kids)
        return cls(state, synced_at, kids=kids, **kw)

    def updated(self, state: LedgerState, changed_keys: Iterable[str]) -> DecisionView:
        """A view of ``state`` after rows changed; ``changed_keys`` are the DIDs of
        the key rows among them (keys are never deleted, only revoked)."""
        changed = list(changed_keys)
        kids = dict(self.kids)
        _index_kids(changed, kids)
        # the token memo names signers by the kid index: start it afresh when keys change
        tokens = {} if changed else self._tokens
        return replace(self, state=state, kids=kids, _tokens=tokens, _shadow_scopes={})

    def refreshed(self, synced_at: float | None) -> DecisionView:
        """The same state, synced up to a newer heartbeat (the caches are kept)."""
        return replace(self, synced_at=synced_at, available=True, unavailable_detail="")

    def failed(self, detail: str) -> DecisionView:
        return replace(self, available=False, unavailable_detail=detail)

    def policy_document(self, policy_hash: str) -> WpcDocument | None:
        if policy_hash in self._policies:
            return self._policies[policy_hash]
        record = self.state.policies.get(policy_hash)
        if record is None:
            return None
        envelope = record.get("wpc_envelope") or {}
        try:
            document: WpcDocument | None = validate_wpc(envelope.get("payload"))
        except RejectedError:
            document = None
        # a hash names one content forever: the parsed document never goes stale
        self._policies[policy_hash] = document
        return document

    def shadow_verdicts(
        self, job_id: str, sub: str, wpc: str, action: Action, halted: _Deny | None
    ) -> tuple[ShadowVerdict, ...]:
        """Step 7 under each active shadow candidate covering the call, then the halt."""
        key = (job_id, sub, wpc)
        candidates = self._shadow_scopes.get(key)
        if candidates is None:
            if len(self._shadow_scopes) >= _TOKEN_MEMO_SIZE:
                self._shadow_scopes.clear()
            candidates = self._shadow_scopes[key] = shadow_candidates(self.state, *key)
        if not candidates:
            return ()
        verdicts = []
        for scope, candidate in candidates:
            rule_key = (scope, candidate, action)
            verdict = self._shadow_rules.get(rule_key)
            if verdict is None:
                deny = _rules(self.policy_document(candidate), candidate, action)
                verdict = (
                    ShadowVerdict(scope, candidate, True, ReasonCode.OK, "allowed")
                    if deny is None
                    else ShadowVerdict(scope, candidate, False, deny.code, deny.detail)
                )
                if len(self._shadow_rules) >= _TOKEN_MEMO_SIZE:
                    self._shadow_rules.clear()
                self._shadow_rules[rule_key] = verdict
            if verdict.allowed and halted is not None:
                verdict = ShadowVerdict(scope, candidate, False, halted.code, halted.detail)
            verdicts.append(verdict)
        return tuple(verdicts)

    def verified_token(self, token: str) -> SeenToken:
        """What a token's bytes alone say, computed once per view (``TOKEN_MALFORMED``)."""
        memo = self._tokens.get(token)
        if memo is not None:
            return memo
        decoded = decode_token(token)
        signer: str | None = None
        verified = False
        for did in self.kids.get(decoded.kid, ()):
            signer = did
            try:
                public_key_from_did(did).verify(decoded.signing_input, decoded.signature)
            except Exception:  # nacl BadSignatureError / ValueError
                continue
            verified = True
            break
        try:
            scope_hash: str | TokenError = scope_hash_of(decoded.claims)
        except TokenError as exc:
            scope_hash = exc
        if len(self._tokens) >= _TOKEN_MEMO_SIZE:
            self._tokens.clear()
        seen = self._tokens[token] = SeenToken(decoded, signer, verified, scope_hash)
        return seen


class _Deny(Exception):
    def __init__(self, code: ReasonCode, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def _allowed_by(section: AllowDeny, names: tuple[str, ...]) -> bool | None:
    """True/False when the section decides for any of ``names``; None when silent."""
    if any(n in (section.deny or ()) for n in names):
        return False
    if any(n in (section.allow or ()) for n in names):
        return True
    if section.default is not None:
        return section.default == "allow"
    if section.allow is not None:
        return False  # an allow list names everything allowed
    return None


def _rules(document: WpcDocument | None, policy_hash: str, action: Action) -> _Deny | None:
    """Step 7 for one WPC: the deny its rules give ``action``, or ``None``."""
    try:
        if document is None:
            raise _Deny(
                ReasonCode.WPC_INVALID, f"WPC {policy_hash} cannot be read from the registry"
            )
        if action.kind == "tool":
            _check_tool(document, str(action.tool))
        else:
            _check_model(document, str(action.provider), str(action.model))
    except _Deny as deny:
        return deny
    return None


def _check_tool(document: WpcDocument, tool: str) -> None:
    if document.halt_mode:
        raise _Deny(ReasonCode.TOOL_NOT_ALLOWED, "the job's WPC is a halt-mode WPC: no tools")
    sections = [document.tools, document.enforcement.tools if document.enforcement else None]
    verdicts = [_allowed_by(s, (tool,)) for s in sections if s is not None]
    if False in verdicts:
        raise _Deny(ReasonCode.TOOL_NOT_ALLOWED, f"the job's WPC denies tool {tool!r}")
    if True not in verdicts:
        raise _Deny(ReasonCode.TOOL_NOT_ALLOWED, f"the job's WPC does not allow tool {tool!r}")


def _check_model(document: WpcDocument, provider: str, model: str) -> None:
    """Fail closed: a model call needs a rule that allows it and none that denies it."""
    if document.halt_mode:
        raise _Deny(ReasonCode.MODEL_NOT_ALLOWED, "the job's WPC is a halt-mode WPC: no models")
    verdicts: list[bool | None] = []
    calls = document.model_calls
    if calls is not None:
        if provider in (calls.denied_providers or ()):
            verdicts.append(False)
        elif calls.allowed_providers is not None:
            verdicts.append(provider in calls.allowed_providers)
    routing = document.model_routing
    if routing is not None and routing.provider is not None:
        verdicts.append(routing.provider == provider)
    egress = document.enforcement.model_egress if document.enforcement else None
    if egress is not None:
        verdicts.append(_allowed_by(egress, (provider, f"{provider}/{model}")))
    if False in verdicts:
        raise _Deny(ReasonCode.MODEL_NOT_ALLOWED, f"the job's WPC denies model {provider}/{model}")
    if True not in verdicts:
        raise _Deny(
            ReasonCode.MODEL_NOT_ALLOWED,
            f"the job's WPC has no rule that allows model {provider}/{model}",
        )


def _halt(state: LedgerState, job_id: str, sub: str, action: Action) -> dict[str, Any] | None:
    flag = "deny_tools" if action.kind == "tool" else "deny_model_egress"
    for target in ("*", f"job:{job_id}", f"sub:{sub}"):
        record = state.halts.get(target)
        if record is not None and record.get("active") and record.get(flag, True):
            return record
    return None


class _Facts:
    """What the decision learns as it goes, for the event of any outcome."""

    __slots__ = ("halt", "jti", "policy", "scope_hash", "seen", "shadows")

    def __init__(self) -> None:
        self.jti: str | None = None
        self.scope_hash: str | None = None
        self.policy: str | None = None
        self.halt: str | None = None
        #: the seen (uncommitted) control event the denial rests on
        self.seen: str | None = None
        self.shadows: tuple[ShadowVerdict, ...] = ()


def _seen_deny(facts: _Facts, code: ReasonCode, what: str, event_id: str) -> _Deny:
    facts.seen = event_id
    return _Deny(code, f"{what} (event {event_id} seen on the control lane, not yet committed)")


def _checks(
    view: DecisionView,
    request: CallRequest,
    now: float,
    settings: AuthorizeSettings,
    facts: _Facts,
    shadow: bool,
) -> None:
    state = view.state
    # the token is read first, only so that a denial for the state names it
    decoded: DecodedToken | None = None
    signer: str | None = None
    verified = False
    malformed: TokenError | None = None
    try:
        seen = view.verified_token(request.token)
    except TokenError as exc:
        malformed = exc
    else:
        decoded, signer, verified = seen.decoded, seen.signer, seen.verified
        jti = decoded.claims.get("jti")
        facts.jti = jti if isinstance(jti, str) and JTI_RE.fullmatch(jti) else None
        claimed = decoded.claims.get("token_scope_hash_b64u")
        facts.scope_hash = (
            claimed if isinstance(claimed, str) and B64U_SHA256_RE.fullmatch(claimed) else None
        )
    # 0. the state
    if not view.available:
        raise _Deny(ReasonCode.LEDGER_UNAVAILABLE, view.unavailable_detail or "state unreadable")
    if view.synced_at is None:
        raise _Deny(ReasonCode.STATE_STALE, "no processor heartbeat: is the processor running?")
    lag = now - view.synced_at
    if lag > settings.max_staleness_seconds:
        raise _Deny(
            ReasonCode.STATE_STALE,
            f"the state follows the ledger {lag:.1f}s behind (bound"
            f" {settings.max_staleness_seconds:g}s): is the processor running?",
        )
    # 1. signature and issuer role
    if decoded is None:
        assert malformed is not None
        raise _Deny(malformed.code, malformed.detail)
    if signer is None:
        raise _Deny(
            ReasonCode.TOKEN_ISSUER_NOT_ALLOWED, f"kid {decoded.kid!r} names no registered key"
        )
    if not verified:
        raise _Deny(ReasonCode.TOKEN_SIGNATURE_INVALID, "token signature does not verify")
    issuer = state.keys.get(signer)
    if issuer is None or issuer.revoked or Role.ISSUER not in issuer.roles:
        why = "is revoked" if issuer is not None and issuer.revoked else "holds no issuer role"
        raise _Deny(ReasonCode.TOKEN_ISSUER_NOT_ALLOWED, f"the token's signer {signer} {why}")
    seen_control = view.seen_controls
    if (early := seen_control.key(signer)) is not None:
        raise _seen_deny(
            facts,
            ReasonCode.TOKEN_ISSUER_NOT_ALLOWED,
            f"the token's signer {signer} is revoked",
            early.event_id,
        )
    if facts.jti is None:
        raise _Deny(ReasonCode.TOKEN_MALFORMED, "jti is missing or not allowed")
    jti = facts.jti
    claims = decoded.claims
    # 2. expiry
    iat, exp = claims.get("iat"), claims.get("exp")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (iat, exp)):
        raise _Deny(ReasonCode.TOKEN_MALFORMED, "iat and exp must be integers")
    assert isinstance(iat, int) and isinstance(exp, int)
    if now >= exp:
        raise _Deny(ReasonCode.TOKEN_EXPIRED, f"token {jti} expired at {exp}")
    if iat > now + CLOCK_SKEW_SECONDS:
        raise _Deny(ReasonCode.TOKEN_BAD_LIFETIME, f"token {jti} is not valid yet")
    # 3. revocation (and the ledger holds this very token)
    record = state.tokens.get(jti)
    if record is None or record.get("token_sha256_b64u") != decoded.token_sha256_b64u:
        raise _Deny(ReasonCode.TOKEN_UNKNOWN, f"the ledger recorded no such token {jti}")
    if record["status"] == REVOKED:
        by_halt = record.get("revoked_by_halt")
        if by_halt:
            # the decision names the kill switch that revoked the token (negative proof)
            facts.halt = next(
                (t for t, h in state.halts.items() if h.get("halted_event_id") == by_halt), None
            )
        raise _Deny(
            ReasonCode.TOKEN_REVOKED, f"token {jti} was revoked: {record['revoked_reason']}"
        )
    if (early := seen_control.token(jti)) is not None:
        raise _seen_deny(facts, ReasonCode.TOKEN_REVOKED, f"token {jti} is revoked", early.event_id)
    # 4. job binding
    job = state.jobs.get(request.job_id)
    if job is None:
        raise _Deny(ReasonCode.JOB_UNKNOWN, f"no approved job {request.job_id!r} on the ledger")
    wpc = str(job["wpc_hash_b64u"])
    facts.policy = wpc
    bound = claims.get("mission_id")
    if bound != request.job_id:
        bound_to = f"job {bound!r}" if bound else "no job"
        raise _Deny(
            ReasonCode.JOB_BINDING_MISMATCH,
            f"token {jti} is bound to {bound_to}, not to job {request.job_id!r}",
        )
    if job["status"] == JOB_APPROVED:
        raise _Deny(ReasonCode.RUN_NOT_STARTED, f"job {request.job_id} has not started")
    if job["status"] == JOB_COMPLETED:
        raise _Deny(ReasonCode.RUN_ALREADY_COMPLETED, f"job {request.job_id} is completed")
    # 5. policy pin = the job's WPC = an active WPC
    pin = claims.get("policy_hash_b64u")
    if pin is None and job.get("policy_hash_pinning"):
        raise _Deny(
            ReasonCode.POLICY_PIN_MISMATCH, f"the job requires a pinned token; {jti} has no pin"
        )
    if pin is not None and pin != wpc:
        raise _Deny(
            ReasonCode.POLICY_PIN_MISMATCH, f"token {jti} is pinned to WPC {pin}, the job to {wpc}"
        )
    try:
        usable_policy(state, wpc)
    except RejectedError as exc:
        raise _Deny(exc.code, exc.detail) from None
    if (early := seen_control.policy(wpc)) is not None:
        raise _seen_deny(facts, ReasonCode.WPC_REVOKED, f"WPC {wpc} is revoked", early.event_id)
    # 6. scope hash
    computed = seen.scope_hash
    if isinstance(computed, TokenError):
        raise _Deny(computed.code, computed.detail)
    claimed = claims.get("token_scope_hash_b64u")
    if claimed != computed or computed != job.get("cst_scope_hash"):
        raise _Deny(
            ReasonCode.TOKEN_SCOPE_HASH_MISMATCH,
            f"token scope hash {claimed} is not its claims' ({computed}) or the"
            f" URM's ({job.get('cst_scope_hash')})",
        )
    # 7. the WPC's rules for the action (and each shadow candidate's, beside them)
    action = request.action
    sub = js_trim(str(claims.get("sub", "")))  # as the scope hash trims it
    denied = _rules(view.policy_document(wpc), wpc, action)
    # 8. halts
    halt = _halt(state, request.job_id, sub, action)
    halted: _Deny | None = None
    seen_halt = None
    if halt is not None:
        halted = _Deny(
            ReasonCode.AGENT_HALTED,
            f"halt {halt['target']!r} is active ({halt.get('reason', '')})",
        )
    elif (seen_halt := seen_control.halt(request.job_id, sub, action.kind)) is not None:
        halted = _Deny(
            ReasonCode.AGENT_HALTED,
            f"halt {seen_halt.subject!r} (event {seen_halt.event_id}) seen on the control"
            " lane, not yet committed",
        )
    if shadow and state.shadows:
        facts.shadows = view.shadow_verdicts(request.job_id, sub, wpc, action, halted)
    if denied is not None:
        raise denied
    if halt is not None and halted is not None:
        facts.halt = str(halt["target"])
        raise halted
    if seen_halt is not None and halted is not None:
        facts.halt = seen_halt.subject
        facts.seen = seen_halt.event_id
        raise halted


def decide_call(
    view: DecisionView,
    request: CallRequest,
    now: float,
    settings: AuthorizeSettings,
    *,
    decision_id: str | None = None,
    shadow: bool = True,
) -> Decision:
    """Allow or deny ``request`` at ``now`` (epoch seconds); see the module docstring.

    An allow still needs the caller's nonce check (:func:`replayed`). With
    ``shadow`` false the active shadow policies are not judged.
    """
    facts = _Facts()
    code, detail = ReasonCode.OK, "allowed"
    try:
        _checks(view, request, now, settings, facts, shadow)
    except _Deny as deny:
        code, detail = deny.code, deny.detail
    return Decision(
        decision_id=decision_id or new_event_id(),
        allowed=code is ReasonCode.OK,
        reason_code=code,
        detail=detail,
        job_id=request.job_id,
        action=request.action,
        decided_at=format_epoch(now),
        token_jti=facts.jti,
        token_scope_hash_b64u=facts.scope_hash,
        policy_hash_b64u=facts.policy,
        halt_target=facts.halt,
        halt_state=None if facts.halt is None else "seen" if facts.seen else "committed",
        seen_event_id=facts.seen,
        shadows=facts.shadows,
    )


#: what tells an operator how to give the service a key the ledger accepts
_REGISTER_HINT = (
    "register it with the authorizer role:"
    " claw-ledger keys register NAME --role authorizer --key admin"
)


def recorder_refusal(view: DecisionView, did: str) -> tuple[ReasonCode, str] | None:
    """Why the ledger would refuse a decision signed by ``did`` (the processor's own
    signer check, :func:`ledger.verify.signer_refusal`, against this view's keys,
    and the revocations seen early), or ``None`` when it would record it."""
    if view.seen_controls.key(did) is not None:
        return (
            ReasonCode.SIGNER_REVOKED,
            f"the authorize key {did} is revoked: the ledger would quarantine this"
            " decision's record; give the service a new key",
        )
    refusal = signer_refusal(view.state, did, "call.authorized")
    if refusal is None:
        return None
    fix = (
        "give the service a new key"
        if refusal.code is ReasonCode.SIGNER_REVOKED
        else _REGISTER_HINT
    )
    return (
        refusal.code,
        f"the authorize key {did}: {refusal.detail}, so the ledger would quarantine this"
        f" decision's record; {fix}",
    )


def action_verdict(document: WpcDocument, action: Action) -> tuple[bool, ReasonCode, str]:
    """What step 7 of :func:`decide_call` says of ``action`` under ``document`` alone:
    ``(allowed, reason code, detail)``. Policy diffs and simulations ask this, so
    they cannot disagree with enforcement."""
    deny = _rules(document, "", action)
    if deny is not None:
        return False, deny.code, deny.detail
    return True, ReasonCode.OK, "allowed"
