"""``/healthz``, ``/readyz``, ``/metrics`` and ``POST /v1/authorize``."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from claw_ledger.api.auth import public, secured
from claw_ledger.api.authorize_path import AUTHORIZE_PATH, decide_body
from claw_ledger.api.errors import error_body
from claw_ledger.api.models import Health, Readiness
from claw_ledger.ledger_health import Snapshot, take_snapshot
from ledger.errors import ReasonCode
from storage.tlog_store import latest_checkpoint_time

__all__ = ["router"]

router = APIRouter()

#: a snapshot this young is reused (probes and scrapes may come in bursts)
_SNAPSHOT_REUSE_SECONDS = 1.0


async def current_snapshot(request: Request) -> Snapshot:
    """A fresh look at the ledger, one at a time (the counters count on from the last)."""
    state = request.app.state
    async with state.snapshot_lock:
        taken = getattr(state, "snapshot_at", 0.0)
        if time.monotonic() - taken < _SNAPSHOT_REUSE_SECONDS:
            snapshot: Snapshot = state.metrics.snapshot
            return snapshot
        config = state.config
        source = config.features.latest_checkpoint
        snapshot = await take_snapshot(
            topic=config.ingress_topic,
            acquire=state.pool.acquire,
            counters=state.counters,
            offsets=state.offsets,
            checkpoint_time=None if source is None else latest_checkpoint_time,
            timeout=config.probe_timeout,
        )
        state.metrics.snapshot = snapshot
        state.snapshot_at = time.monotonic()
        return snapshot


@router.get("/healthz", response_model=Health, tags=["service"], **public())
async def healthz() -> dict[str, str]:
    """The service process answers (nothing else is checked)."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Readiness,
    tags=["service"],
    responses={503: {"description": "Not ready (`API_NOT_READY`); the checks say why"}},
    **public(),
)
async def readyz(request: Request) -> Any:
    """Ready when Postgres and Kafka answer, the schema has the API's table, the
    processors' lag is within the bound (`serve --max-lag`), and a processor beat
    within `serve --max-beat-age` seconds."""
    snapshot = await current_snapshot(request)
    bounds = (request.app.state.config.max_lag, request.app.state.config.max_beat_age)
    body: dict[str, Any] = {"ready": snapshot.ready(*bounds), "checks": snapshot.readiness(*bounds)}
    if body["ready"]:
        return body
    failed = ", ".join(name for name, check in body["checks"].items() if not check["ok"])
    body |= error_body(ReasonCode.API_NOT_READY, f"not ready: {failed}")
    return JSONResponse(body, status_code=503)


@router.get(
    "/metrics",
    tags=["service"],
    response_class=Response,
    **secured(
        "read", {200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}}
    ),
)
async def metrics(request: Request) -> Response:
    """The ledger's figures in the Prometheus text format."""
    await current_snapshot(request)
    text = generate_latest(request.app.state.metrics.registry)
    return Response(text, media_type=CONTENT_TYPE_LATEST)


@router.post(AUTHORIZE_PATH, tags=["enforcement"], **secured("authorize"))
async def authorize(request: Request) -> dict[str, Any]:
    """Ask whether a tool or model call may run now (token, WPC, halts); the decision
    is recorded on the ledger as `call.authorized` or `call.denied`."""
    # served by claw_ledger.api.authorize_path in front of this route (ADR 0028);
    # this is what answers with the fast path off, with the same steps
    return await decide_body(request.app.state, await request.body())
