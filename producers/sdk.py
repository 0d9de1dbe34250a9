"""An async producer that signs and publishes ledger events.

Durability: ``acks="all"`` and idempotence on, so a retried send is not
duplicated by the broker. Ordering: the Kafka key is the event's stream, so
every event of one stream lands on one partition, in order. Backpressure: at
most ``max_in_flight`` sends are outstanding; :meth:`LedgerProducer.publish`
waits for room.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaProducer

from ledger.crypto import KeyPair
from ledger.envelope import SignedEnvelope
from ledger.events import EventBody, build_event, sign_event

__all__ = ["LedgerProducer", "Position"]


@dataclass(frozen=True)
class Position:
    """Where Kafka stored an event."""

    event_id: str
    stream: str
    topic: str
    partition: int
    offset: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "stream": self.stream,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
        }


class LedgerProducer:
    """Sign and publish events; use as an async context manager."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        max_in_flight: int = 10_000,
        linger_ms: int = 5,
        max_batch_size: int = 256 * 1024,
        max_request_size: int = 2 * 1024 * 1024,
        client_id: str = "claw-ledger-producer",
    ) -> None:
        self.topic = topic
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=linger_ms,
            max_batch_size=max_batch_size,
            max_request_size=max_request_size,
            client_id=client_id,
        )
        self._room = asyncio.Semaphore(max_in_flight)

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def __aenter__(self) -> LedgerProducer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def publish(
        self,
        key: KeyPair,
        event_type: str,
        stream: str,
        body: Mapping[str, Any] | EventBody,
        *,
        event_id: str | None = None,
    ) -> Position:
        """Build, validate, sign and publish one event; wait until Kafka has it."""
        envelope = self.sign(key, event_type, stream, body, event_id=event_id)
        future = await self.send_envelope(envelope)
        return await future

    def sign(
        self,
        key: KeyPair,
        event_type: str,
        stream: str,
        body: Mapping[str, Any] | EventBody,
        *,
        event_id: str | None = None,
    ) -> SignedEnvelope:
        event = build_event(event_type, stream, body, key, event_id=event_id)
        return sign_event(event, key)

    async def send_envelope(self, envelope: SignedEnvelope) -> asyncio.Future[Position]:
        """Queue a signed envelope; the returned future resolves to its position.

        Waits for room when ``max_in_flight`` sends are outstanding (backpressure).
        """
        payload = envelope.payload
        stream = str(payload["stream"])
        return await self.send_raw(envelope.to_bytes(), stream, str(payload["event_id"]))

    async def send_raw(
        self, value: bytes, stream: str, event_id: str = ""
    ) -> asyncio.Future[Position]:
        """Queue raw bytes keyed by ``stream`` (used for tests of bad input too)."""
        await self._room.acquire()
        try:
            kafka_future = await self._producer.send(
                self.topic, value=value, key=stream.encode("utf-8")
            )
        except BaseException:
            self._room.release()
            raise
        result: asyncio.Future[Position] = asyncio.get_running_loop().create_future()

        def _done(done: asyncio.Future[Any]) -> None:
            self._room.release()
            if result.cancelled():
                return
            if done.exception() is not None:
                result.set_exception(done.exception())  # type: ignore[arg-type]
                return
            metadata = done.result()
            result.set_result(
                Position(event_id, stream, metadata.topic, metadata.partition, metadata.offset)
            )

        kafka_future.add_done_callback(_done)
        return result

    async def flush(self) -> None:
        await self._producer.flush()
