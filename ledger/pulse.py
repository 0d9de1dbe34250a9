"""Trust Pulse records: a stable, content-addressed summary of a sealed bundle for reviewers.

A record says which run a sealed bundle proves, under which policy, how many
events, receipts, decisions and halts it holds, what the offline verifier
concluded and against which checkpoint. Its id is
``b64u(SHA-256(JCS(record)))``: the same bundle verified the same way gives
the same id, whoever publishes it and whenever.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ledger.canonical import jcs_hash_b64u
from ledger.checks import check_b64u_hash
from ledger.errors import BundleError, ReasonCode, validation_summary

__all__ = ["PULSE_VERSION", "PulseRecord", "build_pulse_record", "pulse_id", "validate_record"]

PULSE_VERSION = "1"


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class PulseCheckpoint(_Strict):
    origin: str = Field(min_length=1, max_length=500)
    size: int = Field(ge=1)
    root_hash_b64: str = Field(min_length=44, max_length=44)


class PulseRecord(_Strict):
    """What a Trust Pulse record holds (every field is covered by its id)."""

    pulse_version: str = Field(pattern=r"^1$")
    job_id: str = Field(pattern=r"^\S{1,300}$")
    bundle_hash_b64u: str
    bundle_id: str = Field(min_length=1, max_length=200)
    policy_hash_b64u: str | None
    run_status: str = Field(pattern=r"^(approved|running|halted|completed)$")
    counts: dict[str, int]
    verdict: str = Field(pattern=r"^(valid|invalid)$")
    reason_code: str = Field(min_length=1, max_length=100)
    checkpoint: PulseCheckpoint

    _hash = field_validator("bundle_hash_b64u")(check_b64u_hash)


def pulse_id(record: Mapping[str, Any]) -> str:
    """The record's id: b64u(SHA-256(JCS(record)))."""
    return jcs_hash_b64u(dict(record))


def validate_record(record: Any) -> PulseRecord:
    """The record, strictly validated, else ``SCHEMA_VALIDATION_FAILED``."""
    try:
        return PulseRecord.model_validate(record)
    except ValidationError as exc:
        raise BundleError(
            ReasonCode.SCHEMA_VALIDATION_FAILED, validation_summary(exc, "record")
        ) from exc


def build_pulse_record(
    *,
    job_id: str,
    bundle_hash_b64u: str,
    bundle_id: str,
    policy_hash_b64u: str | None,
    run_status: str,
    counts: Mapping[str, int],
    valid: bool,
    reason_code: str,
    checkpoint: Mapping[str, Any],
) -> dict[str, Any]:
    """A validated record (publish it with its :func:`pulse_id`)."""
    record: dict[str, Any] = {
        "pulse_version": PULSE_VERSION,
        "job_id": job_id,
        "bundle_hash_b64u": bundle_hash_b64u,
        "bundle_id": bundle_id,
        "policy_hash_b64u": policy_hash_b64u,
        "run_status": run_status,
        "counts": dict(counts),
        "verdict": "valid" if valid else "invalid",
        "reason_code": reason_code,
        "checkpoint": dict(checkpoint),
    }
    validate_record(record)
    return record
