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
from binascii import b2a_base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from ledger.canonical import event_body_jcs, holds_index_keys
from ledger.checks import matching
from ledger.crypto import KeyPair
from ledger.encoding import CANONICAL_UUID_RE
from ledger.envelope import (
    SignedEnvelope,
    envelope_bytes,
    format_timestamp,
    sign_envelope,
)
from ledger.errors import EventError, ReasonCode
from ledger.registry import EventBody, EventTypeSpec
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

_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_STREAM_RE = re.compile(r"[a-z][a-z0-9_-]*:[^\s]{1,400}")
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
        matching(CANONICAL_UUID_RE, "event_id must be a lowercase hyphenated UUID")
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


#: hex digit of a UUID's variant nibble: the top two bits set to 10 (RFC 9562 §4.1)
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}
#: random ids minted ahead, taken from the end; a forked child starts afresh
_minted: list[str] = []
_MINT_BATCH = 256


def _mint() -> list[str]:
    text = os.urandom(16 * _MINT_BATCH).hex()
    return [
        f"{t[:8]}-{t[8:12]}-4{t[13:16]}-{_VARIANT[t[16]]}{t[17:20]}-{t[20:]}"
        for t in (text[i : i + 32] for i in range(0, 32 * _MINT_BATCH, 32))
    ]


if hasattr(os, "register_at_fork"):
    # a child holding the parent's minted ids would sign events under the same ids
    os.register_at_fork(after_in_child=_minted.clear)


def new_event_id() -> str:
    """A random (version 4) UUID in the form ``str(uuid.uuid4())`` prints."""
    # one urandom call per 256 ids: uuid.UUID's constructor, then a urandom call
    # per id, were a tenth of the SDK's cost per event. list.pop is atomic, so
    # threads never share an id; two refilling at once only mint more.
    try:
        return _minted.pop()
    except IndexError:
        _minted.extend(_mint())
        return _minted.pop()


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
    if isinstance(body, EventBody):
        body_dict = body.model_dump(mode="json")
    elif isinstance(body, Mapping):
        body_dict = dict(body)
    else:  # a caller's slip (None, a list): the same error tree as every bad body
        raise EventError(
            ReasonCode.SCHEMA_VALIDATION_FAILED,
            f"body: a JSON object is expected, not {type(body).__name__}",
        )
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
    #: b64u(SHA-256(payload_jcs)) as ASCII bytes: what the signature covers
    digest: bytes
    #: the JSON string (quoted, escaped, UTF-8) of the envelope's issued_at
    issued_at: bytes


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
    return step.event_id, _envelope(key, step, key.sign(step.digest))


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
    signatures = [sign(step.digest) if isinstance(step, _Unsigned) else b"" for step in steps]
    return [
        (step.event_id, _envelope(key, step, signature)) if isinstance(step, _Unsigned) else step
        for step, signature in zip(steps, signatures, strict=True)
    ]


class _Fixed(NamedTuple):
    """What one (signer, event type, stream) puts in every payload, checked once."""

    spec: EventTypeSpec
    #: ``","event_type":…,"occurred_at":"``
    middle: bytes
    #: ``","producer":"…","stream":…}``
    tail: bytes


#: (signer DID, event type, stream) -> its fixed payload parts; streams are
#: checked here once, not per event
_FIXED: dict[tuple[str, str, str], _Fixed | None] = {}
_FIXED_SIZE = 4096


def _fixed(key: KeyPair, event_type: Any, stream: Any) -> _Fixed | None:
    if type(event_type) is not str or type(stream) is not str:
        return None
    try:
        fixed = _FIXED[key.did, event_type, stream]
    except KeyError:
        fixed = _fixed_parts(key.did, event_type, stream)
        if len(_FIXED) >= _FIXED_SIZE:
            _FIXED.clear()
        _FIXED[(key.did, event_type, stream)] = fixed
    return fixed


def _fixed_parts(did: str, event_type: str, stream: str) -> _Fixed | None:
    """``None`` when the stream or type is in doubt: the reference path decides."""
    spec = REGISTRY.get(event_type)
    if (
        spec is None
        or not stream.startswith(spec.stream_kind + ":")
        or not _STREAM_RE.fullmatch(stream)
    ):
        return None
    try:
        middle = ('","event_type":' + _encode_string(event_type) + ',"occurred_at":"').encode()
        tail = ('","producer":"' + did + '","stream":' + _encode_string(stream) + "}").encode()
    except UnicodeEncodeError:
        return None
    return _Fixed(spec, middle, tail)


