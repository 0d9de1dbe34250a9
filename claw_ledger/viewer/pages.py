"""The Trust Pulse pages: timeline, run, halts, quarantine, verify, pulse records."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jinja2
import markupsafe
from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from claw_ledger.api.errors import ApiError
from claw_ledger.api.params import FilterText, Identifier, Position
from claw_ledger.names import EVENT_TYPES, REASON_CODES, KnownNames, UnknownNameError
from claw_ledger.shown import printable
from ledger.errors import ReasonCode
from ledger.instants import format_instant, in_utc
from ledger.offline_verify import VerificationResult, verify_bytes
from storage import viewer_queries
from storage.ledger_queries import TimelineFilter, list_quarantine, timeline_page
from storage.projection_queries import connection

__all__ = ["COOKIE_NAME", "VIEWER_ROLES", "ViewerBackend", "viewer_router"]

COOKIE_NAME = "claw_ledger_key"
#: API-key roles that may read the pages (``runtime`` only authorizes calls)
VIEWER_ROLES = frozenset({"reader", "operator", "admin"})
#: The largest file the verify form reads (a bundle of 10,000 receipts fits)
MAX_UPLOAD_BYTES = 16 * 1024 * 1024
PAGE_SIZE = 50


def _shown(value: Any) -> Any:
    """Every value a page shows, before HTML escaping: a right-to-left override
    in a halt's reason would otherwise reorder what the reviewer reads. A time
    is spelled as the API spells it (``2026-12-03T21:26:00.355000Z``), not as
    Python prints a datetime."""
    if isinstance(value, str) and not isinstance(value, markupsafe.Markup):
        return printable(value, lines=True)
    if isinstance(value, datetime) and value.utcoffset() is not None:
        return format_instant(value)
    return value


_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("claw_ledger.viewer", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    finalize=_shown,
)
_templates.filters["pretty"] = lambda value: json.dumps(value, indent=2, sort_keys=True)


@dataclass(frozen=True)
class ViewerBackend:
    """What the pages need from the service: the reader's database URL and a way
    to tell the role of an API key (None for an unknown or revoked key)."""

    reader_url: str
    role_of: Callable[[str], Awaitable[str | None]]


def _render(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _templates.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status)


def _presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.cookies.get(COOKIE_NAME) or None


def _blank_to_none(value: str | None) -> str | None:
    return value.strip() or None if value else None


def _known(names: KnownNames, value: str | None) -> str | None:
    """A filter field's known name (``None`` when blank); an unknown one raises
    :class:`UnknownNameError`, which the page shows above its empty table."""
    text = _blank_to_none(value)
    return None if text is None else names.resolve(text)


def _instant(value: str | None) -> datetime | None:
    """An RFC 3339 time from a filter field; a naive one is taken as UTC."""
    text = _blank_to_none(value)
    if text is None:
        return None
    moment = datetime.fromisoformat(text)
    return in_utc(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def _verdict(result: VerificationResult) -> dict[str, Any]:
    return result.to_dict()


async def _ledger_keys(conn: Any) -> list[str]:
    rows = await conn.fetch(
        "SELECT did FROM keys WHERE NOT revoked AND roles ? 'ledger' ORDER BY did"
    )
    return [str(r["did"]) for r in rows]


def _bundle_bytes(bundle: dict[str, Any]) -> bytes | None:
    for column in ("bundle_json", "bundle", "envelope_raw", "bundle_raw"):
        value = bundle.get(column)
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value)
        if isinstance(value, str):
            return value.encode("utf-8")
        if isinstance(value, dict):
            return json.dumps(value).encode("utf-8")
    return None


def viewer_router(backend: ViewerBackend) -> APIRouter:
    """The pages, mounted at ``/pulse`` by the API service."""

    async def require_viewer(request: Request) -> None:
        key = _presented_key(request)
        role = await backend.role_of(key) if key else None
        if role is not None and role not in VIEWER_ROLES:
            # a valid key of another role: logging in again would not help
            raise ApiError(
                403,
                ReasonCode.API_ROLE_FORBIDDEN,
                f"role {role} cannot read the Trust Pulse pages (reader, operator or admin can)",
            )
        if role is None:
            # a browser follows this to the login form and comes back after it
            raise HTTPException(
                status_code=303, headers={"Location": f"/pulse/login?next={request.url.path}"}
            )

    router = APIRouter(prefix="/pulse", include_in_schema=False)
    pages = APIRouter(dependencies=[Depends(require_viewer)])

    @router.get("/login")
    async def login_form(request: Request, next: str = "/pulse/timeline") -> Response:
        return _render("login.html", next=next if next.startswith("/pulse") else "/pulse/timeline")

    @router.post("/login")
    async def login(
        key: str = Form(max_length=200), next: str = Form("/pulse/timeline", max_length=500)
    ) -> Response:
        role = await backend.role_of(key.strip())
        target = next if next.startswith("/pulse/") else "/pulse/timeline"
        if role not in VIEWER_ROLES:
            return _render(
                "login.html",
                status=401 if role is None else 403,
                next=target,
                error="unknown or revoked key" if role is None else f"role {role} cannot read",
            )
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE_NAME, key.strip(), httponly=True, samesite="strict", path="/pulse"
        )
        return response

    @router.get("", include_in_schema=False)
    @router.get("/", include_in_schema=False)
    async def home() -> Response:
        # the address the README and `serve` give: the reviewer's first page
        return RedirectResponse("/pulse/timeline", status_code=307)

    @router.post("/logout")
    async def logout() -> Response:
        response = RedirectResponse("/pulse/login", status_code=303)
        response.delete_cookie(COOKIE_NAME, path="/pulse")
        return response

    @pages.get("/timeline")
    async def timeline(
        request: Request,
        stream: FilterText = None,
        event_type: FilterText = None,
        signer: FilterText = None,
        since: FilterText = None,
        until: FilterText = None,
        after: Position = 0,
    ) -> Response:
        try:
            start, end = _instant(since), _instant(until)
        except ValueError:
            return _render(
                "missing.html", status=400, what="time (use RFC 3339)", name=since or until
            )
        filters = {
            "stream": _blank_to_none(stream) or "",
            "event_type": _blank_to_none(event_type) or "",
            "signer": _blank_to_none(signer) or "",
            "since": since or "",
            "until": until or "",
        }
        try:
            known_type = _known(EVENT_TYPES, event_type)
        except UnknownNameError as exc:
            return _render("timeline.html", 400, rows=[], next=None, f=filters, error=str(exc))
        flt = TimelineFilter(
            stream=filters["stream"] or None,
            event_type=known_type,
            signer=filters["signer"] or None,
            since=start,
            until=end,
            after=after,
            limit=PAGE_SIZE,
        )
        result = await timeline_page(backend.reader_url, flt)
        filters["event_type"] = known_type or ""
        return _render("timeline.html", rows=result.rows, next=result.next_cursor, f=filters)

    @pages.get("/runs/{job_id}")
    async def run(request: Request, job_id: Identifier) -> Response:
        async with connection(backend.reader_url) as conn:
            view = await viewer_queries.run_view(conn, job_id)
            ledger_keys = await _ledger_keys(conn)
        if view is None:
            return _render("missing.html", status=404, what="run", name=job_id)
        verdict = None
        bundle = view["bundle"]
        raw = _bundle_bytes(bundle) if bundle else None
        if raw is not None:
            pin = ledger_keys[0] if ledger_keys else None
            verdict = _verdict(verify_bytes(raw, ledger_key=pin))
        return _render("run.html", view=view, verdict=verdict)

    @pages.get("/halts")
    async def halts(request: Request) -> Response:
        async with connection(backend.reader_url) as conn:
            windows = await viewer_queries.halt_windows(conn)
        return _render("halts.html", windows=windows)

    @pages.get("/quarantine")
    async def quarantine(
        request: Request, reason: FilterText = None, after: Position = 0
    ) -> Response:
        try:
            known_reason = _known(REASON_CODES, reason)
        except UnknownNameError as exc:
            return _render(
                "quarantine.html", 400, rows=[], next=None, reason=reason, error=str(exc)
            )
        result = await list_quarantine(
            backend.reader_url, reason=known_reason, after=after, limit=PAGE_SIZE
        )
        return _render(
            "quarantine.html", rows=result.rows, next=result.next_cursor, reason=known_reason or ""
        )

    @pages.get("/verify")
    async def verify_form(request: Request) -> Response:
        return _render("verify.html", verdict=None, filename=None)

    @pages.post("/verify")
    async def verify_upload(request: Request) -> Response:
        form = await request.form(max_files=1, max_fields=4)
        upload = form.get("file")
        ledger_key = form.get("ledger_key")
        if not isinstance(upload, UploadFile):
            return _render("verify.html", status=400, verdict=None, filename=None)
        raw = await upload.read(MAX_UPLOAD_BYTES + 1)
        if len(raw) > MAX_UPLOAD_BYTES:
            return _render("missing.html", status=413, what="file under 16 MiB", name="upload")
        pin = ledger_key.strip() if isinstance(ledger_key, str) and ledger_key.strip() else None
        result = verify_bytes(raw, ledger_key=pin)
        return _render("verify.html", verdict=_verdict(result), filename=upload.filename)

    @pages.get("/{pulse_id}")
    async def pulse(request: Request, pulse_id: Identifier) -> Response:
        async with connection(backend.reader_url) as conn:
            record = await viewer_queries.pulse_record(conn, pulse_id)
        if record is None:
            return _render("missing.html", status=404, what="Trust Pulse record", name=pulse_id)
        return _render("pulse.html", record=record)

    router.include_router(pages)
    return router
