"""Universal Run Manifests (docs/formats.md §7) and their approvals.

A URM binds a job to a WPC hash, a token scope hash, an execution envelope,
its inputs and its expected outputs. Its identity is
``urm_hash_b64u`` = b64u(SHA-256(JCS(urm))).

``job.requested_by`` and ``job.approved_by`` are names for humans. What binds
is cryptographic: each approval is an Ed25519 signature by a key holding the
``approver`` role over :func:`approval_signing_bytes` (a domain-separated
message naming the URM hash and the approval time). The key that submits the
URM to the ledger is the requester and may not approve its own job.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ledger.canonical import jcs, jcs_hash_b64u, parse_document_bytes
from ledger.checks import check_b64u_hash, only_version
from ledger.crypto import KeyPair, verify_signature
from ledger.encoding import B64U_SHA256_RE, b64u_decode, b64u_encode
from ledger.envelope import format_timestamp
from ledger.errors import ManifestError, ReasonCode, RejectedError, validation_summary

__all__ = [
    "APPROVAL_DOMAIN",
    "MAX_URM_BYTES",
    "URM_VERSION",
    "Urm",
    "VerifiedApprovals",
    "approval_signing_bytes",
    "check_approvals",
    "parse_urm_bytes",
    "sign_approval",
    "urm_hash_b64u",
    "validate_urm",
    "verify_approval",
]

URM_VERSION = "1"
MAX_URM_BYTES = 256 * 1024
#: Domain separation: an approval signature can never be mistaken for another signature.
APPROVAL_DOMAIN = b"claw-ledger/urm-approval/v1\n"

_SHA256_HEX_RE = re.compile(r"^[0-9a-f]{64}$")
_RFC3339_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$")


class _Strict(BaseModel):
    """URM parts: strict types, unknown keys refused (a URM is small and exact)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _hex(value: str | None) -> str | None:
    if value is not None and not _SHA256_HEX_RE.fullmatch(value):
        raise ValueError("sha256 must be 64 lowercase hex characters")
    return value


class UrmJob(_Strict):
    job_id: str = Field(min_length=1, max_length=300, pattern=r"^\S+$")
    requested_by: str = Field(min_length=1, max_length=300)
    approved_by: list[str] = Field(default_factory=list)
    approval_ref: str | None = None


class UrmPolicy(_Strict):
    wpc_hash_b64u: str
    cst_scope_hash: str
    policy_hash_pinning: bool

    _b64u = field_validator("wpc_hash_b64u", "cst_scope_hash")(check_b64u_hash)


class UrmExecution(_Strict):
    agent_runtime: str = Field(min_length=1)
    tool_profile: str = Field(min_length=1)
    sandbox_mode: str = Field(min_length=1)
    model_routing: str = Field(min_length=1)


class UrmInput(_Strict):
    name: str = Field(min_length=1, max_length=500)
    sha256: str

    _sha = field_validator("sha256")(_hex)


class UrmOutput(_Strict):
    name: str = Field(min_length=1, max_length=500)
    sha256: str | None

    _sha = field_validator("sha256")(_hex)


class UrmRetention(_Strict):
    proof_bundle_days: int = Field(ge=1, le=36500)
    notes: str | None = None


class Urm(_Strict):
    urm_version: str
    job: UrmJob
    policy: UrmPolicy
    execution: UrmExecution
    inputs: list[UrmInput]
    expected_outputs: list[UrmOutput]
    retention: UrmRetention

    _version = field_validator("urm_version")(only_version("urm_version", URM_VERSION))

    @model_validator(mode="after")
    def _unique_names(self) -> Urm:
        for label, items in (("inputs", self.inputs), ("expected_outputs", self.expected_outputs)):
            names = [item.name for item in items]
            if len(names) != len(set(names)):
                raise ValueError(f"{label} names must be unique")
        return self


def validate_urm(document: Any) -> Urm:
    """Check a parsed URM (docs/formats.md §7); ``URM_INVALID`` with the reason otherwise."""
    if not isinstance(document, Mapping):
        raise ManifestError(ReasonCode.URM_INVALID, "a URM must be a JSON object")
    try:
        jcs(document)
    except ValueError as exc:
        raise ManifestError(ReasonCode.URM_INVALID, f"not canonicalisable: {exc}") from exc
    try:
        return Urm.model_validate(dict(document))
    except ValidationError as exc:
        raise ManifestError(ReasonCode.URM_INVALID, validation_summary(exc, "urm")) from exc


def parse_urm_bytes(data: bytes) -> dict[str, Any]:
    """Parse a URM file (JSON or JSON5) and validate it."""
    document = parse_document_bytes(data, "URM", MAX_URM_BYTES, ManifestError)
    _reject_non_finite(document)
    validate_urm(document)
    return dict(document)


def _reject_non_finite(value: Any) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ManifestError(ReasonCode.URM_INVALID, "NaN and Infinity are not JSON")
    if isinstance(value, Mapping):
        for item in value.values():
            _reject_non_finite(item)
    elif isinstance(value, list):
        for item in value:
            _reject_non_finite(item)


