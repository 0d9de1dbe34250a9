"""Runs and their receipts: ``run.manifest_approved``, ``run.started``,
``receipt.recorded`` and ``run.completed``.

A job's ``event_chain`` is the clawsig event chain of its lifecycle events
(``run.manifest_approved``, ``run.started``, ``run.completed``): each entry's
``payload_hash_b64u`` is b64u(SHA-256(JCS(event payload))) — the envelope's
``payload_hash_b64u`` for every event this ledger's producers sign — and its
``run_id`` is the job id. Gateway receipts bind to one of those entries.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ledger.bundles import chain_entry
from ledger.canonical import jcs
from ledger.checks import check_b64u_hash
from ledger.encoding import sha256_b64u
from ledger.errors import ManifestError, PolicyError, ReasonCode, ReceiptError, TokenError
from ledger.receipts import (
    check_receipt_binding,
    parse_receipt_bytes,
    validate_receipt_payload,
    verify_receipt_envelope,
)
from ledger.registry import EventBody, EventTypeSpec, RuleSettings
from ledger.roles import Role
from ledger.state import EventContext, LedgerState, ProjectionRow
from ledger.tokens import CLOCK_SKEW_SECONDS
from ledger.types._common import (
    JOB_ID,
    JTI,
    REVOKED,
    Array,
    Known,
    body_of,
    copy_json,
    epoch,
    holds_role,
    require_not_halted,
    require_role,
    require_stream,
    row,
    short,
    spec,
    usable_policy,
)
from ledger.urm import check_approvals, urm_hash_b64u, validate_urm

__all__ = [
    "SPECS",
    "ReceiptRecorded",
    "RunCompleted",
    "RunManifestApproved",
    "RunOutput",
    "RunStarted",
    "chain_payload_hash",
    "output_flags",
    "require_job",
    "require_job_stream",
]

JOB_APPROVED = "approved"
JOB_RUNNING = "running"
JOB_COMPLETED = "completed"


class ReceiptRecorded(EventBody):
    """A gateway receipt of one model call of a running job.

    ``receipt_envelope_json`` is the ``gateway_receipt`` envelope as the exact
    text the gateway signed.
    """

    job_id: str = Field(pattern=JOB_ID)
    receipt_envelope_json: str = Field(
        min_length=2, max_length=65_536, description="exact `gateway_receipt` envelope"
    )


class RunManifestApproved(EventBody):
    """A run manifest (URM) and its approvals: the job exists.

    Signed by the requester, who may not approve it.
    """

    job_id: str = Field(pattern=JOB_ID)
    urm_hash_b64u: str
    urm: dict[str, Any]
    approvals: Array[dict[str, Any]] = Field(max_length=50)

    _hash = field_validator("urm_hash_b64u")(check_b64u_hash)


class RunStarted(EventBody):
    """An approved job starts under a scoped token."""

    job_id: str = Field(pattern=JOB_ID)
    urm_hash_b64u: str
    cst_jti: str = Field(pattern=JTI)

    _hash = field_validator("urm_hash_b64u")(check_b64u_hash)


class RunOutput(BaseModel):
    """One output of a run; ``sha256`` (64 lowercase hex) is checked by the rule."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)
    name: str = Field(min_length=1, max_length=500)
    sha256: str = Field(max_length=200)


class RunCompleted(EventBody):
    """A running job ends with the hashes of its outputs."""

    job_id: str = Field(pattern=JOB_ID)
    outputs: Array[RunOutput] = Field(max_length=1000)


# --- helpers ----------------------------------------------------------------------


def chain_payload_hash(ctx: EventContext) -> str:
    """b64u(SHA-256(JCS(event payload))) — the event's chain ``payload_hash_b64u``."""
    return sha256_b64u(jcs(ctx.event.to_payload()))


