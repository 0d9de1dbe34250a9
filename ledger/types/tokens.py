"""Scoped tokens (CSTs): ``token.issued`` and ``token.revoked``.

The ledger keeps an issued token's claims and hashes, never the token. Its
lifetime is bounded by :attr:`~ledger.registry.RuleSettings.max_token_ttl_seconds`.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from ledger.checks import check_b64u_hash
from ledger.crypto import kid_for_public_key, public_key_from_did
from ledger.errors import EventError, ReasonCode, TokenError
from ledger.registry import EventBody, EventTypeSpec, RuleSettings
from ledger.state import EventContext, LedgerState, ProjectionRow
from ledger.tokens import (
    CLOCK_SKEW_SECONDS,
    SUBJECT_PATTERN,
    check_lifetime,
    token_scope_hash_b64u,
)
from ledger.types._common import (
    ACTIVE,
    JOB_ID,
    JTI,
    Array,
    Revocation,
    body_of,
    epoch,
    require_not_halted,
    require_stream,
    row,
    spec,
    usable_policy,
)
from ledger.types.halts import require_reauthorised
from ledger.wpc import check_policy_hash

__all__ = ["SPECS", "TokenIssued", "TokenRevoked"]


class TokenIssued(EventBody):
    """The claims and hashes of an issued scoped token (never the token).

    Lifetime, scope and pin are checked by the rule (with their own reason
    codes), not here.
    """

    jti: str = Field(pattern=JTI)
    sub: str = Field(pattern=SUBJECT_PATTERN, description="1–300 characters, no whitespace")
    aud: str | Array[str]
    scope: Array[str]
    iat: int
    exp: int
    kid: str = Field(pattern=r"^[0-9a-f]{16}$")
    issuer_did: str
    token_scope_hash_b64u: str
    token_sha256_b64u: str
    policy_hash_b64u: str | None = None
    mission_id: str | None = Field(default=None, pattern=JOB_ID)
    nonce: str | None = Field(default=None, max_length=400)

    _hashes = field_validator("token_scope_hash_b64u", "token_sha256_b64u")(check_b64u_hash)


class TokenRevoked(EventBody):
    """A token may be used no more."""

    jti: str = Field(pattern=JTI)
    reason: str = Field(min_length=1, max_length=2000)


def _claims(body: TokenIssued) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "sub": body.sub,
        "aud": body.aud if isinstance(body.aud, str) else list(body.aud),
        "scope": list(body.scope),
    }
    if body.policy_hash_b64u is not None:
        claims["policy_hash_b64u"] = body.policy_hash_b64u
    if body.mission_id is not None:
        claims["mission_id"] = body.mission_id
    return claims


def _check_issued(state: LedgerState, ctx: EventContext, settings: RuleSettings, /) -> None:
    body = body_of(ctx, TokenIssued)
    require_stream(ctx, f"token:{body.jti}")
    if body.issuer_did != ctx.signer:
        raise EventError(
            ReasonCode.PRODUCER_MISMATCH,
            f"token issuer {body.issuer_did} is not the signer of the event {ctx.signer}",
        )
    if body.kid != kid_for_public_key(bytes(public_key_from_did(body.issuer_did))):
        raise TokenError(ReasonCode.TOKEN_MALFORMED, f"kid {body.kid} does not name the issuer key")
    if body.jti in state.tokens:
        raise TokenError(ReasonCode.TOKEN_ALREADY_ISSUED, f"token {body.jti} is already recorded")
    if body.policy_hash_b64u is not None:
        check_policy_hash(body.policy_hash_b64u)
    computed = token_scope_hash_b64u(_claims(body))  # TOKEN_EMPTY_SCOPE on empty scope
    check_lifetime(body.iat, body.exp, max_ttl_seconds=settings.max_token_ttl_seconds)
    now = epoch(ctx.event.occurred_at)
    if body.exp <= now:
        raise TokenError(
            ReasonCode.TOKEN_EXPIRED, f"token {body.jti} expired before it was recorded"
        )
    if body.iat > now + CLOCK_SKEW_SECONDS:
        raise TokenError(ReasonCode.TOKEN_BAD_LIFETIME, f"token {body.jti} is issued in the future")
    if computed != body.token_scope_hash_b64u:
        raise TokenError(
            ReasonCode.TOKEN_SCOPE_HASH_MISMATCH,
            f"token_scope_hash_b64u is {body.token_scope_hash_b64u}, the claims hash to {computed}",
        )
    if body.policy_hash_b64u is not None:
        usable_policy(state, body.policy_hash_b64u)
    require_not_halted(state, f"token {body.jti}", job_id=body.mission_id, sub=body.sub)
    require_reauthorised(
        state, f"token {body.jti}", job_id=body.mission_id, sub=body.sub, pin=body.policy_hash_b64u
    )


def _apply_issued(
    state: LedgerState, ctx: EventContext, settings: RuleSettings, /
) -> list[ProjectionRow]:
    body = body_of(ctx, TokenIssued)
    record: dict[str, Any] = {
        "jti": body.jti,
        "status": ACTIVE,
        "sub": body.sub,
        "aud": body.aud if isinstance(body.aud, str) else list(body.aud),
        "scope": list(body.scope),
        "iat": body.iat,
        "exp": body.exp,
        "kid": body.kid,
        "issuer_did": body.issuer_did,
        "token_scope_hash_b64u": body.token_scope_hash_b64u,
        "token_sha256_b64u": body.token_sha256_b64u,
        "policy_hash_b64u": body.policy_hash_b64u,
        "mission_id": body.mission_id,
        "nonce": body.nonce,
        "issued_event_id": ctx.event.event_id,
        "issued_at": ctx.event.occurred_at,
        "revoked_reason": None,
        "revoked_by": None,
        "revoked_at": None,
        "revoked_by_halt": None,
    }
    state.tokens[body.jti] = record
    return [row("tokens", "jti", record)]


_REVOCATION = Revocation(
    "tokens", "jti", "token", TokenError, ReasonCode.TOKEN_UNKNOWN, ReasonCode.TOKEN_REVOKED
)


#: event type, body, stream, roles, projections written; check, apply, timeline summary
# fmt: off
SPECS: tuple[EventTypeSpec, ...] = (
    spec("token.issued", TokenIssued, "token:<jti>", "issuer", "tokens",
         _check_issued, _apply_issued, "sub scope mission_id policy_hash_b64u jti"),
    spec("token.revoked", TokenRevoked, "token:<jti>", "issuer operator", "tokens",
         _REVOCATION.check, _REVOCATION.apply, "jti reason", lane="control"),
)
# fmt: on
