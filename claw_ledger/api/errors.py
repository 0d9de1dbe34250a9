"""Every refusal of the HTTP API is ``{"error": {"reason_code", "message"}}``.

The ledger's error tree maps here, in one place: a ``RejectedError`` keeps its
code (400), a ``ServiceError`` or an unreachable database is 503
``API_UNAVAILABLE``, anything unexpected 500 ``INTERNAL_ERROR`` (logged, its
text never sent).
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledger.errors import LedgerError, ReasonCode, RejectedError, ServiceError
from storage import DATABASE_UNAVAILABLE

__all__ = [
    "UNAVAILABLE_ERRORS",
    "ApiError",
    "error_body",
    "error_response",
    "install_error_handlers",
    "refusal",
]

log = logging.getLogger("claw_ledger.api")

_HTTP_CODES = {
    400: ReasonCode.API_BAD_PARAMETER,
    401: ReasonCode.API_KEY_MISSING,
    403: ReasonCode.API_ROLE_FORBIDDEN,
    404: ReasonCode.API_NOT_FOUND,
    405: ReasonCode.API_METHOD_NOT_ALLOWED,
    413: ReasonCode.API_BODY_TOO_LARGE,
    503: ReasonCode.API_UNAVAILABLE,
}


class ApiError(Exception):
    """A refusal with its HTTP status and reason code."""

    def __init__(
        self,
        status: int,
        code: ReasonCode,
        message: str,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def error_body(code: ReasonCode | str, message: str) -> dict[str, Any]:
    return {"error": {"reason_code": str(code), "message": message}}


def error_response(
    status: int, code: ReasonCode | str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()))
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


#: failures that mean "the database (or Kafka) is not there now": 503, retry later
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    ServiceError,
    *DATABASE_UNAVAILABLE,
    asyncpg.QueryCanceledError,
)


def refusal(exc: Exception, where: str) -> JSONResponse:
    """The answer to a request that raised ``exc`` (``where``: its method and path,
    for the log); every route's refusals, and those of the authorize fast path."""
    if isinstance(exc, ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.headers)
    if isinstance(exc, RejectedError):
        return error_response(400, exc.code, exc.detail)
    if isinstance(exc, UNAVAILABLE_ERRORS):
        log.warning("database unavailable: %s", exc)
        return error_response(
            503, ReasonCode.API_UNAVAILABLE, "the ledger database did not answer; try again later"
        )
    log.exception("unexpected error on %s", where, exc_info=exc)
    return error_response(500, ReasonCode.INTERNAL_ERROR, "internal error; see the service log")


async def _refused(request: Request, exc: Exception) -> JSONResponse:
    return refusal(exc, f"{request.method} {request.url.path}")


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(400, ReasonCode.API_BAD_PARAMETER, _validation_message(exc))


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, ReasonCode.API_BAD_PARAMETER)
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, code, str(exc.detail), headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for refused in (ApiError, RejectedError, *UNAVAILABLE_ERRORS, LedgerError, Exception):
        app.add_exception_handler(refused, _refused)