class _Wrapping(NamedTuple):
    """A signer's envelope around a payload, split where the per-event parts go."""

    head: bytes  # up to ``"issued_at":``
    payload: bytes  # ``,"payload":``
    digest: bytes  # ``,"payload_hash_b64u":"``
    signature: bytes  # ``","signature_b64u":"``
    tail: bytes  # ``","signer_did":…}``


_WRAPPINGS: dict[str, _Wrapping] = {}


def _wrapping(key: KeyPair) -> _Wrapping:
    wrapping = _WRAPPINGS.get(key.did)
    if wrapping is None:
        # envelope_bytes itself lays the envelope out, around markers no field holds
        laid = envelope_bytes(EVENT_ENVELOPE_TYPE, b"\x00P", "\x01", "\x02", key.did, "\x03")
        head, rest = laid.split(b'"\\u0003"')
        between, rest = rest.split(b"\x00P")
        hashed, rest = rest.split(b'\\u0001"')
        signed, tail = rest.split(b'\\u0002"')
        if len(_WRAPPINGS) >= _FIXED_SIZE:
            _WRAPPINGS.clear()
        wrapping = _WRAPPINGS[key.did] = _Wrapping(
            head, between, hashed, b'"' + signed, b'"' + tail
        )
    return wrapping


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
    fixed = _fixed(key, event_type, stream)
    if type(body) is dict:
        body_jcs = event_body_jcs(body)
    elif isinstance(body, EventBody):
        body_jcs = event_body_jcs(body.model_dump(mode="json"))
    else:
        body_jcs = None
    if (
        fixed is None
        or body_jcs is None
        or holds_index_keys(body_jcs)  # JavaScript's key order differs: sign_envelope's case
        or (event_id is not None and not _is_canonical_uuid(event_id))
        or (occurred_at is not None and not _is_point_in_time(occurred_at))
    ):
        return _sign_event_bytes_slowly(
            key, NewEvent(event_type, stream, body, event_id, occurred_at), issued_at
        )
    try:
        # what LedgerEvent.typed_body checks (model_validate_json: the body's JSON,
        # JSON mode, strict), without the classmethod's frame
        fixed.spec.body.__pydantic_validator__.validate_json(body_jcs)
        # issued_at is the one field no pattern vouches for: escaped, and UTF-8 or refused
        issued = _encode_string(issued_at).encode() if issued_at else None
    except (ValidationError, UnicodeEncodeError):
        return _sign_event_bytes_slowly(
            key, NewEvent(event_type, stream, body, event_id, occurred_at), issued_at
        )
    event_id = event_id or new_event_id()
    occurred_at = occurred_at or format_timestamp()
    # event_id and occurred_at passed their patterns (or were made here): ASCII, no escapes
    payload_jcs = b"".join(
        (
            b'{"body":',
            body_jcs,
            b',"event_id":"',
            event_id.encode(),
            fixed.middle,
            occurred_at.encode(),
            fixed.tail,
        )
    )
    # signing_bytes(b64u_encode(...)) without the round trip through str: a SHA-256
    # in base64 is 43 characters and one "=" of padding
    digest = b2a_base64(hashlib.sha256(payload_jcs).digest(), newline=False)[:43]
    return _Unsigned(
        event_id,
        payload_jcs,
        digest.translate(_TO_URLSAFE),
        issued or b'"' + occurred_at.encode() + b'"',
    )


def _envelope(key: KeyPair, step: _Unsigned, signature: bytes) -> bytes:
    """``envelope_bytes`` of the signed event (its layout, taken from it once per key)."""
    wrapping = _wrapping(key)
    # a base64url hash and signature are ASCII with nothing to escape
    return b"".join(
        (
            wrapping.head,
            step.issued_at,
            wrapping.payload,
            step.payload_jcs,
            wrapping.digest,
            step.digest,
            wrapping.signature,
            # 64 bytes are 86 base64 characters and two "=" of padding
            b2a_base64(signature, newline=False)[:86].translate(_TO_URLSAFE),
            wrapping.tail,
        )
    )


def _is_canonical_uuid(value: Any) -> bool:
    return type(value) is str and CANONICAL_UUID_RE.fullmatch(value) is not None


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
    key: KeyPair, new: NewEvent, issued_at: str | None
) -> tuple[str, bytes]:
    """The reference path: :func:`build_event` and :func:`sign_event` raise the errors."""
    event = build_event(
        new.event_type,
        new.stream,
        new.body,
        key,
        event_id=new.event_id,
        occurred_at=new.occurred_at,
    )
    envelope = sign_event(event, key, issued_at=issued_at or event.occurred_at)
    return event.event_id, envelope.to_bytes()


# Literal kept for type checkers that want to narrow on the envelope type.
LedgerEnvelopeType = Literal["ledger_event"]
