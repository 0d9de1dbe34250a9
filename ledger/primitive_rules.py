"""The rules of the claw primitives: WPCs, scoped tokens, receipts, runs, halts.

Each event type gets a :class:`~ledger.state.Rule`: ``check`` refuses with a
reason code (fail closed: whatever is unknown, revoked, expired, halted or
mismatched is refused), ``apply`` updates :class:`~ledger.state.LedgerState`
and returns the projection rows. Rules are registered when this module is
imported (and again, with settings, by :func:`register_all`).

Projection tables (``migrations/0002_claw_primitives.sql``); in each, the
state record and the row values are the same JSON-able dict:

* ``policies`` keyed by ``policy_hash_b64u``, ``tokens`` by ``jti``,
  ``jobs`` by ``job_id``, ``halts`` by ``target`` (loaded into the state);
* ``receipts`` keyed by ``receipt_id`` (written only; the rules keep the
  receipt ids of a job in its ``jobs`` row).

A job's ``event_chain`` is the clawsig event chain of its lifecycle events
(``run.manifest_approved``, ``run.started``, ``run.completed``): each entry's
``payload_hash_b64u`` is b64u(SHA-256(JCS(event payload))) — the envelope's
``payload_hash_b64u`` for every event this ledger's producers sign — and its
``run_id`` is the job id. Gateway receipts bind to one of those entries.

Halts: ``agent.halted`` with target ``*``, ``sub:<S>`` or ``job:<J>``. While
a halt covers a job or the subject of its token, ``run.started``,
``receipt.recorded`` and ``token.issued`` for it are refused with
``AGENT_HALTED``; ``agent.resumed`` for the same target lifts it (resuming
``*`` lifts only the ``*`` halt). Halting an already halted target is
accepted (a kill switch is never refused); resuming one that is not halted is
refused with ``HALT_NOT_ACTIVE``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ledger.bundles import chain_entry
from ledger.canonical import jcs
from ledger.crypto import kid_for_public_key, public_key_from_did
from ledger.encoding import sha256_b64u
from ledger.errors import (
    EventError,
    ManifestError,
    PolicyError,
    ReasonCode,
    ReceiptError,
    TokenError,
)
from ledger.events import (
    AgentHalted,
    AgentResumed,
    PolicyPublished,
    PolicyRevoked,
    PolicySuperseded,
    ReceiptRecorded,
    RunCompleted,
    RunManifestApproved,
    RunStarted,
    TokenIssued,
    TokenRevoked,
)
from ledger.receipts import (
    check_receipt_binding,
    parse_receipt_bytes,
    validate_receipt_payload,
    verify_receipt_envelope,
)
from ledger.roles import Role
from ledger.state import EventContext, LedgerState, ProjectionRow, Rule, register_rule
from ledger.tokens import (
    CLOCK_SKEW_SECONDS,
    DEFAULT_MAX_TTL_SECONDS,
    HARD_MAX_TTL_SECONDS,
    check_lifetime,
    token_scope_hash_b64u,
)
from ledger.urm import check_approvals, urm_hash_b64u, validate_urm
from ledger.wpc import check_policy_hash, parse_wpc_envelope_bytes, verify_wpc_envelope

__all__ = [
    "PRIMITIVE_EVENT_TYPES",
    "RuleSettings",
    "active_halt",
    "chain_payload_hash",
    "output_flags",
    "register_all",
    "settings",
    "usable_policy",
]

JOB_APPROVED = "approved"
JOB_RUNNING = "running"
JOB_COMPLETED = "completed"
ACTIVE = "active"
REVOKED = "revoked"
SUPERSEDED = "superseded"


@dataclass
class RuleSettings:
    #: ``exp - iat`` allowed for a recorded token (at most ``HARD_MAX_TTL_SECONDS``)
    max_token_ttl_seconds: int = DEFAULT_MAX_TTL_SECONDS


settings = RuleSettings()


# --- helpers ----------------------------------------------------------------------


_SCALAR_TYPES: frozenset[type] = frozenset({str, int, float, bool, type(None)})


def _copy_json(value: Any) -> Any:
    """A copy of JSON-shaped data (dicts, lists, scalars): what rows hold.

    ``copy.deepcopy`` did the same at many times the cost, once per event;
    scalars are shared, since they are immutable.
    """
    if type(value) in _SCALAR_TYPES:
        return value
    if isinstance(value, dict):
        return {k: v if type(v) in _SCALAR_TYPES else _copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [v if type(v) in _SCALAR_TYPES else _copy_json(v) for v in value]
    return value


def _row(table: str, key: str, record: Mapping[str, Any]) -> ProjectionRow:
    return ProjectionRow(
        table, key, _copy_json(record if isinstance(record, dict) else dict(record))
    )


def _require_stream(ctx: EventContext, expected: str) -> None:
    if ctx.event.stream != expected:
        raise EventError(
            ReasonCode.SCHEMA_VALIDATION_FAILED,
            f"{ctx.event.event_type} for this subject belongs on stream {expected!r},"
            f" not {ctx.event.stream!r}",
        )


def _epoch(timestamp: str) -> int:
    return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp())


def _holds_role(state: LedgerState, did: str, role: Role) -> bool:
    record = state.keys.get(did)
    return record is not None and not record.revoked and role in record.roles


def _require_role(state: LedgerState, did: str, role: Role, what: str) -> None:
    record = state.keys.get(did)
    if record is None:
        raise EventError(ReasonCode.UNKNOWN_SIGNER, f"{what} signer {did} is not registered")
    if record.revoked:
        raise EventError(ReasonCode.SIGNER_REVOKED, f"{what} signer {did} was revoked")
    if role not in record.roles:
        raise EventError(
            ReasonCode.ROLE_NOT_ALLOWED, f"{what} signer {did} does not hold the {role} role"
        )


def active_halt(
    state: LedgerState, *, job_id: str | None = None, sub: str | None = None
) -> dict[str, Any] | None:
    """The active halt covering this job or subject (``*`` covers all), if any."""
    targets = ["*"]
    if job_id:
        targets.append(f"job:{job_id}")
    if sub:
        targets.append(f"sub:{sub}")
    for target in targets:
        record = state.halts.get(target)
        if record is not None and record.get("active"):
            return record
    return None


def _require_not_halted(
    state: LedgerState, what: str, *, job_id: str | None = None, sub: str | None = None
) -> None:
    halt = active_halt(state, job_id=job_id, sub=sub)
    if halt is not None:
        raise EventError(
            ReasonCode.AGENT_HALTED,
            f"{what} refused: halt {halt['target']!r} is active ({halt['reason']})",
            hint=f"`claw-ledger resume {halt['target']} --reason ...` lifts it",
        )


def usable_policy(
    state: LedgerState, policy_hash: str, *, allow_superseded: bool = False
) -> dict[str, Any]:
    """The registry record of a WPC that may be used now, else a ``PolicyError``.

    ``MALFORMED_POLICY_HASH``, ``WPC_UNKNOWN``, ``WPC_REVOKED``, ``WPC_SUPERSEDED``.
    """
    check_policy_hash(policy_hash)
    record = state.policies.get(policy_hash)
    if record is None:
        raise PolicyError(
            ReasonCode.WPC_UNKNOWN,
            f"no WPC {policy_hash} in the registry",
            hint="publish it first with `claw-ledger wpc publish FILE --key K`",
        )
    if record["status"] == REVOKED:
        raise PolicyError(
            ReasonCode.WPC_REVOKED, f"WPC {policy_hash} was revoked: {record['revoked_reason']}"
        )
    if record["status"] == SUPERSEDED and not allow_superseded:
        raise PolicyError(
            ReasonCode.WPC_SUPERSEDED,
            f"WPC {policy_hash} was superseded by {record['superseded_by']}",
        )
    return record


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


def _job(state: LedgerState, job_id: str) -> dict[str, Any]:
    job = state.jobs.get(job_id)
    if job is None:
        raise ManifestError(
            ReasonCode.JOB_UNKNOWN,
            f"no approved job {job_id!r} on the ledger",
            hint="submit its URM with `claw-ledger urm submit FILE --approval A.json --key K`",
        )
    return job


def _require_running(job: Mapping[str, Any], what: str) -> None:
    if job["status"] == JOB_APPROVED:
        raise ManifestError(
            ReasonCode.RUN_NOT_STARTED, f"{what}: job {job['job_id']} has not started"
        )
    if job["status"] == JOB_COMPLETED:
        raise ManifestError(
            ReasonCode.RUN_ALREADY_COMPLETED, f"{what}: job {job['job_id']} is already completed"
        )


# --- policies ---------------------------------------------------------------------


def _check_policy_published(state: LedgerState, ctx: EventContext) -> None:
    body = ctx.body
    assert isinstance(body, PolicyPublished)
    _require_stream(ctx, f"policy:{body.policy_hash_b64u}")
    if body.policy_hash_b64u in state.policies:
        raise PolicyError(
            ReasonCode.WPC_ALREADY_PUBLISHED,
            f"WPC {body.policy_hash_b64u} is already in the registry"
            f" ({state.policies[body.policy_hash_b64u]['status']})",
        )
    document = parse_wpc_envelope_bytes(body.wpc_envelope_json.encode("utf-8"))
    verified = verify_wpc_envelope(document, expected_hash=body.policy_hash_b64u)
    _require_role(state, verified.publisher_did, Role.POLICY_ADMIN, "WPC")


def _apply_policy_published(state: LedgerState, ctx: EventContext) -> list[ProjectionRow]:
    body = ctx.body
    assert isinstance(body, PolicyPublished)
    envelope = parse_wpc_envelope_bytes(body.wpc_envelope_json.encode("utf-8"))
    verified = verify_wpc_envelope(envelope, expected_hash=body.policy_hash_b64u)
    record: dict[str, Any] = {
        "policy_hash_b64u": body.policy_hash_b64u,
        "status": ACTIVE,
        "publisher_did": verified.publisher_did,
        "published_by": ctx.signer,
        "issuer": verified.document.issuer,
        "halt_mode": verified.document.halt_mode,
        "wpc_envelope_raw": body.wpc_envelope_json,
        "wpc_envelope": envelope,
        "published_event_id": ctx.event.event_id,
        "published_at": ctx.event.occurred_at,
        "supersedes": [],
        "superseded_by": None,
        "superseded_at": None,
        "revoked_reason": None,
        "revoked_by": None,
        "revoked_at": None,
    }
    state.policies[body.policy_hash_b64u] = record
    return [_row("policies", "policy_hash_b64u", record)]


def _check_policy_superseded(state: LedgerState, ctx: EventContext) -> None:
    body = ctx.body
    assert isinstance(body, PolicySuperseded)
    _require_stream(ctx, f"policy:{body.old_policy_hash_b64u}")
    if body.old_policy_hash_b64u == body.new_policy_hash_b64u:
        raise PolicyError(ReasonCode.WPC_INVALID, "a WPC cannot supersede itself")
    usable_policy(state, body.old_policy_hash_b64u)
    usable_policy(state, body.new_policy_hash_b64u)


def _apply_policy_superseded(state: LedgerState, ctx: EventContext) -> list[ProjectionRow]:
    body = ctx.body
    assert isinstance(body, PolicySuperseded)
    old = state.policies[body.old_policy_hash_b64u]
    new = state.policies[body.new_policy_hash_b64u]
    old.update(
        status=SUPERSEDED,
        superseded_by=body.new_policy_hash_b64u,
        superseded_at=ctx.event.occurred_at,
    )
    new["supersedes"] = [*new.get("supersedes", []), body.old_policy_hash_b64u]
    return [_row("policies", "policy_hash_b64u", old), _row("policies", "policy_hash_b64u", new)]


def _check_policy_revoked(state: LedgerState, ctx: EventContext) -> None:
    body = ctx.body
    assert isinstance(body, PolicyRevoked)
    _require_stream(ctx, f"policy:{body.policy_hash_b64u}")
    record = state.policies.get(body.policy_hash_b64u)
    if record is None:
        raise PolicyError(ReasonCode.WPC_UNKNOWN, f"no WPC {body.policy_hash_b64u} in the registry")
    if record["status"] == REVOKED:
        raise PolicyError(ReasonCode.WPC_REVOKED, f"WPC {body.policy_hash_b64u} is already revoked")


def _apply_policy_revoked(state: LedgerState, ctx: EventContext) -> list[ProjectionRow]:
    body = ctx.body
    assert isinstance(body, PolicyRevoked)
    record = state.policies[body.policy_hash_b64u]
    record.update(
        status=REVOKED,
        revoked_reason=body.reason,
        revoked_by=ctx.signer,
        revoked_at=ctx.event.occurred_at,
    )
    return [_row("policies", "policy_hash_b64u", record)]


# --- tokens -----------------------------------------------------------------------


def _token_claims(body: TokenIssued) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "sub": body.sub,
        "aud": body.aud if isinstance(body.aud, str) else list(body.aud),
        "scope": list(body.scope),
    }
    if body.policy_hash_b64u is not None:
        claims["policy_hash_b64u"] = body.policy_hash_b64u
    if body.mission_id is not None:
        claims["mission_id"] = body.mission_id
    return claims


def _check_token_issued(state: LedgerState, ctx: EventContext) -> None:
    body = ctx.body
    assert isinstance(body, TokenIssued)
    _require_stream(ctx, f"token:{body.jti}")
    if body.issuer_did != ctx.signer:
        raise EventError(
            ReasonCode.PRODUCER_MISMATCH,
            f"token issuer {body.issuer_did} is not the signer of the event {ctx.signer}",
        )
    if body.kid != kid_for_public_key(bytes(public_key_from_did(body.issuer_did))):
        raise TokenError(ReasonCode.TOKEN_MALFORMED, f"kid {body.kid} does not name the issuer key")
    if body.jti in state.tokens:
        raise TokenError(ReasonCode.TOKEN_ALREADY_ISSUED, f"token {body.jti} is already recorded")
    if body.policy_hash_b64u is not None:
        check_policy_hash(body.policy_hash_b64u)
    computed = token_scope_hash_b64u(_token_claims(body))  # TOKEN_EMPTY_SCOPE on empty scope
    check_lifetime(body.iat, body.exp, max_ttl_seconds=settings.max_token_ttl_seconds)
    now = _epoch(ctx.event.occurred_at)
    if body.exp <= now:
        raise TokenError(
            ReasonCode.TOKEN_EXPIRED, f"token {body.jti} expired before it was recorded"
        )
    if body.iat > now + CLOCK_SKEW_SECONDS:
        raise TokenError(ReasonCode.TOKEN_BAD_LIFETIME, f"token {body.jti} is issued in the future")
    if computed != body.token_scope_hash_b64u:
        raise TokenError(
            ReasonCode.TOKEN_SCOPE_HASH_MISMATCH,
            f"token_scope_hash_b64u is {body.token_scope_hash_b64u}, the claims hash to {computed}",
        )
    if body.policy_hash_b64u is not None:
        usable_policy(state, body.policy_hash_b64u)
    _require_not_halted(state, f"token {body.jti}", job_id=body.mission_id, sub=body.sub)


def _apply_token_issued(state: LedgerState, ctx: EventContext) -> list[ProjectionRow]:
    body = ctx.body
    assert isinstance(body, TokenIssued)
    record: dict[str, Any] = {
        "jti": body.jti,
        "status": ACTIVE,
        "sub": body.sub,
        "aud": body.aud if isinstance(body.aud, str) else list(body.aud),
        "scope": list(body.scope),
        "iat": body.iat,
        "exp": body.exp,
        "kid": body.kid,
        "issuer_did": body.issuer_did,
        "token_scope_hash_b64u": body.token_scope_hash_b64u,
        "token_sha256_b64u": body.token_sha256_b64u,
        "policy_hash_b64u": body.policy_hash_b64u,
        "mission_id": body.mission_id,
        "nonce": body.nonce,
        "issued_event_id": ctx.event.event_id,
        "issued_at": ctx.event.occurred_at,
        "revoked_reason": None,
        "revoked_by": None,
        "revoked_at": None,
    }
    state.tokens[body.jti] = record
    return [_row("tokens", "jti", record)]


def _check_token_revoked(state: LedgerState, ctx: EventContext) -> None:
    body = ctx.body
    assert isinstance(body, TokenRevoked)
    _require_stream(ctx, f"token:{body.jti}")
    record = state.tokens.get(body.jti)
    if record is None:
        raise TokenError(ReasonCode.TOKEN_UNKNOWN, f"no token {body.jti} on the ledger")
    if record["status"] == REVOKED:
        raise TokenError(ReasonCode.TOKEN_REVOKED, f"token {body.jti} is already revoked")


def _apply_token_revoked(state: LedgerState, ctx: EventContext) -> list[ProjectionRow]:
    body = ctx.body
    assert isinstance(body, TokenRevoked)
    record = state.tokens[body.jti]
    record.update(
        status=REVOKED,
        revoked_reason=body.reason,
        revoked_by=ctx.signer,
        revoked_at=ctx.event.occurred_at,
    )
    return [_row("tokens", "jti", record)]


# --- receipts ---------------------------------------------------------------------


def _verified_receipt(body: ReceiptRecorded) -> tuple[Any, dict[str, Any]]:
    document = parse_receipt_bytes(body.receipt_envelope_json)
    envelope = verify_receipt_envelope(document)
    return document, dict(envelope.payload)


def _check_receipt_recorded(state: LedgerState, ctx: EventContext) -> None:
    body = ctx.body
    assert isinstance(body, ReceiptRecorded)
    _require_stream(ctx, f"job:{body.job_id}")
    job = _job(state, body.job_id)
    _require_running(job, "receipt")
    _require_not_halted(state, f"receipt for job {body.job_id}", job_id=body.job_id, sub=job["sub"])
    token = state.tokens.get(str(job["cst_jti"]))
    if token is None or token["status"] == REVOKED:
        raise TokenError(
            ReasonCode.TOKEN_REVOKED, f"the token of job {body.job_id} was revoked: no more calls"
        )
    document, payload = _verified_receipt(body)
    _require_role(state, str(document["signer_did"]), Role.GATEWAY, "receipt")
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


def _apply_receipt_recorded(state: LedgerState, ctx: EventContext) -> list[ProjectionRow]:
    body = ctx.body
    assert isinstance(body, ReceiptRecorded)
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
    return [_row("jobs", "job_id", job), _row("receipts", "receipt_id", receipt_row)]


# --- runs -------------------------------------------------------------------------


def _check_manifest_approved(state: LedgerState, ctx: EventContext) -> None:
    body = ctx.body
    assert isinstance(body, RunManifestApproved)
    _require_stream(ctx, f"job:{body.job_id}")
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
        is_approver=lambda did: _holds_role(state, did, Role.APPROVER),
    )


def _apply_manifest_approved(state: LedgerState, ctx: EventContext) -> list[ProjectionRow]:
    body = ctx.body
    assert isinstance(body, RunManifestApproved)
    urm = validate_urm(body.urm)
    job: dict[str, Any] = {
        "job_id": body.job_id,
        "run_id": body.job_id,
        "status": JOB_APPROVED,
        "urm_hash_b64u": body.urm_hash_b64u,
        "urm": _copy_json(body.urm),
        "approvals": [dict(a) for a in body.approvals],
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
    return [_row("jobs", "job_id", job)]


def _check_run_started(state: LedgerState, ctx: EventContext) -> None:
    body = ctx.body
    assert isinstance(body, RunStarted)
    _require_stream(ctx, f"job:{body.job_id}")
    job = _job(state, body.job_id)
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
    _require_not_halted(state, f"start of job {body.job_id}", job_id=body.job_id)
    token = state.tokens.get(body.cst_jti)
    if token is None:
        raise TokenError(ReasonCode.TOKEN_UNKNOWN, f"no token {body.cst_jti} on the ledger")
    _require_not_halted(state, f"start of job {body.job_id}", sub=str(token["sub"]))
    if token["status"] == REVOKED:
        raise TokenError(
            ReasonCode.TOKEN_REVOKED, f"token {body.cst_jti} was revoked: {token['revoked_reason']}"
        )
    now = _epoch(ctx.event.occurred_at)
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


def _apply_run_started(state: LedgerState, ctx: EventContext) -> list[ProjectionRow]:
    body = ctx.body
    assert isinstance(body, RunStarted)
    job = state.jobs[body.job_id]
    token = state.tokens[body.cst_jti]
    job.update(
        status=JOB_RUNNING,
        cst_jti=body.cst_jti,
        sub=token["sub"],
        token_scope_hash_b64u=token["token_scope_hash_b64u"],
        started_event_id=ctx.event.event_id,
        started_at=ctx.event.occurred_at,
    )
    _append_chain(job, ctx)
    return [_row("jobs", "job_id", job)]


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


def _check_run_completed(state: LedgerState, ctx: EventContext) -> None:
    body = ctx.body
    assert isinstance(body, RunCompleted)
    _require_stream(ctx, f"job:{body.job_id}")
    job = _job(state, body.job_id)
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


def _apply_run_completed(state: LedgerState, ctx: EventContext) -> list[ProjectionRow]:
    body = ctx.body
    assert isinstance(body, RunCompleted)
    job = state.jobs[body.job_id]
    outputs = [{"name": o.name, "sha256": o.sha256} for o in body.outputs]
    flags = output_flags(list(job["urm"].get("expected_outputs") or []), outputs)
    job.update(
        status=JOB_COMPLETED,
        outputs=outputs,
        output_flags=flags,
        outputs_match=not flags,
        completed_event_id=ctx.event.event_id,
        completed_at=ctx.event.occurred_at,
    )
    _append_chain(job, ctx)
    return [_row("jobs", "job_id", job)]


# --- halts ------------------------------------------------------------------------


def _check_halted(state: LedgerState, ctx: EventContext) -> None:
    # A kill switch is never refused for being engaged already: halting an
    # active target again is recorded and refreshes the reason.
    body = ctx.body
    assert isinstance(body, AgentHalted)
    _require_stream(ctx, f"halt:{body.target}")


def _apply_halted(state: LedgerState, ctx: EventContext) -> list[ProjectionRow]:
    body = ctx.body
    assert isinstance(body, AgentHalted)
    record: dict[str, Any] = {
        "target": body.target,
        "active": True,
        "reason": body.reason,
        "halted_by": ctx.signer,
        "halted_at": ctx.event.occurred_at,
        "halted_event_id": ctx.event.event_id,
        "resumed_reason": None,
        "resumed_by": None,
        "resumed_at": None,
        "resumed_event_id": None,
    }
    state.halts[body.target] = record
    return [_row("halts", "target", record)]


def _check_resumed(state: LedgerState, ctx: EventContext) -> None:
    body = ctx.body
    assert isinstance(body, AgentResumed)
    _require_stream(ctx, f"halt:{body.target}")
    record = state.halts.get(body.target)
    if record is None or not record["active"]:
        raise EventError(ReasonCode.HALT_NOT_ACTIVE, f"{body.target} is not halted")


def _apply_resumed(state: LedgerState, ctx: EventContext) -> list[ProjectionRow]:
    body = ctx.body
    assert isinstance(body, AgentResumed)
    record = state.halts[body.target]
    record.update(
        active=False,
        resumed_reason=body.reason,
        resumed_by=ctx.signer,
        resumed_at=ctx.event.occurred_at,
        resumed_event_id=ctx.event.event_id,
    )
    return [_row("halts", "target", record)]


# --- registration -----------------------------------------------------------------

_RULES: dict[str, Rule] = {
    "policy.published": Rule(_check_policy_published, _apply_policy_published),
    "policy.superseded": Rule(_check_policy_superseded, _apply_policy_superseded),
    "policy.revoked": Rule(_check_policy_revoked, _apply_policy_revoked),
    "token.issued": Rule(_check_token_issued, _apply_token_issued),
    "token.revoked": Rule(_check_token_revoked, _apply_token_revoked),
    "receipt.recorded": Rule(_check_receipt_recorded, _apply_receipt_recorded),
    "run.manifest_approved": Rule(_check_manifest_approved, _apply_manifest_approved),
    "run.started": Rule(_check_run_started, _apply_run_started),
    "run.completed": Rule(_check_run_completed, _apply_run_completed),
    "agent.halted": Rule(_check_halted, _apply_halted),
    "agent.resumed": Rule(_check_resumed, _apply_resumed),
}

#: The event types whose rules live here.
PRIMITIVE_EVENT_TYPES: frozenset[str] = frozenset(_RULES)


def register_all(*, max_token_ttl_seconds: int | None = None) -> None:
    """Register every rule of this module (idempotent); optionally set the token TTL ceiling."""
    if max_token_ttl_seconds is not None:
        if not 0 < max_token_ttl_seconds <= HARD_MAX_TTL_SECONDS:
            raise ValueError(f"max_token_ttl_seconds must be in 1..{HARD_MAX_TTL_SECONDS}")
        settings.max_token_ttl_seconds = max_token_ttl_seconds
    for event_type, rule in _RULES.items():
        register_rule(event_type, rule)


register_all()
