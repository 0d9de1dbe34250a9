"""Sealed bundles and Trust Pulse: ``bundle.sealed`` and ``pulse.published``.

Both are published by the ledger's own key (role ``ledger``) on the run's
stream ``job:<id>``, after the run's bundle was sealed (ADR 0019). The
bundle's bytes are not in the event (a bundle of thousands of receipts is far
over the message limit): ``bundle.sealed`` records its hash, and
``bundle_documents`` holds the bytes under that hash. Both projections are
insert-only: a recorded bundle or record is never rewritten.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from ledger.checks import check_b64u_hash
from ledger.errors import EventError, ReasonCode
from ledger.pulse import pulse_id, validate_record
from ledger.registry import EventBody, EventTypeSpec, RuleSettings
from ledger.state import EventContext, LedgerState, ProjectionRow
from ledger.types._common import JOB_ID, body_of, require_stream, row, spec, stamp
from ledger.types.runs import require_job, require_job_stream

__all__ = ["SPECS", "BundleSealed", "PulsePublished"]

_RUN_STATUS = r"^(approved|running|halted|completed)$"


class BundleSealed(EventBody):
    """The ledger sealed a proof bundle of a run: its hash and its checkpoint's size."""

    job_id: str = Field(pattern=JOB_ID)
    bundle_hash_b64u: str
    bundle_id: str = Field(min_length=1, max_length=200)
    trigger: str = Field(
        min_length=1, max_length=400, description="completed, halted:<event>, demand:<id>"
    )
    run_status: str = Field(pattern=_RUN_STATUS)
    checkpoint_size: int = Field(ge=1)
    event_count: int = Field(ge=1)
    receipt_count: int = Field(ge=0)

    _hash = field_validator("bundle_hash_b64u")(check_b64u_hash)


class PulsePublished(EventBody):
    """A Trust Pulse record of a sealed bundle, for reviewers; its id is its hash."""

    pulse_id: str
    record: dict[str, Any]

    _hash = field_validator("pulse_id")(check_b64u_hash)


def _check_sealed(state: LedgerState, ctx: EventContext, settings: RuleSettings, /) -> None:
    body = body_of(ctx, BundleSealed)
    require_job_stream(state, ctx, body.job_id)


def _apply_sealed(
    state: LedgerState, ctx: EventContext, settings: RuleSettings, /
) -> list[ProjectionRow]:
    body = body_of(ctx, BundleSealed)
    values = {
        "bundle_hash_b64u": body.bundle_hash_b64u,
        "job_id": body.job_id,
        "bundle_id": body.bundle_id,
        "trigger": body.trigger,
        "run_status": body.run_status,
        "checkpoint_size": body.checkpoint_size,
        "event_count": body.event_count,
        "receipt_count": body.receipt_count,
        **stamp(ctx, "sealed"),
    }
    return [row("bundles", "bundle_hash_b64u", values)]


def _check_pulse(state: LedgerState, ctx: EventContext, settings: RuleSettings, /) -> None:
    body = body_of(ctx, PulsePublished)
    record = validate_record(body.record)
    require_stream(ctx, f"job:{record.job_id}")
    computed = pulse_id(body.record)
    if computed != body.pulse_id:
        raise EventError(
            ReasonCode.PULSE_ID_MISMATCH,
            f"pulse_id is {body.pulse_id}, the record hashes to {computed}",
        )
    require_job(state, record.job_id)


def _apply_pulse(
    state: LedgerState, ctx: EventContext, settings: RuleSettings, /
) -> list[ProjectionRow]:
    body = body_of(ctx, PulsePublished)
    record = body.record
    values = {
        "pulse_id": body.pulse_id,
        "job_id": record["job_id"],
        "bundle_hash_b64u": record["bundle_hash_b64u"],
        "policy_hash_b64u": record["policy_hash_b64u"],
        "counts": record["counts"],
        "verdict": record["verdict"],
        "reason_code": record["reason_code"],
        "checkpoint": record["checkpoint"],
        "record": record,
        **stamp(ctx, "published"),
    }
    return [row("pulse_records", "pulse_id", values)]


#: event type, body, stream, roles, projections written; check, apply, timeline summary
# fmt: off
SPECS: tuple[EventTypeSpec, ...] = (
    spec("bundle.sealed", BundleSealed, "job:<job_id>", "ledger", "bundles",
         _check_sealed, _apply_sealed, "job_id run_status bundle_hash_b64u checkpoint_size"),
    spec("pulse.published", PulsePublished, "job:<job_id>", "ledger", "pulse_records",
         _check_pulse, _apply_pulse, "pulse_id"),
)
# fmt: on
