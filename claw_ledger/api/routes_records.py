"""The projections: ``/v1/runs``, ``/v1/halts``, ``/v1/tokens``, ``/v1/policies``,
``/v1/pulse`` (rows as the rules wrote them, without processor bookkeeping)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request

from claw_ledger.api.auth import secured
from claw_ledger.api.deps import connection, not_found, served_feature_record
from claw_ledger.api.models import HaltsPage
from claw_ledger.api.params import Identifier
from ledger.errors import ReasonCode
from ledger.wpc import check_policy_hash
from storage import projection_queries as projections

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["records"])


@router.get("/runs/{job_id}", **secured("read"))
async def run(request: Request, job_id: Identifier) -> dict[str, Any]:
    """A job: URM, approvals, lifecycle, clawsig event chain, outputs, and its receipts."""
    async with connection(request) as conn:
        job = await projections.get_job(conn, job_id)
        if job is None:
            raise not_found(f"no job {job_id!r} on the ledger", ReasonCode.JOB_UNKNOWN)
        job["receipts"] = await projections.receipts_for(conn, job_id)
    return job


@router.get("/runs/{job_id}/bundle", **secured("read"))
async def run_bundle(request: Request, job_id: Identifier) -> dict[str, Any]:
    """The job's sealed proof bundle (verify it offline with `claw-ledger verify`)."""
    return await served_feature_record(
        request, "run_bundle", job_id, f"no sealed bundle for job {job_id!r}"
    )


@router.get("/halts", response_model=HaltsPage, **secured("read"))
async def halts(request: Request) -> dict[str, Any]:
    """The halts in force (`*`, `sub:<subject>`, `job:<id>`), oldest first, each as
    `claw-ledger halts --json` gives it (since, by whom, what it denies, tokens
    revoked, calls denied since)."""
    async with connection(request) as conn:
        rows = await projections.halt_status(conn)
    return {"halts": [projections.halt_document(row) for row in rows]}


@router.get("/tokens/{jti}", **secured("read"))
async def token(request: Request, jti: Identifier) -> dict[str, Any]:
    """What the ledger knows of a scoped token: claims, hashes and status; never the token.

    `expired` is computed now from `exp`; `status` is what the ledger recorded.
    """
    async with connection(request) as conn:
        row = await projections.get_token(conn, jti)
    if row is None:
        raise not_found(f"no token {jti!r} on the ledger", ReasonCode.TOKEN_UNKNOWN)
    return row | {"expired": int(row["exp"]) <= int(time.time())}


@router.get("/policies/{policy_hash}", **secured("read"))
async def policy(request: Request, policy_hash: Identifier) -> dict[str, Any]:
    """A WPC of the registry (any status) with its exact signed envelope."""
    check_policy_hash(policy_hash)
    async with connection(request) as conn:
        row = await projections.get_policy(conn, policy_hash)
    if row is None:
        raise not_found(f"no WPC {policy_hash} in the registry", ReasonCode.WPC_UNKNOWN)
    return projections.policy_document(row)


@router.get("/pulse/{pulse_id}", **secured("read"))
async def pulse(request: Request, pulse_id: Identifier) -> dict[str, Any]:
    """A Trust Pulse record."""
    return await served_feature_record(
        request, "pulse", pulse_id, f"no Trust Pulse record {pulse_id!r}"
    )
