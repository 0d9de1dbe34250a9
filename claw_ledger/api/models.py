"""Response documents of the HTTP API (they make its OpenAPI description)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

from ledger.instants import format_instant

__all__ = [
    "ErrorBody",
    "ErrorDetail",
    "EventDocument",
    "HaltsPage",
    "Health",
    "QuarantinePage",
    "QuarantineRow",
    "Readiness",
    "TimelinePage",
    "TimelineRow",
    "Verification",
]

#: a time the ledger recorded, written as ``2026-02-12T00:00:00.000000Z`` (one width:
#: text order is time order)
Instant = Annotated[
    datetime,
    PlainSerializer(format_instant, return_type=str, when_used="json"),
    WithJsonSchema(
        {"type": "string", "format": "date-time", "examples": ["2026-02-12T00:00:12.500000Z"]}
    ),
]


class ErrorDetail(BaseModel):
    reason_code: str = Field(examples=["API_KEY_MISSING"])
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class TimelineRow(BaseModel):
    position: int
    event_id: str
    event_type: str
    stream: str
    producer: str
    occurred_at: Instant
    recorded_at: Instant
    #: the lane's topic (ingress or control, ADR 0024): with the partition, the chain
    kafka_topic: str
    kafka_partition: int
    ledger_seq: int
    chain_hash: str
    summary: str
    body: dict[str, Any]


class TimelinePage(BaseModel):
    rows: list[TimelineRow]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page (opaque); null on the last page"
    )


class Verification(BaseModel):
    """Checks re-run by the service on the stored bytes at the time of the request."""

    envelope: str = Field(description="`OK`, or the reason code of steps 1–3 (formats.md §11)")
    envelope_sha256_matches: bool
    chain_hash_matches: bool


class EventDocument(BaseModel):
    model_config = ConfigDict(extra="allow")

    event_id: str
    status: Literal["committed", "quarantined"]
    envelope: str | None = Field(
        None, description="The exact signed envelope as received (committed events)"
    )
    verification: Verification | None = None
    inclusion_proof: dict[str, Any] | None = Field(
        None, description="Merkle inclusion proof to the newest checkpoint, when one covers it"
    )
    reason_code: str | None = Field(None, description="Why it was quarantined")


class QuarantineRow(BaseModel):
    id: int
    reason_code: str
    detail: str
    event_id: str | None
    signer_did: str | None
    raw_size: int
    kafka_topic: str
    kafka_partition: int
    kafka_offset: int
    received_at: Instant
    raw: str = Field(
        description="The refused bytes exactly: as text when they are UTF-8, else base64"
    )
    raw_encoding: Literal["utf-8", "base64"]


class QuarantinePage(BaseModel):
    rows: list[QuarantineRow]
    next_cursor: int | None


class HaltsPage(BaseModel):
    halts: list[dict[str, Any]]


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, dict[str, Any]]
