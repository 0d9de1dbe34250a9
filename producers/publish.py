"""Publish one event and, optionally, wait for the ledger's verdict.

Used by the CLI: after Kafka has the event, :func:`wait_for_verdict` polls
Postgres until the verifying processor has either committed the event to the
ledger or quarantined it, so the user learns the outcome and its reason code.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import asyncpg

from claw_ledger.config import Settings, effective_endpoints
from claw_ledger.topics import topic_names
from ledger.crypto import KeyPair
from ledger.errors import ServiceError
from producers.sdk import LedgerProducer

__all__ = ["publish_event", "publish_event_sync", "wait_for_verdict"]


async def wait_for_verdict(
    database_url: str, event_id: str, *, timeout: float = 30.0
) -> dict[str, Any]:
    """``{"status": "committed", "position": n}`` or ``{"status": "quarantined", ...}``."""
    deadline = time.monotonic() + timeout
    conn = await asyncpg.connect(database_url)
    try:
        delay = 0.02
        while True:
            row = await conn.fetchrow(
                "SELECT position, ledger_seq, chain_hash FROM events WHERE event_id = $1::uuid",
                event_id,
            )
            if row is not None:
                return {
                    "status": "committed",
                    "position": row["position"],
                    "ledger_seq": row["ledger_seq"],
                    "chain_hash": row["chain_hash"],
                }
            row = await conn.fetchrow(
                "SELECT reason_code, detail FROM quarantine WHERE event_id = $1"
                " ORDER BY id DESC LIMIT 1",
                event_id,
            )
            if row is not None:
                return {
                    "status": "quarantined",
                    "reason_code": row["reason_code"],
                    "detail": row["detail"],
                }
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"event {event_id} was published but no verdict arrived in {timeout:.0f}s",
                    hint="is the processor running? start it with `claw-ledger up` or "
                    "`claw-ledger processor run`",
                )
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.25)
    finally:
        await conn.close()


async def publish_event(
    settings: Settings,
    key: KeyPair,
    event_type: str,
    stream: str,
    body: Mapping[str, Any],
    *,
    wait: bool = True,
    timeout: float = 30.0,
) -> dict[str, Any]:
    endpoints = effective_endpoints(settings)
    topics = topic_names(settings.topic_prefix)
    async with LedgerProducer(endpoints.kafka_bootstrap, topics.ingress) as producer:
        position = await producer.publish(key, event_type, stream, body)
    result: dict[str, Any] = {"event_type": event_type, **position.to_dict()}
    if wait:
        result |= await wait_for_verdict(endpoints.database_url, position.event_id, timeout=timeout)
    else:
        result["status"] = "published"
    return result


def publish_event_sync(
    settings: Settings,
    key: KeyPair,
    event_type: str,
    stream: str,
    body: Mapping[str, Any],
    *,
    wait: bool = True,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Blocking :func:`publish_event` for the CLI."""
    return asyncio.run(
        publish_event(settings, key, event_type, stream, body, wait=wait, timeout=timeout)
    )
