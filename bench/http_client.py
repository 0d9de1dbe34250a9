"""A lean HTTP/1.1 client for the paced HTTP benchmarks.

The load generator shares this machine's cores with the server, Kafka,
Postgres and the processor, so every microsecond it spends is taken from the
system it measures: aiohttp spent about 0.3 ms of CPU per request, a fifth
of what the whole ledger spent answering and recording an authorize request.
This client keeps its connections alive, writes each request as one buffer
and parses the answer with httptools (the parser uvicorn serves with).
"""

from __future__ import annotations

import asyncio

import httptools

__all__ = ["LeanClient"]


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.body: list[bytes] = []
        self.reusable = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"bad answer: {exc}"))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.reusable = self.parser.should_keep_alive()
        waiter, self.waiter = self.waiter, None
        body, self.body = b"".join(self.body), []
        if waiter is not None and not waiter.done():
            waiter.set_result((self.parser.get_status_code(), body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self._fail(ConnectionError(f"connection closed: {exc}"))

    def _fail(self, exc: Exception) -> None:
        self.reusable = False
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.close()


class LeanClient:
    """``await client.request("POST", "/v1/authorize", body)`` → ``(status, body)``,
    over at most ``limit`` kept-alive connections to ``host:port``."""

    def __init__(
        self, host: str, port: int, headers: dict[str, str] | None = None, limit: int = 64
    ) -> None:
        self.host = host
        self.port = port
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        self._head = f"Host: {host}:{port}\r\n{extra}".encode("latin-1")
        self._limit = limit
        self._open = 0
        self._idle: asyncio.Queue[_Connection] = asyncio.Queue()
        self._all: set[_Connection] = set()

    async def request(
        self, method: str, path: str, body: bytes = b"", *, timeout: float = 30.0
    ) -> tuple[int, bytes]:
        connection = await self._connection()
        loop = asyncio.get_running_loop()
        waiter = connection.waiter = loop.create_future()
        head = f"{method} {path} HTTP/1.1\r\n".encode("latin-1") + self._head
        if body:
            head += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
        assert connection.transport is not None
        connection.transport.write(head + b"\r\n" + body)
        try:
            return await asyncio.wait_for(waiter, timeout)
        finally:
            if connection.reusable and connection.waiter is None:
                self._idle.put_nowait(connection)
            else:
                self._drop(connection)

    async def _connection(self) -> _Connection:
        while not self._idle.empty():
            connection = self._idle.get_nowait()
            if connection.reusable:
                return connection
            self._drop(connection)
        if self._open < self._limit:
            self._open += 1
            try:
                _, connection = await asyncio.get_running_loop().create_connection(
                    _Connection, self.host, self.port
                )
            except BaseException:
                self._open -= 1
                raise
            self._all.add(connection)
            return connection
        return await self._idle.get()

    def _drop(self, connection: _Connection) -> None:
        if connection in self._all:
            self._all.discard(connection)
            self._open -= 1
        if connection.transport is not None:
            connection.transport.close()

    async def close(self) -> None:
        for connection in list(self._all):
            self._drop(connection)
        await asyncio.sleep(0)
