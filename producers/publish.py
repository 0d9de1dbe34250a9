"""Publish one event and, optionally, wait for the ledger's verdict.

After Kafka has the event, :func:`await_verdict` polls Postgres until the
verifying processor has either committed the event to the ledger or
quarantined it, so the publisher learns the outcome and its reason code. The
endpoints are plain arguments (:class:`PublishTarget`): this edge knows no
application settings.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ledger.crypto import KeyPair
from ledger.topics import Topics
from producers.outcome import Committed, PublishOutcome, Quarantined, TimedOut, Verdict
from producers.sdk import LedgerProducer, Position, blocking
from storage import connect

__all__ = [
    "Committed",
    "PublishOutcome",
    "PublishTarget",
    "Quarantined",
    "TimedOut",
    "Verdict",
    "await_verdict",
    "publish_event",
    "publish_event_sync",
    "wait_for_verdict",
]


@dataclass(frozen=True)
class PublishTarget:
    """Where events go (Kafka, the ingress topic) and where their verdicts are read.

    Control-lane events (halts, resumes, revocations) go to ``control_topic``;
    left out, it is ``<prefix>.control`` for an ingress topic ``<prefix>.ingress``.
    """

    kafka_bootstrap: str
    ingress_topic: str
    database_url: str
    control_topic: str | None = None

    @property
    def topics(self) -> Topics | str:
        """What a :class:`~producers.sdk.LedgerProducer` routes to."""
        if self.control_topic is None:
            return self.ingress_topic
        return Topics(self.ingress_topic, "", "", self.control_topic)


async def await_verdict(
    database_url: str, sent: Position | str, *, timeout: float = 30.0
) -> Verdict:
    """Poll the ledger until the message ``sent`` is committed or quarantined, at most
    ``timeout`` s.

    ``sent`` is the :class:`~producers.sdk.Position` that ``publish`` returned: the
    verdict is that message's. An event id alone asks what the ledger holds for
    that id, which is another message's verdict when the id was sent twice with
    different bodies (the second is quarantined as ``DUPLICATE_EVENT_CONFLICT``
    while the id reads as committed).
    """
    deadline = time.monotonic() + timeout
    conn = await connect(database_url)
    try:
        delay = 0.02
        while True:
            found = await (
                _verdict_of_message(conn, sent)
                if isinstance(sent, Position)
                else _verdict_of_id(conn, sent)
            )
            if found is not None:
                return found
            if time.monotonic() > deadline:
                return TimedOut(timeout)
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.25)
    finally:
        await conn.close()


# event_keys holds the event_id and coordinates indexes of the partitioned events (0017)
_COMMITTED = (
    "SELECT e.position, e.ledger_seq, e.chain_hash FROM event_keys k"
    " JOIN events e ON e.position = k.position WHERE "
)


async def _verdict_of_id(conn: Any, event_id: str) -> Verdict | None:
    row = await conn.fetchrow(_COMMITTED + "k.event_id = $1::uuid", event_id)
    if row is not None:
        return Committed(row["position"], row["ledger_seq"], row["chain_hash"])
    row = await conn.fetchrow(
        "SELECT reason_code, detail FROM quarantine WHERE event_id = $1 ORDER BY id DESC LIMIT 1",
        event_id,
    )
    return None if row is None else Quarantined(row["reason_code"], row["detail"])


async def _verdict_of_message(conn: Any, sent: Position) -> Verdict | None:
    """The verdict of the message at ``sent``'s Kafka coordinates: the row it became,
    its quarantine row, or, once a processor has read past it with neither, the
    event it repeated exactly (a re-sent envelope is recorded once)."""
    coordinates = (sent.topic, sent.partition, sent.offset)
    where = "k.kafka_topic = $1 AND k.kafka_partition = $2 AND k.kafka_offset = $3"
    row = await conn.fetchrow(_COMMITTED + where, *coordinates)
    if row is not None:
        return Committed(row["position"], row["ledger_seq"], row["chain_hash"])
    row = await conn.fetchrow(
        "SELECT reason_code, detail FROM quarantine"
        " WHERE kafka_topic = $1 AND kafka_partition = $2 AND kafka_offset = $3",
        *coordinates,
    )
    if row is not None:
        return Quarantined(row["reason_code"], row["detail"])
    passed = await conn.fetchval(
        "SELECT coalesce(max(next_offset), 0) > $3 FROM consumer_positions"
        " WHERE topic = $1 AND kafka_partition = $2",
        *coordinates,
    )
    return await _verdict_of_id(conn, sent.event_id) if passed else None


async def wait_for_verdict(
    database_url: str, event_id: Position | str, *, timeout: float = 30.0
) -> dict[str, Any]:
    """:func:`await_verdict` as a dict (``{"status": "committed", "position": n, ...}``);
    raises ``ServiceError`` on a timeout. For scripts that print or compare verdicts."""
    verdict = await await_verdict(database_url, event_id, timeout=timeout)
    if isinstance(verdict, TimedOut):
        raise verdict.error(event_id if isinstance(event_id, str) else event_id.event_id)
    return verdict.to_dict()


async def publish_event(
    target: PublishTarget,
    key: KeyPair,
    event_type: str,
    stream: str,
    body: Mapping[str, Any],
    *,
    wait: bool = True,
    timeout: float = 30.0,
) -> PublishOutcome:
    """Sign and publish one event on ``target``; with ``wait``, await its verdict."""
    async with LedgerProducer(target.kafka_bootstrap, target.topics) as producer:
        position = await producer.publish(key, event_type, stream, body)
    verdict = await await_verdict(target.database_url, position, timeout=timeout) if wait else None
    return PublishOutcome(event_type, position, verdict)


publish_event_sync = blocking(publish_event)
