"""Ledger events: the payload of a ``ledger_event`` envelope, and building and signing one.

A ledger event is the payload of a clawsig envelope of type ``ledger_event``.
The payload carries ``event_type`` itself, so the signature covers the type
(the clawsig ``envelope_type`` sits outside the signature, docs/formats.md §2).
The body schema of each type is in the event-type registry (``ledger.types``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from ledger.canonical import plain_jcs_bytes
from ledger.checks import matching
from ledger.crypto import KeyPair
from ledger.encoding import b64u_encode
from ledger.envelope import (
    SignedEnvelope,
    envelope_bytes,
    format_timestamp,
    sign_envelope,
    signing_bytes,
)
from ledger.errors import EventError, ReasonCode
from ledger.registry import EventBody
from ledger.types import REGISTRY

__all__ = [
    "EVENT_ENVELOPE_TYPE",
    "EventBody",
    "LedgerEvent",
    "NewEvent",
    "build_event",
    "new_event_id",
    "parse_event_payload",
    "sign_event",
    "sign_event_bytes",
    "sign_events_bytes",
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

    # the form str(uuid.UUID(...)) prints, and nothing else
    _uuid = field_validator("event_id")(
        matching(_CANONICAL_UUID_RE, "event_id must be a lowercase hyphenated UUID")
    )
    _stream = field_validator("stream")(
        matching(_STREAM_RE, "stream must look like '<kind>:<id>', e.g. 'job:42'")
    )

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


_EVENT_VALIDATOR = LedgerEvent.__pydantic_validator__


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
        # the validators directly: model_validate's keyword handling was a tenth of the cost
        event = _EVENT_VALIDATOR.validate_python(
            payload if type(payload) is dict else dict(payload)
        )
        body = spec.body.__pydantic_validator__.validate_python(event.body)
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


def new_event_id() -> str:
    """A random (version 4) UUID in the form ``str(uuid.uuid4())`` prints."""
    # uuid.UUID's constructor was a tenth of the SDK's cost per event
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40
    raw[8] = raw[8] & 0x3F | 0x80
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


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
        "event_id": event_id or new_event_id(),
        "stream": stream,
        "occurred_at": occurred_at or format_timestamp(),
        "producer": producer.did,
        "body": body_dict,
    }
    event, _ = parse_event_payload(payload)
    return event


def sign_event(event: LedgerEvent, key: KeyPair, *, issued_at: str | None = None) -> SignedEnvelope:
    """Sign a built event; ``issued_at`` defaults to now."""
    if event.producer != key.did:
        raise EventError(ReasonCode.PRODUCER_MISMATCH, "event producer is not the signing key")
    # the validated fields as they are, keys already in JCS order: model_dump
    # would copy the whole body once more for nothing
    payload = {
        "body": event.body,
        "event_id": event.event_id,
        "event_type": event.event_type,
        "occurred_at": event.occurred_at,
        "producer": event.producer,
        "stream": event.stream,
    }
    return sign_envelope(EVENT_ENVELOPE_TYPE, payload, key, issued_at=issued_at)


_encode_string = json.encoder.encode_basestring


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to build and sign: the arguments of :func:`sign_event_bytes` as one value.

    ``occurred_at`` (RFC 3339) defaults to the time it is signed, and the
    envelope's ``issued_at`` is ``occurred_at``.
    """

    event_type: str
    stream: str
    body: Mapping[str, Any] | EventBody
    event_id: str | None = None
    occurred_at: str | None = None


class _Unsigned(NamedTuple):
    """An event checked and canonicalised, waiting for its signature."""

    event_id: str
    payload_jcs: bytes
    digest: str
    issued_at: str


def sign_event_bytes(
    key: KeyPair,
    event_type: str,
    stream: str,
    body: Mapping[str, Any] | EventBody,
    *,
    event_id: str | None = None,
    occurred_at: str | None = None,
    issued_at: str | None = None,
) -> tuple[str, bytes]:
    """Build, validate and sign one event straight to its wire bytes: ``(event_id, bytes)``.

    The bytes are exactly ``sign_event(build_event(...), key).to_bytes()``
    with the same id and times (``occurred_at`` defaults to now, ``issued_at``
    to ``occurred_at``), at the price of one body validation, one canonical
    encoding and the signature. The payload's other fields need no
    canonicaliser: their keys are ASCII in JCS order and their values strings.
    Anything in doubt (a body that is not plain JSON, a failed check) goes
    through :func:`build_event` and :func:`sign_event`, which raise the errors.
    """
    step = _prepare(key, event_type, stream, body, event_id, occurred_at, issued_at)
    if not isinstance(step, _Unsigned):
        return step
    return step.event_id, _envelope(key, step, key.sign(signing_bytes(step.digest)))


