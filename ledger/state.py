"""Ledger state and the rules that guard it, as pure functions.

:class:`LedgerState` is the control-plane projection the verifying processor
needs to decide on an event: registered keys and their roles, WPCs, tokens,
jobs and halts. For each event type a :class:`Rule` says

* ``check(state, ctx)`` — raise :class:`~ledger.errors.RejectedError` to refuse;
* ``apply(state, ctx)`` — change the state; returns the projection rows touched.

Nothing here talks to Kafka or Postgres. The processor loads the state from
Postgres, runs these functions, and persists the touched rows in the same
transaction as the events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ledger.errors import EventError, ReasonCode
from ledger.events import EventBody, KeyRegistered, KeyRevoked, LedgerEvent
from ledger.roles import Role, roles_allowed_for

__all__ = [
    "RULES",
    "EventContext",
    "KeyRecord",
    "LedgerState",
    "ProjectionRow",
    "Rule",
    "check_and_apply",
    "check_signer",
    "register_rule",
]


@dataclass(frozen=True)
class ProjectionRow:
    """One row of a projection table to upsert: ``table``, primary key column, values."""

    table: str
    key_column: str
    values: dict[str, Any]


@dataclass
class KeyRecord:
    did: str
    name: str
    roles: frozenset[Role]
    registered_by: str
    registered_event_id: str
    revoked: bool = False
    revoked_reason: str | None = None

    def row(self) -> ProjectionRow:
        return ProjectionRow(
            "keys",
            "did",
            {
                "did": self.did,
                "name": self.name,
                "roles": sorted(r.value for r in self.roles),
                "registered_by": self.registered_by,
                "registered_event_id": self.registered_event_id,
                "revoked": self.revoked,
                "revoked_reason": self.revoked_reason,
            },
        )


@dataclass
class LedgerState:
    """Control-plane state. ``extra`` holds the records of the claw primitives
    (policies, tokens, jobs, halts), each a dict keyed by identity."""

    trust_root: str | None = None
    keys: dict[str, KeyRecord] = field(default_factory=dict)
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    halts: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class EventContext:
    event: LedgerEvent
    body: EventBody
    signer: str


CheckFn = Callable[[LedgerState, EventContext], None]
ApplyFn = Callable[[LedgerState, EventContext], list[ProjectionRow]]


@dataclass(frozen=True)
class Rule:
    check: CheckFn
    apply: ApplyFn


def _no_check(state: LedgerState, ctx: EventContext) -> None:
    return None


def _no_apply(state: LedgerState, ctx: EventContext) -> list[ProjectionRow]:
    return []


# --- signer ------------------------------------------------------------------


def _is_trust_root_bootstrap(state: LedgerState, ctx: EventContext) -> bool:
    body = ctx.body
    return (
        isinstance(body, KeyRegistered)
        and state.trust_root is not None
        and ctx.signer == state.trust_root
        and body.did == state.trust_root
        and state.trust_root not in state.keys
    )


def check_signer(state: LedgerState, ctx: EventContext) -> None:
    """Signer registered, not revoked, and holding a role allowed for the type."""
    if ctx.event.producer != ctx.signer:
        raise EventError(
            ReasonCode.PRODUCER_MISMATCH,
            f"payload producer {ctx.event.producer} is not the envelope signer {ctx.signer}",
        )
    if _is_trust_root_bootstrap(state, ctx):
        return
    record = state.keys.get(ctx.signer)
    if record is None:
        raise EventError(
            ReasonCode.UNKNOWN_SIGNER,
            f"signer {ctx.signer} is not registered on the ledger",
            hint="an admin registers keys with `claw-ledger keys register`",
        )
    if record.revoked:
        raise EventError(ReasonCode.SIGNER_REVOKED, f"signer {ctx.signer} was revoked")
    allowed = roles_allowed_for(ctx.event.event_type)
    if not allowed & record.roles:
        raise EventError(
            ReasonCode.ROLE_NOT_ALLOWED,
            f"roles {sorted(r.value for r in record.roles)} may not publish "
            f"{ctx.event.event_type} (needs one of {sorted(r.value for r in allowed)})",
        )


# --- keys --------------------------------------------------------------------


def _check_key_registered(state: LedgerState, ctx: EventContext) -> None:
    assert isinstance(ctx.body, KeyRegistered)
    if ctx.event.stream != f"key:{ctx.body.did}":
        raise EventError(ReasonCode.SCHEMA_VALIDATION_FAILED, "stream must be key:<did>")
    from ledger.crypto import public_key_from_did

    public_key_from_did(ctx.body.did)
    existing = state.keys.get(ctx.body.did)
    if existing is not None:
        raise EventError(ReasonCode.KEY_ALREADY_REGISTERED, f"{ctx.body.did} is already registered")
    if _is_trust_root_bootstrap(state, ctx) and Role.ADMIN not in ctx.body.roles:
        raise EventError(ReasonCode.ROLE_NOT_ALLOWED, "the trust root must hold the admin role")


def _apply_key_registered(state: LedgerState, ctx: EventContext) -> list[ProjectionRow]:
    assert isinstance(ctx.body, KeyRegistered)
    record = KeyRecord(
        did=ctx.body.did,
        name=ctx.body.name,
        roles=frozenset(ctx.body.roles),
        registered_by=ctx.signer,
        registered_event_id=ctx.event.event_id,
    )
    state.keys[record.did] = record
    return [record.row()]


def _check_key_revoked(state: LedgerState, ctx: EventContext) -> None:
    assert isinstance(ctx.body, KeyRevoked)
    if ctx.event.stream != f"key:{ctx.body.did}":
        raise EventError(ReasonCode.SCHEMA_VALIDATION_FAILED, "stream must be key:<did>")
    record = state.keys.get(ctx.body.did)
    if record is None:
        raise EventError(ReasonCode.UNKNOWN_SIGNER, f"{ctx.body.did} is not registered")
    if record.revoked:
        raise EventError(ReasonCode.SIGNER_REVOKED, f"{ctx.body.did} is already revoked")
    if ctx.body.did == state.trust_root:
        raise EventError(ReasonCode.ROLE_NOT_ALLOWED, "the trust root cannot be revoked")


def _apply_key_revoked(state: LedgerState, ctx: EventContext) -> list[ProjectionRow]:
    assert isinstance(ctx.body, KeyRevoked)
    record = state.keys[ctx.body.did]
    record.revoked = True
    record.revoked_reason = ctx.body.reason
    return [record.row()]


RULES: dict[str, Rule] = {
    "key.registered": Rule(_check_key_registered, _apply_key_registered),
    "key.revoked": Rule(_check_key_revoked, _apply_key_revoked),
}


def register_rule(event_type: str, rule: Rule) -> None:
    """Used by the primitive modules (policies, tokens, runs, halts) to add their rules."""
    RULES[event_type] = rule


def check_and_apply(state: LedgerState, ctx: EventContext) -> list[ProjectionRow]:
    """Run the signer check and the event type's rule; apply on success."""
    check_signer(state, ctx)
    rule = RULES.get(ctx.event.event_type, Rule(_no_check, _no_apply))
    rule.check(state, ctx)
    return rule.apply(state, ctx)
