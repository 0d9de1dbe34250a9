"""Request limits, as ASGI middleware: 413 ``API_BODY_TOO_LARGE`` and 431
``API_HEADERS_TOO_LARGE``.

A declared ``Content-Length`` over the limit is refused before any byte of the
body is read; a chunked body is counted as it arrives and refused once it
passes the limit, so a client cannot make the service buffer more than that.

The request line and headers are bounded here too, whichever HTTP parser the
server runs: h11 is told the same bound, and httptools buffers at most its own
fixed amount before the request reaches this check.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from claw_ledger.api.errors import error_response
from ledger.errors import ReasonCode

__all__ = ["DEFAULT_MAX_BODY", "MAX_HEAD_BYTES", "SERVER_OPTIONS", "BodyLimit"]

DEFAULT_MAX_BODY = 64 * 1024
#: the request line and headers together, in bytes
MAX_HEAD_BYTES = 16 * 1024

#: how ``claw-ledger serve`` runs uvicorn (and the tests' server, so that they
#: meet the same server). With h11 (when httptools is missing) the parser itself
#: holds the head bound; :class:`BodyLimit` answers 431 API_HEADERS_TOO_LARGE
#: under either parser.
SERVER_OPTIONS: dict[str, Any] = {
    "server_header": False,
    "proxy_headers": False,
    "h11_max_incomplete_event_size": MAX_HEAD_BYTES,
}


class _TooLarge(Exception):
    pass


class BodyLimit:
    def __init__(self, app: ASGIApp, max_body: int = DEFAULT_MAX_BODY) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers", ())
        head = len(scope.get("raw_path") or b"") + len(scope.get("query_string", b""))
        head += sum(len(name) + len(value) + 4 for name, value in headers)
        if head > MAX_HEAD_BYTES:
            message = f"the request line and headers are over {MAX_HEAD_BYTES} bytes"
            await _refuse(scope, receive, send, 431, ReasonCode.API_HEADERS_TOO_LARGE, message)
            return
        for name, value in headers:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > self.max_body:
                    await self._refuse(scope, receive, send)
                    return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"the request body is over {self.max_body} bytes"
        await _refuse(scope, receive, send, 413, ReasonCode.API_BODY_TOO_LARGE, message)


async def _refuse(
    scope: Scope, receive: Receive, send: Send, status: int, code: ReasonCode, message: str
) -> None:
    # the rest of the request is not read: the connection closes after the answer
    response = error_response(status, code, message, headers={"Connection": "close"})
    await response(scope, receive, send)