def _append_chain(job: dict[str, Any], ctx: EventContext) -> None:
    chain = list(job.get("event_chain") or [])
    entry = chain_entry(
        event_id=ctx.event.event_id,
        run_id=str(job["run_id"]),
        event_type=ctx.event.event_type,
        timestamp=ctx.event.occurred_at,
        payload_hash_b64u=chain_payload_hash(ctx),
        prev_hash_b64u=chain[-1]["event_hash_b64u"] if chain else None,
    )
    job["event_chain"] = [*chain, entry]


def _advance(
    job: dict[str, Any], ctx: EventContext, status: str, verb: str, **fields: Any
) -> list[ProjectionRow]:
    """The job moves to ``status`` by this event: ``fields``, then ``{verb}_event_id`` and
    ``{verb}_at``; its event chain gains the event."""
    job.update(
        status=status,
        **fields,
        **{f"{verb}_event_id": ctx.event.event_id, f"{verb}_at": ctx.event.occurred_at},
    )
    _append_chain(job, ctx)
    return [row("jobs", "job_id", job)]


_JOBS = Known(
    "jobs",
    ManifestError,
    ReasonCode.JOB_UNKNOWN,
    "no approved job {!r} on the ledger",
    "submit its URM with `claw-ledger urm submit FILE --approval A.json --key K`",
)
_TOKENS = Known("tokens", TokenError, ReasonCode.TOKEN_UNKNOWN, "no token {} on the ledger")


def require_job(state: LedgerState, job_id: str) -> dict[str, Any]:
    """The record of an approved job, else ``JOB_UNKNOWN``."""
    return _JOBS.require(state, job_id)


def require_job_stream(state: LedgerState, ctx: EventContext, job_id: str) -> dict[str, Any]:
    """The record of the approved job whose stream ``job:<id>`` carries the event.

    A ``SCHEMA_VALIDATION_FAILED`` on another stream, else as :func:`require_job`.
    """
    require_stream(ctx, f"job:{job_id}")
    return require_job(state, job_id)


def _require_running(job: Mapping[str, Any], what: str) -> None:
    if job["status"] == JOB_APPROVED:
        raise ManifestError(
            ReasonCode.RUN_NOT_STARTED, f"{what}: job {job['job_id']} has not started"
        )
    if job["status"] == JOB_COMPLETED:
        raise ManifestError(
            ReasonCode.RUN_ALREADY_COMPLETED, f"{what}: job {job['job_id']} is already completed"
        )