def urm_hash_b64u(urm: Mapping[str, Any]) -> str:
    """b64u(SHA-256(JCS(urm)))."""
    try:
        return jcs_hash_b64u(dict(urm))
    except ValueError as exc:
        raise ManifestError(ReasonCode.URM_INVALID, f"not canonicalisable: {exc}") from exc


# --- approvals ---------------------------------------------------------------------


def approval_signing_bytes(urm_hash: str, approved_at: str) -> bytes:
    """The exact bytes an approver signs::

        b"claw-ledger/urm-approval/v1\\n" + urm_hash + b"\\n" + approved_at

    ``urm_hash`` is the 43-character b64u URM hash, ``approved_at`` an RFC 3339
    UTC time, both ASCII.
    """
    return APPROVAL_DOMAIN + urm_hash.encode("ascii") + b"\n" + approved_at.encode("ascii")


def sign_approval(urm_hash: str, key: KeyPair, *, approved_at: str | None = None) -> dict[str, str]:
    """An approval of the URM with hash ``urm_hash`` by ``key``."""
    if not B64U_SHA256_RE.fullmatch(urm_hash):
        raise ManifestError(ReasonCode.URM_INVALID, f"{urm_hash!r} is not a URM hash")
    stamp = approved_at or format_timestamp()
    return {
        "approver_did": key.did,
        "urm_hash_b64u": urm_hash,
        "signature_b64u": b64u_encode(key.sign(approval_signing_bytes(urm_hash, stamp))),
        "approved_at": stamp,
    }


_APPROVAL_FIELDS = frozenset({"approver_did", "urm_hash_b64u", "signature_b64u", "approved_at"})


def verify_approval(approval: Any, urm_hash: str) -> str:
    """Check one approval's shape, URM hash and signature; return the approver's DID.

    ``URM_APPROVAL_INVALID`` on any failure.
    """
    if not isinstance(approval, Mapping) or set(approval) != _APPROVAL_FIELDS:
        raise ManifestError(
            ReasonCode.URM_APPROVAL_INVALID,
            f"an approval has exactly the fields {', '.join(sorted(_APPROVAL_FIELDS))}",
        )
    if not all(isinstance(approval[name], str) for name in _APPROVAL_FIELDS):
        raise ManifestError(ReasonCode.URM_APPROVAL_INVALID, "approval fields must be strings")
    if approval["urm_hash_b64u"] != urm_hash:
        raise ManifestError(
            ReasonCode.URM_APPROVAL_INVALID,
            f"approval by {approval['approver_did']} is for URM {approval['urm_hash_b64u']},"
            f" not {urm_hash}",
        )
    if not _RFC3339_RE.fullmatch(approval["approved_at"]):
        raise ManifestError(ReasonCode.URM_APPROVAL_INVALID, "approved_at is not RFC 3339")
    try:
        signature = b64u_decode(approval["signature_b64u"])
        ok = len(signature) == 64 and verify_signature(
            approval["approver_did"],
            approval_signing_bytes(urm_hash, approval["approved_at"]),
            signature,
        )
    except (ValueError, RejectedError) as exc:
        raise ManifestError(
            ReasonCode.URM_APPROVAL_INVALID, f"bad approval: {getattr(exc, 'detail', exc)}"
        ) from exc
    if not ok:
        raise ManifestError(
            ReasonCode.URM_APPROVAL_INVALID,
            f"approval signature by {approval['approver_did']} does not verify",
        )
    return str(approval["approver_did"])


@dataclass(frozen=True)
class VerifiedApprovals:
    approver_dids: tuple[str, ...]


def check_approvals(
    approvals: Sequence[Any],
    urm: Urm,
    urm_hash: str,
    *,
    requester_did: str,
    is_approver: Callable[[str], bool],
) -> VerifiedApprovals:
    """All approval rules for a URM submission, fail closed, in this order:

    1. at least one approval, and at least as many as ``job.approved_by`` names
       → ``URM_NO_APPROVALS``;
    2. each approval verifies for this URM hash, no approver twice
       → ``URM_APPROVAL_INVALID``;
    3. no approval by the requester → ``URM_SELF_APPROVAL``;
    4. each approver holds the approver role (registered, not revoked)
       → ``URM_APPROVER_NOT_ALLOWED``.
    """
    needed = max(1, len(set(urm.job.approved_by)))
    if len(approvals) < needed:
        raise ManifestError(
            ReasonCode.URM_NO_APPROVALS,
            f"the URM needs {needed} approval(s), it carries {len(approvals)}",
            hint="each approver runs `claw-ledger urm approve FILE --key APPROVER_KEY`",
        )
    dids: list[str] = []
    for approval in approvals:
        did = verify_approval(approval, urm_hash)
        if did in dids:
            raise ManifestError(ReasonCode.URM_APPROVAL_INVALID, f"{did} approved twice")
        dids.append(did)
    if requester_did in dids:
        raise ManifestError(
            ReasonCode.URM_SELF_APPROVAL,
            f"the requester {requester_did} cannot approve its own job",
        )
    for did in dids:
        if not is_approver(did):
            raise ManifestError(
                ReasonCode.URM_APPROVER_NOT_ALLOWED,
                f"{did} does not hold the approver role (or is revoked)",
            )
    return VerifiedApprovals(tuple(dids))
