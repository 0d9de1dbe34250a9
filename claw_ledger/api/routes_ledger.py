"""``/v1/timeline``, ``/v1/events/{id}``, ``/v1/quarantine``, ``/v1/checkpoints/latest``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request
from pydantic import AwareDatetime

from claw_ledger.api.auth import error_schema, secured
from claw_ledger.api.deps import connection, feature_record, not_found, served_feature_record
from claw_ledger.api.errors import ApiError
from claw_ledger.api.models import EventDocument, QuarantinePage, TimelinePage
from claw_ledger.api.params import MAX_TEXT, NO_NUL, Cursor
from claw_ledger.names import EVENT_TYPES, REASON_CODES, KnownNames, UnknownNameError
from ledger.chain import chain_hash
from ledger.encoding import raw_as_text, sha256_b64u
from ledger.errors import ReasonCode
from ledger.instants import in_utc, with_instants
from ledger.timeline import summarize
from ledger.verify import Rejected, verify_message
from storage import ledger_queries as queries
from storage.api_queries import archived_event, event_by_id, quarantine_by_event_id
from storage.ledger_queries import TimelineFilter

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["ledger"])


def _limit(request: Request, limit: int) -> int:
    maximum: int = request.app.state.config.max_page
    if limit > maximum:
        raise ApiError(400, ReasonCode.API_BAD_PARAMETER, f"limit: at most {maximum} rows per page")
    return limit


TimelineCursor = Annotated[
    str | None,
    Query(
        max_length=48,
        pattern=r"^(\d{1,19}|t-?\d{1,19}\.\d{1,19})$",
        description="`next_cursor` of the previous page (opaque)",
    ),
]


def _known(names: KnownNames, parameter: str, text: str | None) -> str | None:
    """A filter value the ledger can hold (in any case); an unknown one would
    match nothing and read as "nothing happened", so it is refused."""
    if text is None:
        return None
    try:
        return names.resolve(text)
    except UnknownNameError as exc:
        raise ApiError(400, ReasonCode.API_BAD_PARAMETER, f"{parameter}: {exc}") from None


def _in_range(parameter: str, moment: datetime | None) -> datetime | None:
    """A time filter in UTC; one that UTC puts outside the years 1 to 9999 is a bad
    parameter, where the query would have failed as a server error."""
    try:
        return None if moment is None else in_utc(moment)
    except ValueError as exc:
        raise ApiError(400, ReasonCode.API_BAD_PARAMETER, f"{parameter}: {exc}") from None


def _parse_cursor(cursor: str | None, by_time: bool) -> tuple[int | None, datetime | None]:
    """(position, occurred_at) of a cursor (:func:`storage.ledger_queries.timeline_cursor`)."""
    if cursor is None:
        return None, None
    try:
        return queries.parse_timeline_cursor(cursor, by_time)
    except ValueError as exc:
        raise ApiError(400, ReasonCode.API_BAD_PARAMETER, f"cursor: {exc}") from None


@router.get("/timeline", response_model=TimelinePage, **secured("read"))
async def timeline(
    request: Request,
    stream: Annotated[
        str | None, Query(max_length=MAX_TEXT, pattern=NO_NUL, examples=["job:42"])
    ] = None,
    type: Annotated[
        str | None, Query(max_length=128, pattern=NO_NUL, examples=["token.issued"])
    ] = None,
    signer: Annotated[
        str | None, Query(max_length=MAX_TEXT, pattern=NO_NUL, description="a DID")
    ] = None,
    since: Annotated[AwareDatetime | None, Query(description="inclusive, RFC 3339")] = None,
    until: Annotated[AwareDatetime | None, Query(description="exclusive, RFC 3339")] = None,
    cursor: TimelineCursor = None,
    limit: Annotated[int, Query(ge=1, description="rows per page (service maximum applies)")] = 50,
) -> dict[str, Any]:
    """Ledger events, one keyset page at a time, with the CLI's filters.

    Oldest first in ledger order; with `since` or `until`, in `occurred_at` order
    (ties by position), so a time window is read from its index and never past it.
    """
    by_time = since is not None or until is not None
    after, after_time = _parse_cursor(cursor, by_time)
    flt = TimelineFilter(
        stream=stream,
        event_type=_known(EVENT_TYPES, "type", type),
        signer=signer,
        since=_in_range("since", since),
        until=_in_range("until", until),
        after=after,
        limit=_limit(request, limit),
        by_time=by_time,
        after_time=after_time,
    )
    async with connection(request) as conn:
        page = await queries.fetch_timeline(conn, flt)
    for row in page.rows:
        row["summary"] = summarize(row["event_type"], row["body"])
    more = page.next_cursor is not None and page.rows
    return {
        "rows": page.rows,
        "next_cursor": queries.timeline_cursor(page.rows[-1], by_time) if more else None,
    }


def _verification(row: dict[str, Any]) -> dict[str, Any]:
    raw = bytes(row["envelope_raw"])
    verdict = verify_message(raw, max_bytes=len(raw) + 1)
    expected_chain = chain_hash(
        row["prev_chain_hash"],
        row["kafka_partition"],
        row["ledger_seq"],
        row["event_id"],
        sha256_b64u(raw),
    )
    return {
        "envelope": verdict.code.value if isinstance(verdict, Rejected) else "OK",
        "envelope_sha256_matches": sha256_b64u(raw) == row["envelope_sha256"],
        "chain_hash_matches": expected_chain == row["chain_hash"],
    }


@router.get(
    "/events/{event_id}",
    response_model=EventDocument,
    **secured(
        "read",
        {
            404: error_schema("No such event (`API_NOT_FOUND`)"),
            410: error_schema("The event is in a detached partition (`API_EVENT_ARCHIVED`)"),
        },
    ),
)
async def event(request: Request, event_id: UUID) -> dict[str, Any]:
    """The exact signed envelope of an event and its verification status, re-checked now.

    A refused event answers `status: quarantined` with its reason code; one in a
    partition detached by `archive detach` answers 410 `API_EVENT_ARCHIVED`. The
    inclusion proof is given when the checkpointer is wired in and a checkpoint covers
    the event.
    """
    key = str(event_id)
    async with connection(request) as conn:
        row = await event_by_id(conn, key)
        if row is None:
            refused = await quarantine_by_event_id(conn, key)
            if refused is None:
                archived = await archived_event(conn, key)
                if archived is not None:
                    raise ApiError(
                        410,
                        ReasonCode.API_EVENT_ARCHIVED,
                        f"event {key} (position {archived['position']:,}) is archived:"
                        f" positions below {archived['before_position']:,} were detached"
                        f" from the events table on {archived['detached_at']:%Y-%m-%d}"
                        f" (partition {archived['partition_name']}); attach that partition"
                        ' again to read it (docs/operations.md, "Archiving old events")',
                    )
                raise not_found(f"no event {key} in the ledger or its quarantine")
            return with_instants(
                {
                    "event_id": key,
                    "status": "quarantined",
                    "reason_code": refused["reason_code"],
                    "detail": refused["detail"],
                    **raw_as_text(bytes(refused["raw"])),
                    "received_at": refused["received_at"],
                    "kafka_topic": refused["kafka_topic"],
                    "kafka_partition": refused["kafka_partition"],
                    "kafka_offset": refused["kafka_offset"],
                }
            )
        proof = None
        if request.app.state.config.features.inclusion_proof is not None:
            proof = await feature_record(request, conn, "inclusion_proof", key)
    raw = bytes(row.pop("envelope_raw"))
    # the extra fields of EventDocument are written as they are: spell the times here
    return with_instants(row) | {
        "status": "committed",
        "envelope": raw.decode("utf-8"),
        "verification": _verification(row | {"envelope_raw": raw}),
        "inclusion_proof": proof,
    }


@router.get("/quarantine", response_model=QuarantinePage, **secured("read"))
async def quarantine(
    request: Request,
    reason: Annotated[
        str | None,
        Query(
            max_length=64, pattern=NO_NUL, description="a reason code", examples=["UNKNOWN_SIGNER"]
        ),
    ] = None,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1)] = 50,
) -> dict[str, Any]:
    """Messages the processors refused, oldest first, with their reason codes."""
    async with connection(request) as conn:
        page = await queries.fetch_quarantine(
            conn,
            reason=_known(REASON_CODES, "reason", reason),
            after=cursor or 0,
            limit=_limit(request, limit),
        )
    for row in page.rows:
        row |= raw_as_text(bytes(row["raw"]))
    return {"rows": page.rows, "next_cursor": page.next_cursor}


@router.get("/checkpoints/latest", **secured("read"))
async def latest_checkpoint(request: Request) -> dict[str, Any]:
    """The newest signed checkpoint of the ledger's transparency log (C2SP signed note)."""
    return await served_feature_record(
        request, "latest_checkpoint", "latest", "no checkpoint has been signed yet"
    )
