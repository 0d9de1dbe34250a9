"""The key registry: ``key.registered`` and ``key.revoked`` (ADR 0004).

Roles are granted at registration and never changed. The trust root (set by
``claw-ledger init``) is the one key that may register itself, once, and must
hold ``admin``; it can never be revoked.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, Strict

from ledger.crypto import public_key_from_did
from ledger.errors import EventError, ReasonCode
from ledger.registry import EventBody, EventTypeSpec, RuleSettings
from ledger.roles import Role
from ledger.state import EventContext, KeyRecord, LedgerState, ProjectionRow
from ledger.types._common import Array, body_of, spec

__all__ = ["SPECS", "KeyRegistered", "KeyRevoked", "is_trust_root_bootstrap"]


class KeyRegistered(EventBody):
    """A key enters the registry with its roles."""

    did: str
    name: str = Field(min_length=1, max_length=200)
    # a role arrives as its JSON string
    roles: Array[Annotated[Role, Strict(False)]] = Field(min_length=1)


class KeyRevoked(EventBody):
    """A key may sign nothing more."""

    did: str
    reason: str = Field(min_length=1, max_length=2000)


def is_trust_root_bootstrap(state: LedgerState, ctx: EventContext, /) -> bool:
    """The trust root registering itself while the registry does not hold it yet."""
    body = ctx.body
    return (
        isinstance(body, KeyRegistered)
        and state.trust_root is not None
        and ctx.signer == state.trust_root
        and body.did == state.trust_root
        and state.trust_root not in state.keys
    )


def _check_registered(state: LedgerState, ctx: EventContext, settings: RuleSettings, /) -> None:
    body = body_of(ctx, KeyRegistered)
    if ctx.event.stream != f"key:{body.did}":
        raise EventError(ReasonCode.SCHEMA_VALIDATION_FAILED, "stream must be key:<did>")
    public_key_from_did(body.did)
    existing = state.keys.get(body.did)
    if existing is not None:
        raise EventError(ReasonCode.KEY_ALREADY_REGISTERED, f"{body.did} is already registered")
    if is_trust_root_bootstrap(state, ctx) and Role.ADMIN not in body.roles:
        raise EventError(ReasonCode.ROLE_NOT_ALLOWED, "the trust root must hold the admin role")


def _apply_registered(
    state: LedgerState, ctx: EventContext, settings: RuleSettings, /
) -> list[ProjectionRow]:
    body = body_of(ctx, KeyRegistered)
    record = KeyRecord(
        did=body.did,
        name=body.name,
        roles=frozenset(body.roles),
        registered_by=ctx.signer,
        registered_event_id=ctx.event.event_id,
    )
    state.keys[record.did] = record
    return [record.row()]


def _check_revoked(state: LedgerState, ctx: EventContext, settings: RuleSettings, /) -> None:
    body = body_of(ctx, KeyRevoked)
    if ctx.event.stream != f"key:{body.did}":
        raise EventError(ReasonCode.SCHEMA_VALIDATION_FAILED, "stream must be key:<did>")
    record = state.keys.get(body.did)
    if record is None:
        raise EventError(ReasonCode.UNKNOWN_SIGNER, f"{body.did} is not registered")
    if record.revoked:
        raise EventError(ReasonCode.SIGNER_REVOKED, f"{body.did} is already revoked")
    if body.did == state.trust_root:
        raise EventError(ReasonCode.ROLE_NOT_ALLOWED, "the trust root cannot be revoked")


def _apply_revoked(
    state: LedgerState, ctx: EventContext, settings: RuleSettings, /
) -> list[ProjectionRow]:
    body = body_of(ctx, KeyRevoked)
    record = state.keys[body.did]
    record.revoked = True
    record.revoked_reason = body.reason
    return [record.row()]


#: event type, body, stream, roles, projections written; check, apply, timeline summary
# fmt: off
SPECS: tuple[EventTypeSpec, ...] = (
    spec("key.registered", KeyRegistered, "key:<did>", "admin", "keys",
         _check_registered, _apply_registered, "name roles did", is_trust_root_bootstrap),
    spec("key.revoked", KeyRevoked, "key:<did>", "admin", "keys",
         _check_revoked, _apply_revoked, "did reason", lane="control"),
)
# fmt: on