def _is_sha256_hex(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def output_flags(
    expected: Sequence[Mapping[str, Any]], outputs: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """How the outputs differ from ``expected_outputs``: one flag per difference.

    ``hash_mismatch`` (expected hash differs), ``missing`` (expected, not
    produced) or ``unexpected`` (produced, not expected). An expected output
    with ``sha256: null`` matches any hash.
    """
    produced = {str(o["name"]): str(o["sha256"]) for o in outputs}
    wanted = {str(e["name"]): e.get("sha256") for e in expected}
    flags: list[dict[str, Any]] = []
    for name, sha in wanted.items():
        if name not in produced:
            flags.append(
                {"name": name, "flag": "missing", "expected_sha256": sha, "actual_sha256": None}
            )
        elif sha is not None and produced[name] != sha:
            flags.append(
                {
                    "name": name,
                    "flag": "hash_mismatch",
                    "expected_sha256": sha,
                    "actual_sha256": produced[name],
                }
            )
    for name, sha in produced.items():
        if name not in wanted:
            flags.append(
                {"name": name, "flag": "unexpected", "expected_sha256": None, "actual_sha256": sha}
            )
    return flags


# --- run.manifest_approved ------------------------------------------------------------


def _check_manifest_approved(
    state: LedgerState, ctx: EventContext, settings: RuleSettings, /
) -> None:
    body = body_of(ctx, RunManifestApproved)
    require_stream(ctx, f"job:{body.job_id}")
    if body.job_id in state.jobs:
        raise ManifestError(
            ReasonCode.JOB_ALREADY_APPROVED, f"job {body.job_id} already has an approved URM"
        )
    urm = validate_urm(body.urm)
    if urm.job.job_id != body.job_id:
        raise ManifestError(
            ReasonCode.URM_INVALID, f"the URM is for job {urm.job.job_id!r}, not {body.job_id!r}"
        )
    computed = urm_hash_b64u(body.urm)
    if computed != body.urm_hash_b64u:
        raise ManifestError(
            ReasonCode.URM_INVALID,
            f"urm_hash_b64u is {body.urm_hash_b64u}, the URM hashes to {computed}",
        )
    usable_policy(state, urm.policy.wpc_hash_b64u)
    check_approvals(
        body.approvals,
        urm,
        computed,
        requester_did=ctx.signer,
        is_approver=lambda did: holds_role(state, did, Role.APPROVER),
    )


def _apply_manifest_approved(
    state: LedgerState, ctx: EventContext, settings: RuleSettings, /
) -> list[ProjectionRow]:
    body = body_of(ctx, RunManifestApproved)
    urm = validate_urm(body.urm)
    job: dict[str, Any] = {
        "job_id": body.job_id,
        "run_id": body.job_id,
        "status": JOB_APPROVED,
        "urm_hash_b64u": body.urm_hash_b64u,
        "urm": copy_json(body.urm),
        # copies: the body shares its values with the parsed message
        "approvals": [copy_json(a) for a in body.approvals],
        "approver_dids": [str(a["approver_did"]) for a in body.approvals],
        "requester_did": ctx.signer,
        "wpc_hash_b64u": urm.policy.wpc_hash_b64u,
        "cst_scope_hash": urm.policy.cst_scope_hash,
        "policy_hash_pinning": urm.policy.policy_hash_pinning,
        "approved_event_id": ctx.event.event_id,
        "approved_at": ctx.event.occurred_at,
        "cst_jti": None,
        "sub": None,
        "token_scope_hash_b64u": None,
        "started_event_id": None,
        "started_at": None,
        "event_chain": [],
        "receipt_ids": [],
        "receipt_count": 0,
        "outputs": None,
        "output_flags": None,
        "outputs_match": None,
        "completed_event_id": None,
        "completed_at": None,
    }
    _append_chain(job, ctx)
    state.jobs[body.job_id] = job
    return [row("jobs", "job_id", job)]


# --- run.started ----------------------------------------------------------------------


def _check_started(state: LedgerState, ctx: EventContext, settings: RuleSettings, /) -> None:
    body = body_of(ctx, RunStarted)
    job = require_job_stream(state, ctx, body.job_id)
    if job["status"] == JOB_RUNNING:
        raise ManifestError(ReasonCode.RUN_ALREADY_STARTED, f"job {body.job_id} is already running")
    if job["status"] == JOB_COMPLETED:
        raise ManifestError(
            ReasonCode.RUN_ALREADY_COMPLETED, f"job {body.job_id} is already completed"
        )
    if body.urm_hash_b64u != job["urm_hash_b64u"]:
        raise ManifestError(
            ReasonCode.JOB_BINDING_MISMATCH,
            f"run.started names URM {body.urm_hash_b64u}, job {body.job_id} was approved"
            f" with {job['urm_hash_b64u']}",
        )
    require_not_halted(state, f"start of job {body.job_id}", job_id=body.job_id)
    token = _TOKENS.require(state, body.cst_jti)
    require_not_halted(state, f"start of job {body.job_id}", sub=str(token["sub"]))
    if token["status"] == REVOKED:
        raise TokenError(
            ReasonCode.TOKEN_REVOKED, f"token {body.cst_jti} was revoked: {token['revoked_reason']}"
        )
    now = epoch(ctx.event.occurred_at)
    if now >= int(token["exp"]):
        raise TokenError(ReasonCode.TOKEN_EXPIRED, f"token {body.cst_jti} has expired")
    if int(token["iat"]) > now + CLOCK_SKEW_SECONDS:
        raise TokenError(ReasonCode.TOKEN_BAD_LIFETIME, f"token {body.cst_jti} is not valid yet")
    if token["mission_id"] != body.job_id:
        bound = token["mission_id"]
        raise ManifestError(
            ReasonCode.JOB_BINDING_MISMATCH,
            f"token {body.cst_jti} is bound to "
            + (f"job {bound!r}" if bound else "no job")
            + f", not to job {body.job_id!r}",
        )
    pin = token["policy_hash_b64u"]
    if job["policy_hash_pinning"] and pin is None:
        raise PolicyError(
            ReasonCode.POLICY_PIN_MISMATCH,
            f"the URM requires a token pinned to WPC {job['wpc_hash_b64u']}; token"
            f" {body.cst_jti} has no pin",
        )
    if pin is not None and pin != job["wpc_hash_b64u"]:
        raise PolicyError(
            ReasonCode.POLICY_PIN_MISMATCH,
            f"token {body.cst_jti} is pinned to WPC {pin}, the job to {job['wpc_hash_b64u']}",
        )
    if token["token_scope_hash_b64u"] != job["cst_scope_hash"]:
        raise TokenError(
            ReasonCode.TOKEN_SCOPE_HASH_MISMATCH,
            f"token scope hash {token['token_scope_hash_b64u']} is not the URM's"
            f" {job['cst_scope_hash']}",
        )
    usable_policy(state, str(job["wpc_hash_b64u"]))


def _apply_started(
    state: LedgerState, ctx: EventContext, settings: RuleSettings, /
) -> list[ProjectionRow]:
    body = body_of(ctx, RunStarted)
    token = state.tokens[body.cst_jti]
    return _advance(
        state.jobs[body.job_id],
        ctx,
        JOB_RUNNING,
        "started",
        cst_jti=body.cst_jti,
        sub=token["sub"],
        token_scope_hash_b64u=token["token_scope_hash_b64u"],
    )


# --- receipt.recorded -----------------------------------------------------------------


def _verified_receipt(body: ReceiptRecorded) -> tuple[Any, dict[str, Any]]:
    document = parse_receipt_bytes(body.receipt_envelope_json)
    envelope = verify_receipt_envelope(document)
    return document, dict(envelope.payload)


def _check_receipt(state: LedgerState, ctx: EventContext, settings: RuleSettings, /) -> None:
    body = body_of(ctx, ReceiptRecorded)
    job = require_job_stream(state, ctx, body.job_id)
    _require_running(job, "receipt")
    require_not_halted(state, f"receipt for job {body.job_id}", job_id=body.job_id, sub=job["sub"])
    token = state.tokens.get(str(job["cst_jti"]))
    if token is None or token["status"] == REVOKED:
        raise TokenError(
            ReasonCode.TOKEN_REVOKED, f"the token of job {body.job_id} was revoked: no more calls"
        )
    document, payload = _verified_receipt(body)
    require_role(state, str(document["signer_did"]), Role.GATEWAY, "receipt")
    receipt_id = str(payload["receipt_id"])
    if receipt_id in job["receipt_ids"]:
        raise ReceiptError(
            ReasonCode.RECEIPT_ALREADY_RECORDED, f"receipt {receipt_id} is already recorded"
        )
    check_receipt_binding(
        payload,
        run_id=str(job["run_id"]),
        event_hashes=[entry["event_hash_b64u"] for entry in job["event_chain"]],
        policy_hash=str(job["wpc_hash_b64u"]),
        token_scope_hash_b64u=job["token_scope_hash_b64u"],
    )


def _apply_receipt(
    state: LedgerState, ctx: EventContext, settings: RuleSettings, /
) -> list[ProjectionRow]:
    body = body_of(ctx, ReceiptRecorded)
    document, payload = _verified_receipt(body)
    receipt = validate_receipt_payload(payload)
    job = state.jobs[body.job_id]
    job["receipt_ids"] = [*job["receipt_ids"], receipt.receipt_id]
    job["receipt_count"] = len(job["receipt_ids"])
    receipt_row: dict[str, Any] = {
        "receipt_id": receipt.receipt_id,
        "job_id": body.job_id,
        "run_id": receipt.binding.run_id,
        "event_hash_b64u": receipt.binding.event_hash_b64u,
        "nonce": receipt.binding.nonce,
        "gateway_id": receipt.gateway_id,
        "provider": receipt.provider,
        "model": receipt.model,
        "request_hash_b64u": receipt.request_hash_b64u,
        "response_hash_b64u": receipt.response_hash_b64u,
        "tokens_input": receipt.tokens_input,
        "tokens_output": receipt.tokens_output,
        "latency_ms": receipt.latency_ms,
        "receipt_timestamp": receipt.timestamp,
        "signer_did": str(document["signer_did"]),
        "receipt_envelope_raw": body.receipt_envelope_json,
        "recorded_event_id": ctx.event.event_id,
        "recorded_at": ctx.event.occurred_at,
    }
    return [row("jobs", "job_id", job), row("receipts", "receipt_id", receipt_row)]


def _summarize_receipt(body: Mapping[str, Any], /) -> str:
    # the timeline reads stored bodies and must not fail on an odd one
    try:
        payload = json.loads(body.get("receipt_envelope_json", "{}")).get("payload", {})
    except (ValueError, AttributeError):
        payload = {}
    return (
        f"{payload.get('provider', '?')}/{payload.get('model', '?')} "
        f"in={payload.get('tokens_input', '?')} out={payload.get('tokens_output', '?')} "
        f"run={short(payload.get('binding', {}).get('run_id', '?'))}"
    )


# --- run.completed --------------------------------------------------------------------


def _check_completed(state: LedgerState, ctx: EventContext, settings: RuleSettings, /) -> None:
    body = body_of(ctx, RunCompleted)
    job = require_job_stream(state, ctx, body.job_id)
    _require_running(job, "completion")
    names: set[str] = set()
    for output in body.outputs:
        if not _is_sha256_hex(output.sha256):
            raise ManifestError(
                ReasonCode.OUTPUT_HASH_INVALID,
                f"output {output.name!r}: sha256 must be 64 lowercase hex characters",
            )
        if output.name in names:
            raise ManifestError(
                ReasonCode.OUTPUT_HASH_INVALID, f"output {output.name!r} is listed twice"
            )
        names.add(output.name)


def _apply_completed(
    state: LedgerState, ctx: EventContext, settings: RuleSettings, /
) -> list[ProjectionRow]:
    body = body_of(ctx, RunCompleted)
    job = state.jobs[body.job_id]
    outputs = [{"name": o.name, "sha256": o.sha256} for o in body.outputs]
    flags = output_flags(list(job["urm"].get("expected_outputs") or []), outputs)
    return _advance(
        job,
        ctx,
        JOB_COMPLETED,
        "completed",
        outputs=outputs,
        output_flags=flags,
        outputs_match=not flags,
    )


#: event type, body, stream, roles, projections written; check, apply, timeline summary
# fmt: off
SPECS: tuple[EventTypeSpec, ...] = (
    spec("receipt.recorded", ReceiptRecorded, "job:<job_id>", "gateway", "jobs receipts",
         _check_receipt, _apply_receipt, _summarize_receipt),
    spec("run.manifest_approved", RunManifestApproved, "job:<job_id>", "runtime operator", "jobs",
         _check_manifest_approved, _apply_manifest_approved, "job_id urm_hash_b64u"),
    spec("run.started", RunStarted, "job:<job_id>", "runtime", "jobs",
         _check_started, _apply_started, "job_id cst_jti"),
    spec("run.completed", RunCompleted, "job:<job_id>", "runtime", "jobs",
         _check_completed, _apply_completed, "job_id outputs"),
)
# fmt: on
