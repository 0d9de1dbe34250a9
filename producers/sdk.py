"""An async producer that signs and publishes ledger events.

Durability: ``acks="all"`` and idempotence on, so a retried send is not
duplicated by the broker. Ordering: the Kafka key is the event's stream, so
every event of one stream lands on one partition, in order. Backpressure: at
most ``max_in_flight`` sends are outstanding; :meth:`LedgerProducer.publish`
waits for room.

Bulk: a service that signs many events (a gateway flushing receipts) calls
:meth:`LedgerProducer.publish_many`, or :func:`sign_many` then
:meth:`LedgerProducer.send_raw_many`::

    async with LedgerProducer(bootstrap, topics) as producer:
        positions = await producer.publish_many(
            gateway_key,
            [NewEvent("receipt.recorded", f"job:{job}", body) for job, body in pending],
        )

Routing (ADR 0024): each event goes to the topic of its type's lane
(``REGISTRY[event_type].lane``): halts, resumes and revocations to
``<prefix>.control``, everything else to ``<prefix>.ingress``. Raw sends route
by the ``event_type`` they are given, else by the type read from the
envelope bytes; bytes that are no ledger event of a known type go to ingress
(where the processor quarantines them). An explicit ``topic=`` wins.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, UnknownTopicOrPartitionError
from aiokafka.partitioner import DefaultPartitioner

from ledger.canonical import field_values
from ledger.crypto import KeyPair
from ledger.envelope import SignedEnvelope
from ledger.errors import PublishError
from ledger.events import (
    EventBody,
    NewEvent,
    build_event,
    sign_event,
    sign_event_bytes,
    sign_events_bytes,
)
from ledger.topics import Topics, topic_names
from ledger.types import REGISTRY

__all__ = [
    "LedgerProducer",
    "NewEvent",
    "Position",
    "RawEvent",
    "blocking",
    "lane_of_envelope",
    "sign_many",
]

_P = ParamSpec("_P")
_T = TypeVar("_T")


def blocking(call: Callable[_P, Coroutine[Any, Any, _T]]) -> Callable[_P, _T]:
    """``call`` run to completion on an event loop of its own."""

    @functools.wraps(call)
    def blocking(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        return asyncio.run(call(*args, **kwargs))

    blocking.__name__ = blocking.__qualname__ = f"{call.__name__}_sync"
    blocking.__doc__ = f"Blocking :func:`{call.__name__}`."
    return blocking


@dataclass(frozen=True)
class Position:
    """Where Kafka stored an event."""

    event_id: str
    stream: str
    topic: str
    partition: int
    offset: int

    def to_dict(self) -> dict[str, Any]:
        return field_values(self)


@dataclass(frozen=True, slots=True)
class RawEvent:
    """Envelope bytes ready for the wire, with the stream that keys them."""

    value: bytes
    stream: str
    event_id: str = ""
    #: routes the event to its lane's topic; empty: read from ``value``
    event_type: str = ""


class _MissingTopicRetries(logging.Filter):
    """aiokafka logs an ERROR at every metadata refresh while a topic is missing:
    hundreds of lines while a send waits for the topic to appear. The producer
    reports the missing topic itself, once, as a :class:`PublishError` naming the
    fix; the rest of aiokafka's records pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != "Topic %s not found in cluster metadata"


_MISSING_TOPIC_RETRIES = _MissingTopicRetries()


def _quiet_missing_topic_retries() -> None:
    logging.getLogger("aiokafka.cluster").addFilter(_MISSING_TOPIC_RETRIES)  # once: a set


def sign_many(key: KeyPair, events: Iterable[NewEvent]) -> list[RawEvent]:
    """Build, validate and sign every event with ``key``: wire-ready bytes, in the order given.

    Each envelope is what :meth:`LedgerProducer.sign` makes, at the cost of
    the signature plus one validation and one canonical encoding per event
    (:func:`ledger.events.sign_events_bytes`: all events are checked first,
    then signed in one loop). Raises :class:`ledger.errors.EventError` for
    the first invalid event, before any is signed.
    """
    events = list(events)
    return [
        RawEvent(raw, new.stream, event_id, new.event_type)
        for new, (event_id, raw) in zip(events, sign_events_bytes(key, events), strict=True)
    ]


def lane_of_envelope(value: bytes) -> str:
    """The lane of a ledger event's envelope bytes (its type's registry lane);
    ``"ingress"`` for bytes that are not a ledger event of a known type."""
    import json

    try:
        envelope = json.loads(value)
        event_type = envelope["payload"]["event_type"]
    except (ValueError, TypeError, KeyError):
        return "ingress"
    spec = REGISTRY.get(event_type) if isinstance(event_type, str) else None
    return spec.lane if spec is not None else "ingress"


