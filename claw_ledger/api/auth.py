"""API key check: ``Authorization: Bearer KEY``, a role, a scope per route.

Every route is declared with :func:`secured` (a scope) or :func:`public`;
``create_app`` refuses a route that is neither, so a new route cannot be
served without a decision about who may call it. The key's row is read on
every request (no cache), so a revocation takes effect at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from claw_ledger.api.errors import ApiError
from claw_ledger.apikeys import ROLE_SCOPES, Role, Scope, matches, parse_key, roles_with
from ledger.errors import ReasonCode
from storage.api_queries import api_key_by_id

__all__ = ["SCOPE_FIELD", "Caller", "error_schema", "live_key", "public", "route_scope", "secured"]

#: where a route records the scope it needs (in its OpenAPI operation too)
SCOPE_FIELD = "x-claw-scope"
PUBLIC = "public"

_bearer = HTTPBearer(auto_error=False, description="An API key: `claw-ledger apikey create`")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="claw-ledger"'}


@dataclass(frozen=True)
class Caller:
    name: str
    role: Role


async def live_key(pool: asyncpg.Pool, key: str) -> Caller | None:
    """Who holds ``key``: ``None`` when it is malformed, unknown or revoked."""
    key_id = parse_key(key)
    if key_id is None:
        return None
    async with pool.acquire() as conn:
        row = await api_key_by_id(conn, key_id)
    if row is None or not matches(key, row["key_sha256"]) or row["revoked_at"] is not None:
        return None
    return Caller(row["name"], row["role"])


def error_schema(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }


class _Require:
    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    async def __call__(
        self,
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
    ) -> Caller:
        if credentials is None:
            raise ApiError(
                401,
                ReasonCode.API_KEY_MISSING,
                "send an API key: Authorization: Bearer KEY (`claw-ledger apikey create`)",
                headers=_CHALLENGE,
            )
        caller = await live_key(request.app.state.pool, credentials.credentials)
        if caller is None:
            raise ApiError(
                401,
                ReasonCode.API_KEY_INVALID,
                "the API key is unknown or revoked",
                headers=_CHALLENGE,
            )
        role = caller.role
        if self.scope not in ROLE_SCOPES.get(role, frozenset()):
            allowed = ", ".join(roles_with(self.scope))
            raise ApiError(
                403,
                ReasonCode.API_ROLE_FORBIDDEN,
                f"the role {role!r} may not use this route; it needs one of: {allowed}",
            )
        request.state.caller = caller
        return caller


def secured(scope: Scope, responses: dict[int | str, Any] | None = None) -> dict[str, Any]:
    """Route keyword arguments: a key whose role grants ``scope`` is required."""
    return {
        "dependencies": [Depends(_Require(scope))],
        "openapi_extra": {SCOPE_FIELD: scope},
        "responses": {
            400: error_schema("Bad parameter (`API_BAD_PARAMETER` or a ledger code)"),
            401: error_schema("No key (`API_KEY_MISSING`), or an unknown or revoked one"),
            403: error_schema("The key's role may not use this route (`API_ROLE_FORBIDDEN`)"),
            503: error_schema("The database did not answer (`API_UNAVAILABLE`)"),
        }
        | dict(responses or {}),
    }


def public() -> dict[str, Any]:
    """Route keyword arguments of a route that needs no key (health probes)."""
    return {"openapi_extra": {SCOPE_FIELD: PUBLIC}}


def route_scope(openapi_extra: dict[str, Any] | None) -> str | None:
    """The scope a route declared (``"public"`` for none needed), or ``None``."""
    value = (openapi_extra or {}).get(SCOPE_FIELD)
    return value if isinstance(value, str) else None
