"""API key check: ``Authorization: Bearer KEY``, a role, a scope per route.

Every route is declared with :func:`secured` (a scope) or :func:`public`;
``create_app`` refuses a route that is neither, so a new route cannot be
served without a decision about who may call it. Key rows are kept by
:class:`KeyCache` only while the service listens for changes to them (ADR
0030), so a revocation takes effect as soon as it commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from claw_ledger.api.errors import ApiError
from claw_ledger.apikeys import ROLE_SCOPES, Role, Scope, matches, parse_key, roles_with
from ledger.errors import ReasonCode
from storage.api_queries import API_KEYS_CHANNEL, api_key_by_id

__all__ = [
    "SCOPE_FIELD",
    "Caller",
    "KeyCache",
    "authenticate",
    "bearer_key",
    "error_schema",
    "public",
    "route_scope",
    "secured",
]

log = logging.getLogger("claw_ledger.api")

#: where a route records the scope it needs (in its OpenAPI operation too)
SCOPE_FIELD = "x-claw-scope"
PUBLIC = "public"

_bearer = HTTPBearer(auto_error=False, description="An API key: `claw-ledger apikey create`")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="claw-ledger"'}


@dataclass(frozen=True)
class Caller:
    name: str
    role: Role


#: a kept row older than this is read again even if no change was announced: the
#: bound on a listening connection that died without the service noticing
KEY_MAX_AGE_SECONDS = 10.0
#: at most one attempt to listen per this many seconds while Postgres is away
_LISTEN_RETRY_SECONDS = 1.0
_MAX_KEPT = 10_000


class KeyCache:
    """Who holds a key: the ``api_keys`` rows read so far, kept while listening.

    Migration 0020 announces every change to ``api_keys`` on
    ``claw_ledger_api_keys`` when it commits; an announcement drops every kept
    row. A row is kept only if the service was listening before it was read and
    nothing was announced while it was being read, so a revocation committed
    at any moment is never hidden by a row read before it. Without a live
    listening connection nothing is kept and every request reads its row.
    """

    def __init__(
        self,
        url: str,
        *,
        max_age: float = KEY_MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._max_age = max_age
        self._clock = clock
        self._rows: dict[str, tuple[float, dict[str, Any]]] = {}
        self._generation = 0
        self._listener: asyncpg.Connection | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._next_attempt = 0.0
        self._warned = False

    @property
    def listening(self) -> bool:
        return self._listener is not None and not self._listener.is_closed()

    async def caller(self, pool: asyncpg.Pool, key: str) -> Caller | None:
        """Who holds ``key``: ``None`` when it is malformed, unknown or revoked."""
        key_id = parse_key(key)
        if key_id is None:
            return None
        row = self._kept(key_id)
        if row is None:
            self._listen_soon()
            listening, generation = self.listening, self._generation
            async with pool.acquire() as conn:
                row = await api_key_by_id(conn, key_id)
            if row is not None and listening and generation == self._generation:
                if len(self._rows) >= _MAX_KEPT:
                    self._rows.clear()
                self._rows[key_id] = (self._clock(), row)
        if row is None or not matches(key, row["key_sha256"]) or row["revoked_at"] is not None:
            return None
        return Caller(row["name"], row["role"])

    def start(self) -> None:
        """Start listening for changes in the background (nothing is kept before)."""
        self._listen_soon()

    def _kept(self, key_id: str) -> dict[str, Any] | None:
        kept = self._rows.get(key_id)
        if kept is None:
            return None
        read_at, row = kept
        if not self.listening or self._clock() - read_at > self._max_age:
            del self._rows[key_id]
            return None
        return row

    def forget(self, *_: object) -> None:
        """Drop every kept row (a change was announced, or listening stopped)."""
        self._rows.clear()
        self._generation += 1

    def _listen_soon(self) -> None:
        if self.listening or self._connecting is not None:
            return
        now = self._clock()
        if now < self._next_attempt:
            return
        self._next_attempt = now + _LISTEN_RETRY_SECONDS
        self._connecting = asyncio.create_task(self._listen(), name="api-keys-listen")

    async def _listen(self) -> None:
        try:
            listener = await asyncpg.connect(
                self._url,
                timeout=5,
                server_settings={"application_name": "claw-ledger-api-keys"},
            )
            try:
                await listener.add_listener(API_KEYS_CHANNEL, self.forget)
            except BaseException:
                await listener.close()
                raise
            listener.add_termination_listener(self.forget)
            self.forget()  # rows kept from now on were read after the LISTEN
            self._listener = listener
            if self._warned:
                log.info("listening for API key changes again: key rows are kept")
            self._warned = False
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            if not self._warned:  # once per outage, not once per attempt
                log.warning(
                    "API keys are read on every request: cannot listen for changes (%s)", exc
                )
            self._warned = True
        finally:
            self._connecting = None

    async def close(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
            self._listener = None
        self.forget()


def bearer_key(authorization: str | None) -> str | None:
    """The key of an ``Authorization: Bearer KEY`` header, else ``None``."""
    scheme, _, key = (authorization or "").partition(" ")
    key = key.strip()
    return key if scheme.lower() == "bearer" and key else None


async def authenticate(state: Any, key: str | None, scope: Scope) -> Caller:
    """The caller holding ``key`` if its role grants ``scope``; else the refusal
    (401 ``API_KEY_MISSING`` or ``API_KEY_INVALID``, 403 ``API_ROLE_FORBIDDEN``)."""
    if key is None:
        raise ApiError(
            401,
            ReasonCode.API_KEY_MISSING,
            "send an API key: Authorization: Bearer KEY (`claw-ledger apikey create`)",
            headers=_CHALLENGE,
        )
    keys: KeyCache = state.keys
    caller = await keys.caller(state.pool, key)
    if caller is None:
        raise ApiError(
            401,
            ReasonCode.API_KEY_INVALID,
            "the API key is unknown or revoked",
            headers=_CHALLENGE,
        )
    if scope not in ROLE_SCOPES.get(caller.role, frozenset()):
        allowed = ", ".join(roles_with(scope))
        raise ApiError(
            403,
            ReasonCode.API_ROLE_FORBIDDEN,
            f"the role {caller.role!r} may not use this route; it needs one of: {allowed}",
        )
    return caller


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
        key = None if credentials is None else credentials.credentials
        caller = await authenticate(request.app.state, key, self.scope)
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
