"""Deny early, allow late: control events seen before the ledger commits them (ADR 0025).

The authorize service reads the control lane itself. A record there that
passes the processor's stateless checks (:func:`ledger.verify.verify_message`)
and whose signer the committed state registers, has not revoked and lets
publish its type (:func:`ledger.verify.check_signer`) is *seen*. Only the
restricting effect of a seen event is applied, at once, by
:func:`ledger.authorize.decide_call`:

* ``agent.halted``: calls of the target (``*``, ``sub:<s>``, ``job:<j>``) are
  denied ``AGENT_HALTED`` with ``halt_state`` ``seen``, per its ``tools`` and
  ``model_egress`` flags;
* ``token.revoked``: the token is denied ``TOKEN_REVOKED``;
* ``key.revoked``: tokens that key issued are denied ``TOKEN_ISSUER_NOT_ALLOWED``;
* ``policy.revoked``: jobs under that WPC are denied ``WPC_REVOKED``.

Every such denial names the seen event (``seen_event_id``). Anything
permissive (``agent.resumed``, a grant, a registration) is never applied
early: it acts once the ledger committed it, through the committed state.
Denying on a validly signed halt that the ledger has not ordered yet is safe;
allowing on one is not.

:class:`SeenControls` holds the seen events until the ledger decides on
each: committed with the same payload hash, it is dropped (the committed state
now holds its effect); quarantined, or committed under its id with other
content (a duplicate-id conflict), its early effect is lifted and the lift is
kept in :attr:`SeenControls.lifted`. An event the ledger never decides on stays
in force (a deny); the overlay holds at most ``max_entries`` events and counts
the ones it could not hold (those act on commit, as before this overlay).
Nothing here does I/O.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

from ledger.attributes import attributes
from ledger.errors import EnvelopeError, ReasonCode, RejectedError
from ledger.state import EventContext, LedgerState
from ledger.types.halts import AgentHalted
from ledger.verify import Rejected, Verified, check_signer

__all__ = [
    "DEFAULT_MAX_SEEN",
    "RESTRICTING_TYPES",
    "Ignored",
    "LiftedControl",
    "SeenControl",
    "SeenControls",
    "judge_seen",
    "resolution",
]

#: the control events whose effect may act before commit: each only denies
RESTRICTING_TYPES: dict[str, str] = {
    "agent.halted": "target",
    "token.revoked": "jti",
    "key.revoked": "did",
    "policy.revoked": "policy_hash_b64u",
}
_STREAM_KIND = {"agent.halted": "halt", "token.revoked": "token", "key.revoked": "key"}
#: seen events held at once; beyond it a seen event acts on commit only
DEFAULT_MAX_SEEN = 100_000
#: lifts remembered for status pages and audits (the log has every one)
_LIFTS_KEPT = 1000


@dataclass(frozen=True, slots=True)
class SeenControl:
    """A restricting control event seen on the control lane, not yet decided by the ledger."""

    event_id: str
    event_type: str
    signer: str
    payload_hash_b64u: str
    #: SHA-256 (b64u) of the exact record bytes: a quarantine row matches only these
    envelope_sha256: str
    #: the halt target, token id, key DID or WPC hash it restricts
    subject: str
    #: the time it was seen (epoch seconds)
    seen_at: float
    tools: bool = True
    model_egress: bool = True

    def to_dict(self) -> dict[str, Any]:
        named = attributes(self, "event_id", "event_type", "subject")
        return named | {"signer_did": self.signer, "seen_at": self.seen_at}


@dataclass(frozen=True, slots=True)
class Ignored:
    """A valid control event that acts only once committed (not restricting)."""

    event_type: str


@dataclass(frozen=True, slots=True)
class LiftedControl:
    """A seen event the ledger refused: its early effect ended at ``lifted_at``."""

    control: SeenControl
    reason: str
    lifted_at: float
    #: the decisions it denied while in force (each signed, naming its event id)
    denied: int = 0

    def to_dict(self) -> dict[str, Any]:
        return self.control.to_dict() | {
            "reason": self.reason,
            "lifted_at": self.lifted_at,
            "denied": self.denied,
        }


def judge_seen(
    state: LedgerState, verified: Verified, now: float
) -> SeenControl | Ignored | Rejected:
    """What a control-lane record that passed :func:`verify_message` does before commit.

    ``state`` is the committed state: the signer must be registered there, not
    revoked, and hold a role the type allows (the processor's step 5). A
    refusal means no effect at all.
    """
    event = verified.event
    field = RESTRICTING_TYPES.get(event.event_type)
    if field is None:
        return Ignored(event.event_type)
    signer = verified.envelope.signer_did
    ctx = EventContext(event=event, body=verified.body, signer=signer)
    try:
        check_signer(state, ctx)
    except (EnvelopeError, RejectedError) as exc:
        return Rejected(exc.code, exc.detail, event.event_id, signer)
    subject = str(getattr(verified.body, field))
    kind = _STREAM_KIND.get(event.event_type, "policy")
    if event.stream != f"{kind}:{subject}":
        # the rule would refuse it: it never takes effect, early or late
        return Rejected(
            ReasonCode.SCHEMA_VALIDATION_FAILED,
            f"stream must be {kind}:{subject}",
            event.event_id,
            signer,
        )
    if event.event_type == "key.revoked" and subject == state.trust_root:
        return Rejected(
            ReasonCode.ROLE_NOT_ALLOWED, "the trust root cannot be revoked", event.event_id, signer
        )
    body = verified.body
    halted = body if isinstance(body, AgentHalted) else None
    return SeenControl(
        event_id=event.event_id,
        event_type=event.event_type,
        signer=signer,
        payload_hash_b64u=verified.envelope.payload_hash_b64u,
        envelope_sha256=verified.envelope_sha256,
        subject=subject,
        seen_at=now,
        tools=halted.tools if halted is not None else True,
        model_egress=halted.model_egress if halted is not None else True,
    )


def resolution(
    control: SeenControl, committed_hash: str | None, quarantined: str | None
) -> Literal["committed"] | tuple[Literal["lifted"], str] | None:
    """What the ledger decided on ``control``: ``committed_hash`` is the payload hash
    recorded under its event id (``None``: none), ``quarantined`` the reason of a
    quarantine row of its very bytes (``None``: none). ``None``: not decided yet."""
    if committed_hash is not None:
        if committed_hash == control.payload_hash_b64u:
            return "committed"
        return (
            "lifted",
            f"{ReasonCode.DUPLICATE_EVENT_CONFLICT.value}: event id {control.event_id}"
            " is recorded with other content",
        )
    if quarantined is not None:
        return ("lifted", quarantined)
    return None


class SeenControls:
    """The seen, undecided restricting events, indexed for the decision."""

    def __init__(self, max_entries: int = DEFAULT_MAX_SEEN) -> None:
        self.max_entries = max_entries
        self._by_id: dict[str, SeenControl] = {}
        self._index: dict[tuple[str, str], dict[str, SeenControl]] = {}
        self._denied: dict[str, int] = {}
        self.lifted: deque[LiftedControl] = deque(maxlen=_LIFTS_KEPT)
        self.counts = {
            "seen": 0,
            "refused": 0,
            "ignored": 0,
            "committed": 0,
            "lifted": 0,
            "overflow": 0,
        }

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._by_id

    def pending(self) -> list[SeenControl]:
        """Every held event, oldest first (the ones to ask the ledger about)."""
        return list(self._by_id.values())

    def add(self, control: SeenControl) -> bool:
        """Hold ``control``; False when already held or when the bound is reached."""
        if control.event_id in self._by_id:
            return False
        if len(self._by_id) >= self.max_entries:
            self.counts["overflow"] += 1
            return False
        self._by_id[control.event_id] = control
        self._index.setdefault((control.event_type, control.subject), {})[control.event_id] = (
            control
        )
        self.counts["seen"] += 1
        return True

    def note_denial(self, event_id: str) -> None:
        """A decision was denied on the held event ``event_id``."""
        if event_id in self._by_id:
            self._denied[event_id] = self._denied.get(event_id, 0) + 1

    def _remove(self, event_id: str) -> SeenControl | None:
        control = self._by_id.pop(event_id, None)
        if control is not None:
            key = (control.event_type, control.subject)
            held = self._index[key]
            del held[event_id]
            if not held:
                del self._index[key]
        return control

    def committed(self, event_id: str) -> SeenControl | None:
        """The ledger committed it: the committed state holds its effect from now on."""
        self._denied.pop(event_id, None)
        control = self._remove(event_id)
        if control is not None:
            self.counts["committed"] += 1
        return control

    def lift(self, event_id: str, reason: str, now: float) -> LiftedControl | None:
        """The ledger refused it: its early effect ends."""
        denied = self._denied.pop(event_id, 0)
        control = self._remove(event_id)
        if control is None:
            return None
        lifted = LiftedControl(control, reason, now, denied)
        self.lifted.append(lifted)
        self.counts["lifted"] += 1
        return lifted

    def _first(self, event_type: str, subject: str) -> SeenControl | None:
        held = self._index.get((event_type, subject))
        return next(iter(held.values())) if held else None

    def halt(self, job_id: str, sub: str, kind: str) -> SeenControl | None:
        """A seen halt of everything, the job or the subject denying this kind of call."""
        for target in ("*", f"job:{job_id}", f"sub:{sub}"):
            for control in (self._index.get(("agent.halted", target)) or {}).values():
                if control.tools if kind == "tool" else control.model_egress:
                    return control
        return None

    def token(self, jti: str) -> SeenControl | None:
        return self._first("token.revoked", jti)

    def key(self, did: str) -> SeenControl | None:
        return self._first("key.revoked", did)

    def policy(self, policy_hash: str) -> SeenControl | None:
        return self._first("policy.revoked", policy_hash)

    def status(self) -> dict[str, Any]:
        """Counts, what is held now and the recent lifts (for ``status`` and audits)."""
        return {
            "held": len(self._by_id),
            "max_entries": self.max_entries,
            **self.counts,
            "in_force": [c.to_dict() for c in list(self._by_id.values())[:100]],
            "recent_lifts": [lift.to_dict() for lift in list(self.lifted)[-100:]],
        }
