"""``POST /v1/authorize`` answered in front of FastAPI's routing (ADR 0028).

The route is on every agent's hot path, asked up to thousands of times a
second by one service. FastAPI's route matching, dependency resolution and
response encoding cost that request about as much CPU as the decision
itself, so :class:`AuthorizeFastPath` answers it directly with the same
steps in the same order: the key check (:func:`~claw_ledger.api.auth.authenticate`),
the body, the decision (:func:`decide_body`), the figures; a refusal is the
same document (:func:`~claw_ledger.api.errors.refusal`). The FastAPI route
stays: ``/openapi.json`` documents it, and it answers when the fast path is
off (``ApiConfig.authorize_fast_path``), which the tests use to check that
both give the same answers.
"""

from __future__ import annotations

import json
import time
from typing import Any

import orjson
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from claw_ledger.api.auth import authenticate, bearer_key
from claw_ledger.api.errors import ApiError, refusal
from ledger.errors import ReasonCode

__all__ = ["AUTHORIZE_PATH", "AuthorizeFastPath", "decide_body"]

AUTHORIZE_PATH = "/v1/authorize"


def _as_dict(result: Any) -> dict[str, Any]:
    if hasattr(result, "model_dump"):
        result = result.model_dump(mode="json")
    elif hasattr(result, "to_dict"):
        result = result.to_dict()
    if not isinstance(result, dict):
        raise TypeError(f"the authorizer returned {type(result).__name__}, not a document")
    return result


async def decide_body(state: Any, raw: bytes) -> dict[str, Any]:
    """The decision on the request body ``raw`` of a caller already let in; counted
    in the service's figures. Raises :class:`ApiError` for a body that is not a
    JSON object and for a service without an authorizer."""
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, ReasonCode.API_BAD_PARAMETER, f"body: not JSON: {exc}") from None
    except RecursionError:  # within the size limit, a few thousand brackets deep
        raise ApiError(400, ReasonCode.API_BAD_PARAMETER, "body: nests too deeply") from None
    if not isinstance(document, dict):
        raise ApiError(400, ReasonCode.API_BAD_PARAMETER, "body: a JSON object is expected")
    authorizer = state.config.features.authorizer
    if authorizer is None:
        raise ApiError(
            503, ReasonCode.API_NOT_ENABLED, "this service has no authorizer wired in yet"
        )
    started = time.perf_counter()
    decision = _as_dict(await authorizer.decide(document))
    code = str(decision.get("reason_code", "OK"))
    outcome = "allow" if decision.get("allowed", code == "OK") else "deny"
    figures = state.metrics
    figures.authorize_latency.labels(outcome).observe(time.perf_counter() - started)
    figures.authorize_decisions.labels(outcome, code).inc()
    return decision


class AuthorizeFastPath:
    """ASGI middleware: ``POST /v1/authorize`` here, every other request to ``app``.

    Installed inside the request limits (:class:`~claw_ledger.api.limits.BodyLimit`
    still bounds the head and the body) and outside FastAPI's exception handlers
    (a refusal here is built by the same function theirs are)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != AUTHORIZE_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        raw = await _body(receive)
        if raw is None:
            return  # the client went away: nobody to answer
        state = scope["app"].state
        response: Response
        try:
            authorization = Headers(scope=scope).get("authorization")
            await authenticate(state, bearer_key(authorization), "authorize")
            decision = await decide_body(state, raw)
        except Exception as exc:
            response = refusal(exc, f"POST {AUTHORIZE_PATH}")
        else:
            response = Response(orjson.dumps(decision), media_type="application/json")
        await response(scope, receive, send)


async def _body(receive: Receive) -> bytes | None:
    """The whole body (the limits middleware stops one that is too large), or
    ``None`` when the client disconnected first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
