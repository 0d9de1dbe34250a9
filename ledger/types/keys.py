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
from ledger.types._common import Array, fields_summary

__all__ = ["SPECS", "KeyRegistered", "KeyRevoked", "is_trust_root_bootstrap"]


class KeyRegistered(EventBody):
    did: str
    name: str = Field(min_length=1, max_length=200)
    # a role arrives as its JSON string
    roles: Array[Annotated[Role, Strict(False)]] = Field(min_length=1)


class KeyRevoked(EventBody):
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
    assert isinstance(ctx.body, KeyRegistered)
    if ctx.event.stream != f"key:{ctx.body.did}":
        raise EventError(ReasonCode.SCHEMA_VALIDATION_FAILED, "stream must be key:<did>")
    public_key_from_did(ctx.body.did)
    existing = state.keys.get(ctx.body.did)
    if existing is not None:
        raise EventError(ReasonCode.KEY_ALREADY_REGISTERED, f"{ctx.body.did} is already registered")
    if is_trust_root_bootstrap(state, ctx) and Role.ADMIN not in ctx.body.roles:
        raise EventError(ReasonCode.ROLE_NOT_ALLOWED, "the trust root must hold the admin role")


def _apply_registered(
    state: LedgerState, ctx: EventContext, settings: RuleSettings, /
) -> list[ProjectionRow]:
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


def _check_revoked(state: LedgerState, ctx: EventContext, settings: RuleSettings, /) -> None:
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


def _apply_revoked(
    state: LedgerState, ctx: EventContext, settings: RuleSettings, /
) -> list[ProjectionRow]:
    assert isinstance(ctx.body, KeyRevoked)
    record = state.keys[ctx.body.did]
    record.revoked = True
    record.revoked_reason = ctx.body.reason
    return [record.row()]


SPECS: tuple[EventTypeSpec, ...] = (
    EventTypeSpec(
        event_type="key.registered",
        body=KeyRegistered,
        stream_kind="key",
        stream_id="<did>",
        roles=frozenset({Role.ADMIN}),
        check=_check_registered,
        apply=_apply_registered,
        writes=("keys",),
        description="a key enters the registry with its roles",
        summary=fields_summary("name", "roles", "did"),
        signer_bootstrap=is_trust_root_bootstrap,
    ),
    EventTypeSpec(
        event_type="key.revoked",
        body=KeyRevoked,
        stream_kind="key",
        stream_id="<did>",
        roles=frozenset({Role.ADMIN}),
        check=_check_revoked,
        apply=_apply_revoked,
        writes=("keys",),
        description="a key may sign nothing more",
        summary=fields_summary("did", "reason"),
    ),
)