def _lane_topics(topic: Topics | str) -> Topics:
    """The topics a producer routes to: given, or those of ``<prefix>.ingress``.

    Any other single name is used for both lanes (a processor accepts an event
    on either lane's topic, so nothing is lost; it only is not expedited).
    """
    if isinstance(topic, Topics):
        return topic
    if topic.endswith(".ingress"):
        return topic_names(topic.removesuffix(".ingress"))
    return Topics(ingress=topic, verified="", quarantine="", control=topic)


class LedgerProducer:
    """Sign and publish events, each to its lane's topic; use as an async context manager.

    ``topic`` is the :class:`~ledger.topics.Topics` of the ledger (or the name of
    its ingress topic, ``<prefix>.ingress``, from which the control topic is known).
    """

    def __init__(
        self,
        bootstrap: str,
        topic: Topics | str,
        *,
        max_in_flight: int = 10_000,
        linger_ms: int = 5,
        max_batch_size: int = 256 * 1024,
        max_request_size: int = 2 * 1024 * 1024,
        client_id: str = "claw-ledger-producer",
        request_timeout_ms: int = 40_000,
        metadata_max_age_ms: int = 300_000,
    ) -> None:
        self.bootstrap = bootstrap
        self.topics = _lane_topics(topic)
        #: the ingress topic (where anything without a control-lane type goes)
        self.topic = self.topics.ingress
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=linger_ms,
            max_batch_size=max_batch_size,
            max_request_size=max_request_size,
            client_id=client_id,
            # also how long a send waits for a topic to appear before it is missing
            request_timeout_ms=request_timeout_ms,
            # how soon partitions added to a live ledger are used (ADR 0032)
            metadata_max_age_ms=metadata_max_age_ms,
        )
        self._room = asyncio.Semaphore(max_in_flight)
        self._partitioner = DefaultPartitioner()
        #: the ingress partition of each stream, for the partition count it was chosen from
        self._partition_of_stream: dict[str, int] = {}
        self._partitions_cached = 0

    def topic_for(self, event_type: str) -> str:
        """The topic an event of ``event_type`` is sent to (its lane's)."""
        spec = REGISTRY.get(event_type)
        return self.topics.for_lane(spec.lane if spec is not None else "ingress")

    def _route(self, value: bytes, event_type: str | None, topic: str | None) -> str:
        if topic is not None:
            return topic
        if event_type:
            return self.topic_for(event_type)
        return self.topics.for_lane(lane_of_envelope(value))

    async def start(self) -> None:
        """Connect to Kafka; :class:`~ledger.errors.PublishError` when it does not answer."""
        _quiet_missing_topic_retries()
        try:
            await self._producer.start()
        except KafkaConnectionError as exc:
            await self._producer.stop()
            raise PublishError(
                f"cannot reach Kafka at {self.bootstrap}: {exc}",
                hint="is it running? `claw-ledger services status`,"
                " or check --kafka / CLAW_LEDGER_KAFKA",
            ) from exc

    def _missing_topic(self, topic: str) -> PublishError:
        return PublishError(
            f"topic {topic!r} does not exist on Kafka at {self.bootstrap}",
            hint="create the ledger's topics with `claw-ledger services topics`"
            " (or check CLAW_LEDGER_TOPIC_PREFIX)",
        )

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
        event_id, raw = sign_event_bytes(key, event_type, stream, body, event_id=event_id)
        future = await self.send_raw(raw, stream, event_id, event_type=event_type)
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
        """Build, validate and sign one event."""
        event = build_event(event_type, stream, body, key, event_id=event_id)
        return sign_event(event, key, issued_at=event.occurred_at)

    async def publish_many(self, key: KeyPair, events: Iterable[NewEvent]) -> list[Position]:
        """Build, validate, sign and publish many events; wait until Kafka has them all.

        Every event is validated and signed (:func:`sign_many`) before the
        first is sent, so an invalid one raises :class:`ledger.errors.EventError`
        and publishes nothing. Then they go out as whole record batches
        (:meth:`send_raw_many`): the events of one stream keep the order given
        (one stream, one key, one partition); different streams have no mutual
        order. Positions come back in the order of ``events``. For very large
        batches, call it per chunk of a few thousand: the signed bytes of one
        call are held in memory until Kafka has them.

        >>> positions = await producer.publish_many(key, [
        ...     NewEvent("run.started", "job:42", started),
        ...     NewEvent("run.completed", "job:42", completed),
        ... ])
        """
        return await self.send_raw_many(sign_many(key, events))

    async def send_envelope(self, envelope: SignedEnvelope) -> asyncio.Future[Position]:
        """Queue a signed envelope; the returned future resolves to its position.

        Waits for room when ``max_in_flight`` sends are outstanding (backpressure).
        """
        payload = envelope.payload
        stream = str(payload["stream"])
        return await self.send_raw(
            envelope.to_bytes(),
            stream,
            str(payload["event_id"]),
            event_type=str(payload.get("event_type", "")),
        )

    async def send_raw(
        self,
        value: bytes,
        stream: str,
        event_id: str = "",
        *,
        event_type: str | None = None,
        topic: str | None = None,
    ) -> asyncio.Future[Position]:
        """Queue raw bytes keyed by ``stream`` (used for tests of bad input too).

        Sent to ``topic`` if given, else to the lane of ``event_type``, else to
        the lane of the type the bytes carry (ingress for anything else).
        """
        target = self._route(value, event_type, topic)
        await self._room.acquire()
        try:
            kafka_future = await self._producer.send(
                target, value=value, key=stream.encode("utf-8")
            )
        except UnknownTopicOrPartitionError as exc:
            self._room.release()
            raise self._missing_topic(target) from exc
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

    async def send_raw_many(
        self, events: Iterable[RawEvent], *, topic: str | None = None
    ) -> list[Position]:
        """Publish many envelopes as whole record batches; wait until Kafka has them all.

        The cheap path for bulk publishing: one batch per partition instead of
        one send per event. Each event goes where :meth:`send_raw` would send
        it (``topic``, else its lane's), and each stream lands on the partition
        a single :meth:`send_raw` would choose (Kafka's murmur2 of the key), in
        the order given. Positions come back in the order of ``events``.
        """
        by_topic: dict[str, list[tuple[int, RawEvent]]] = {}
        count = 0
        for index, event in enumerate(events):
            count += 1
            target = self._route(event.value, event.event_type, topic)
            by_topic.setdefault(target, []).append((index, event))
        positions: list[Position | None] = [None] * count
        for target, indexed in by_topic.items():
            for index, position in await self._send_raw_batches(target, indexed):
                positions[index] = position
        return [p for p in positions if p is not None]

    async def _send_raw_batches(
        self, topic: str, events: list[tuple[int, RawEvent]]
    ) -> list[tuple[int, Position]]:
        """``events`` (with their indexes) to ``topic`` as record batches."""
        try:
            partitions = sorted(await self._producer.partitions_for(topic))
        except UnknownTopicOrPartitionError as exc:
            raise self._missing_topic(topic) from exc
        # the cached partition of a stream holds for the ingress topic only, and only
        # while its partition count holds: after growth a stream goes where a single
        # send_raw (Kafka's partitioner over the new count) sends it
        cache: dict[str, int] = {}
        if topic == self.topic:
            if len(partitions) != self._partitions_cached:
                self._partition_of_stream.clear()
                self._partitions_cached = len(partitions)
            cache = self._partition_of_stream
        builders: dict[int, Any] = {}
        #: per partition: (events appended to the open batch, futures of sent batches)
        open_events: dict[int, list[tuple[int, RawEvent]]] = {}
        sent: list[tuple[asyncio.Future[Any], int, list[tuple[int, RawEvent]]]] = []

        async def ship(partition: int) -> None:
            future = await self._producer.send_batch(
                builders.pop(partition), topic, partition=partition
            )
            sent.append((future, partition, open_events.pop(partition)))

        for index, event in events:
            key = event.stream.encode("utf-8")
            partition = cache.get(event.stream)
            if partition is None:
                partition = self._partitioner(key, partitions, partitions)
                if len(cache) < 100_000:
                    cache[event.stream] = partition
            builder = builders.get(partition)
            if builder is None:
                builder = builders[partition] = self._producer.create_batch()
                open_events[partition] = []
            if builder.append(key=key, value=event.value, timestamp=None) is None:
                if not open_events[partition]:
                    raise ValueError(f"event {event.event_id!r} is larger than a record batch")
                await ship(partition)
                builder = builders[partition] = self._producer.create_batch()
                open_events[partition] = []
                if builder.append(key=key, value=event.value, timestamp=None) is None:
                    raise ValueError(f"event {event.event_id!r} is larger than a record batch")
            open_events[partition].append((index, event))
        for partition in list(builders):
            await ship(partition)
        positions: list[tuple[int, Position]] = []
        for future, partition, members in sent:
            metadata = await future
            for i, (index, event) in enumerate(members):
                positions.append(
                    (
                        index,
                        Position(
                            event.event_id, event.stream, topic, partition, metadata.offset + i
                        ),
                    )
                )
        return positions

    async def flush(self) -> None:
        await self._producer.flush()