def sign_events_bytes(key: KeyPair, events: Iterable[NewEvent]) -> list[tuple[str, bytes]]:
    """:func:`sign_event_bytes` for many events, in the order given.

    Every event is checked and canonicalised first, then all are signed in one
    tight loop, then wrapped: measured, Ed25519 ran about 40 % slower when
    interleaved with the Python work of each event (its tables left the CPU
    caches). Raises :class:`EventError` for the first invalid event.
    """
    steps = [
        _prepare(key, e.event_type, e.stream, e.body, e.event_id, e.occurred_at, None)
        for e in events
    ]
    sign = key.sign
    signatures = [
        sign(signing_bytes(step.digest)) if isinstance(step, _Unsigned) else b"" for step in steps
    ]
    return [
        (step.event_id, _envelope(key, step, signature)) if isinstance(step, _Unsigned) else step
        for step, signature in zip(steps, signatures, strict=True)
    ]


def _prepare(
    key: KeyPair,
    event_type: str,
    stream: str,
    body: Mapping[str, Any] | EventBody,
    event_id: str | None,
    occurred_at: str | None,
    issued_at: str | None,
) -> _Unsigned | tuple[str, bytes]:
    """Check and canonicalise; an event in doubt is signed by the reference path."""
    spec = REGISTRY.get(event_type) if type(event_type) is str else None
    body_dict = body.model_dump(mode="json") if isinstance(body, EventBody) else body
    body_jcs = plain_jcs_bytes(body_dict) if type(body_dict) is dict else None
    slowly = (key, event_type, stream, body, event_id, occurred_at, issued_at)
    if (
        spec is None
        or body_jcs is None
        or type(stream) is not str
        or not stream.startswith(spec.stream_kind + ":")
        or not _STREAM_RE.fullmatch(stream)
        or (event_id is not None and not _is_canonical_uuid(event_id))
        or (occurred_at is not None and not _is_point_in_time(occurred_at))
    ):
        return _sign_event_bytes_slowly(*slowly)
    try:
        # what LedgerEvent.typed_body checks (model_validate_json: the body's JSON,
        # JSON mode, strict), without the classmethod's frame
        spec.body.__pydantic_validator__.validate_json(body_jcs)
    except ValidationError:
        return _sign_event_bytes_slowly(*slowly)
    event_id = event_id or new_event_id()
    occurred_at = occurred_at or format_timestamp()
    fields = (
        ',"event_id":"' + event_id
        + '","event_type":' + _encode_string(event_type)
        + ',"occurred_at":' + _encode_string(occurred_at)
        + ',"producer":"' + key.did
        + '","stream":' + _encode_string(stream)
        + "}"
    )  # fmt: skip
    try:
        payload_jcs = b'{"body":' + body_jcs + fields.encode("utf-8")
        (issued_at or "").encode("utf-8")
    except UnicodeEncodeError:
        return _sign_event_bytes_slowly(*slowly)
    digest = b64u_encode(hashlib.sha256(payload_jcs).digest())
    return _Unsigned(event_id, payload_jcs, digest, issued_at or occurred_at)


def _envelope(key: KeyPair, step: _Unsigned, signature: bytes) -> bytes:
    return envelope_bytes(
        EVENT_ENVELOPE_TYPE,
        step.payload_jcs,
        step.digest,
        b64u_encode(signature),
        key.did,
        step.issued_at,
    )


def _is_canonical_uuid(value: Any) -> bool:
    return type(value) is str and _CANONICAL_UUID_RE.fullmatch(value) is not None


def _is_point_in_time(value: Any) -> bool:
    """LedgerEvent's ``occurred_at`` check."""
    if type(value) is not str or not _RFC3339_RE.fullmatch(value):
        return False
    try:
        datetime.fromisoformat(value).astimezone(UTC)
    except (ValueError, OverflowError):
        return False
    return True


def _sign_event_bytes_slowly(
    key: KeyPair,
    event_type: str,
    stream: str,
    body: Mapping[str, Any] | EventBody,
    event_id: str | None,
    occurred_at: str | None,
    issued_at: str | None,
) -> tuple[str, bytes]:
    event = build_event(event_type, stream, body, key, event_id=event_id, occurred_at=occurred_at)
    envelope = sign_event(event, key, issued_at=issued_at or event.occurred_at)
    return event.event_id, envelope.to_bytes()


# Literal kept for type checkers that want to narrow on the envelope type.
LedgerEnvelopeType = Literal["ledger_event"]
