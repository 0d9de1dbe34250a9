"""Ledger events: the payload of a ``ledger_event`` envelope, and building and signing one.

A ledger event is the payload of a clawsig envelope of type ``ledger_event``.
The payload carries ``event_type`` itself, so the signature covers the type
(the clawsig ``envelope_type`` sits outside the signature, formats.md §2).
The body schema of each type is in the event-type registry (``ledger.types``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from ledger.crypto import KeyPair
from ledger.envelope import SignedEnvelope, format_timestamp, sign_envelope
from ledger.errors import EventError, ReasonCode
from ledger.registry import EventBody
from ledger.types import REGISTRY

__all__ = [
    "EVENT_ENVELOPE_TYPE",
    "EventBody",
    "LedgerEvent",
    "build_event",
    "parse_event_payload",
    "sign_event",
]

EVENT_ENVELOPE_TYPE = "ledger_event"

_STREAM_RE = re.compile(r"[a-z][a-z0-9_-]*:[^\s]{1,400}")
_CANONICAL_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_RFC3339_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})")


class LedgerEvent(BaseModel):
    """The signed payload of a ``ledger_event`` envelope."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    event_type: str
    event_id: str
    stream: str
    occurred_at: str
    producer: str
    body: dict[str, Any]

    @field_validator("event_id")
    @classmethod
    def _uuid(cls, value: str) -> str:
        # the form str(uuid.UUID(...)) prints, and nothing else
        if not _CANONICAL_UUID_RE.fullmatch(value):
            raise ValueError("event_id must be a lowercase hyphenated UUID")
        return value

    @field_validator("stream")
    @classmethod
    def _stream(cls, value: str) -> str:
        if not _STREAM_RE.fullmatch(value):
            raise ValueError("stream must look like '<kind>:<id>', e.g. 'job:42'")
        return value

    @field_validator("occurred_at")
    @classmethod
    def _time(cls, value: str) -> str:
        if not _RFC3339_RE.fullmatch(value):
            raise ValueError("occurred_at must be an RFC 3339 timestamp")
        # the shape alone let 2026-02-30 or a 99:00 offset through, and the
        # processor then failed to store the row (every retry, the same event)
        try:
            datetime.fromisoformat(value).astimezone(UTC)
        except (ValueError, OverflowError):
            raise ValueError("occurred_at is not a real point in time") from None
        return value

    def typed_body(self) -> EventBody:
        return REGISTRY[self.event_type].body.model_validate(self.body)

    def to_payload(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def parse_event_payload(payload: Mapping[str, Any]) -> tuple[LedgerEvent, EventBody]:
    """Validate a ``ledger_event`` payload and its typed body.

    The payload is validated as it was parsed, never re-serialised: a body
    holds only what strict validation of JSON would accept (no coercion; a
    JSON array fills a tuple field and a string an enum field).

    Raises :class:`EventError` with ``UNKNOWN_EVENT_TYPE`` or
    ``SCHEMA_VALIDATION_FAILED``.
    """
    event_type = payload.get("event_type")
    spec = REGISTRY.get(event_type) if isinstance(event_type, str) else None
    if spec is None:
        raise EventError(ReasonCode.UNKNOWN_EVENT_TYPE, f"unknown event_type {event_type!r}")
    try:
        event = LedgerEvent.model_validate(payload if type(payload) is dict else dict(payload))
        body = spec.body.model_validate(event.body)
    except ValidationError as exc:
        raise EventError(ReasonCode.SCHEMA_VALIDATION_FAILED, _summarise(exc)) from exc
    kind = spec.stream_kind
    if not event.stream.startswith(kind + ":"):
        raise EventError(
            ReasonCode.SCHEMA_VALIDATION_FAILED,
            f"{event_type} events belong on a '{kind}:<id>' stream, not {event.stream!r}",
        )
    return event, body


def _summarise(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "payload"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def build_event(
    event_type: str,
    stream: str,
    body: Mapping[str, Any] | EventBody,
    producer: KeyPair,
    *,
    event_id: str | None = None,
    occurred_at: str | None = None,
) -> LedgerEvent:
    """Build and validate an event (raises EventError on a bad body)."""
    body_dict = body.model_dump(mode="json") if isinstance(body, EventBody) else dict(body)
    payload = {
        "event_type": event_type,
        "event_id": event_id or str(uuid.uuid4()),
        "stream": stream,
        "occurred_at": occurred_at or format_timestamp(),
        "producer": producer.did,
        "body": body_dict,
    }
    event, _ = parse_event_payload(payload)
    return event


def sign_event(event: LedgerEvent, key: KeyPair) -> SignedEnvelope:
    if event.producer != key.did:
        raise EventError(ReasonCode.PRODUCER_MISMATCH, "event producer is not the signing key")
    return sign_envelope(EVENT_ENVELOPE_TYPE, event.to_payload(), key)


# Literal kept for type checkers that want to narrow on the envelope type.
LedgerEnvelopeType = Literal["ledger_event"]
