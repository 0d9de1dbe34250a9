"""Work Policy Contracts (docs/formats.md §3): parse, validate, hash, sign, verify.

A WPC document is a JSON (or JSON5) object. Its identity is
``policy_hash_b64u`` = b64u(SHA-256(JCS(document))). It is published as the
payload of a clawsig envelope of type ``wpc``.

Validation knows the sections the Claw Bureau runbooks use (docs/formats.md §3):
``runtime``, ``tools``, ``model_calls``/``model_routing``, ``egress``,
``approvals``, ``token_binding``/``cst_requirements``, ``validation``,
``retention``, the halt ``mode`` (top level or in a ``wpc`` header) and
``enforcement``. Known sections are type-checked strictly; unknown sections
and unknown keys inside known ones are kept as they are (they are hashed).

Everything fails closed: a document that cannot be parsed, is too large,
names an unsupported version or contradicts itself is refused with a
:class:`~ledger.errors.PolicyError` and a reason code, never replaced by a
default.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ledger.canonical import jcs, parse_document_bytes, parse_json_strict
from ledger.crypto import KeyPair
from ledger.encoding import B64U_SHA256_RE, sha256_b64u
from ledger.envelope import SignedEnvelope, sign_envelope, verify_envelope
from ledger.errors import EnvelopeError, PolicyError, ReasonCode, validation_summary

__all__ = [
    "MAX_WPC_BYTES",
    "WPC_ENVELOPE_TYPE",
    "WPC_VERSION",
    "VerifiedWpc",
    "WpcDocument",
    "check_policy_hash",
    "parse_wpc_bytes",
    "parse_wpc_envelope_bytes",
    "policy_hash_b64u",
    "sign_wpc",
    "validate_wpc",
    "verify_wpc_envelope",
]

WPC_ENVELOPE_TYPE = "wpc"
WPC_VERSION = "1"
#: Largest WPC accepted, as file bytes and as JCS bytes.
MAX_WPC_BYTES = 256 * 1024
#: Largest signed ``wpc`` envelope accepted (the document plus ~400 bytes of envelope).
MAX_WPC_ENVELOPE_BYTES = MAX_WPC_BYTES + 4096


# --- section models -----------------------------------------------------------


class _Section(BaseModel):
    """A known section: known keys are type-checked strictly, unknown keys kept."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)


def _overlap(allow: list[str] | None, deny: list[str] | None) -> list[str]:
    return sorted(set(allow or ()) & set(deny or ()))


class Runtime(_Section):
    baseline: str | None = None
    #: OpenClaw's sandbox modes
    sandbox_mode: Literal["off", "non-main", "all"] | None = None
    allow_elevated: bool | None = None


class AllowDeny(_Section):
    default: Literal["allow", "deny"] | None = None
    allow: list[str] | None = None
    deny: list[str] | None = None

    @model_validator(mode="after")
    def _no_contradiction(self) -> AllowDeny:
        both = _overlap(self.allow, self.deny)
        if both:
            raise ValueError(f"listed in both allow and deny: {', '.join(both)}")
        for name in (*(self.allow or ()), *(self.deny or ())):
            if not name.strip():
                raise ValueError("allow/deny entries must be non-empty strings")
        return self


class ModelCalls(_Section):
    route_via: str | None = None
    allowed_providers: list[str] | None = None
    denied_providers: list[str] | None = None


class ModelRouting(_Section):
    provider: str | None = None
    must_use_gateway_receipts: bool | None = None


class ApprovalRule(_Section):
    action: str = Field(min_length=1, max_length=500)
    when: str | None = None


class Approvals(_Section):
    required_for: list[ApprovalRule] | None = None


class TokenBinding(_Section):
    cst_scope_hash_required: bool | None = None
    cst_policy_hash_pinning: Literal["required", "recommended", "optional"] | bool | None = None


class CstRequirements(_Section):
    job_scoped: bool | None = None
    scope_hash_required: bool | None = None
    policy_hash_pinned: bool | None = None


class Validation(_Section):
    fail_closed_on_missing_wpc: bool | None = None
    fail_closed_on_hash_mismatch: bool | None = None

    @model_validator(mode="after")
    def _always_fail_closed(self) -> Validation:
        for name in ("fail_closed_on_missing_wpc", "fail_closed_on_hash_mismatch"):
            if getattr(self, name) is False:
                raise ValueError(
                    f"{name}: false is not supported: this registry always fails closed"
                )
        return self


class Retention(_Section):
    proof_bundle_required: bool | None = None
    proof_bundle_days: int | None = Field(default=None, ge=1, le=36500)
    store_as_trust_pulse: str | bool | None = None
    notes: str | None = None


HaltMode = Literal["normal", "halt"]


class WpcHeader(_Section):
    """The ``wpc`` header of a halt policy (mode halt, deny-all: the kill-switch runbook)."""

    name: str | None = None
    version: str | None = None
    mode: HaltMode | None = None


class Enforcement(_Section):
    tools: AllowDeny | None = None
    model_egress: AllowDeny | None = None


class WpcDocument(_Section):
    """A WPC document. Only ``wpc_version`` is required."""

    wpc_version: str
    issuer: str | None = None
    purpose: str | None = None
    policy_name: str | None = None
    mode: HaltMode | None = None
    wpc: WpcHeader | None = None
    runtime: Runtime | None = None
    tools: AllowDeny | None = None
    model_calls: ModelCalls | None = None
    model_routing: ModelRouting | None = None
    egress: AllowDeny | None = None
    approvals: Approvals | None = None
    token_binding: TokenBinding | None = None
    cst_requirements: CstRequirements | None = None
    validation: Validation | None = None
    retention: Retention | None = None
    enforcement: Enforcement | None = None

    @model_validator(mode="after")
    def _consistent(self) -> WpcDocument:
        if self.wpc_version != WPC_VERSION:
            raise ValueError(
                f'wpc_version {self.wpc_version!r} is not supported (only "{WPC_VERSION}")'
            )
        modes = {m for m in (self.mode, self.wpc.mode if self.wpc else None) if m}
        if len(modes) > 1:
            raise ValueError("mode and wpc.mode disagree")
        if "halt" in modes:
            allowed = [
                *(self.tools.allow or () if self.tools else ()),
                *(
                    self.enforcement.tools.allow or ()
                    if self.enforcement and self.enforcement.tools
                    else ()
                ),
            ]
            if allowed:
                raise ValueError("a halt-mode WPC cannot allow tools")
        return self

    @property
    def halt_mode(self) -> bool:
        return "halt" in (self.mode, self.wpc.mode if self.wpc else None)


# --- parsing, validation, hashing --------------------------------------------------

_SELF_HASH_FIELDS = ("policy_hash", "policy_hash_b64u")


def _reject_non_finite(value: Any, path: str = "$") -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise PolicyError(ReasonCode.WPC_INVALID, f"{path}: NaN and Infinity are not JSON")
    if isinstance(value, Mapping):
        for key, item in value.items():
            _reject_non_finite(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _reject_non_finite(item, f"{path}[{index}]")


def parse_wpc_bytes(data: bytes) -> dict[str, Any]:
    """Parse a WPC file (JSON, or JSON5 when it is not plain JSON) and validate it.

    A signed ``wpc`` envelope (what ``claw-ledger wpc get`` prints) is taken as
    its payload once the envelope verifies (its hash and signature; who signed
    it is the registry's question).

    Refuses: more than :data:`MAX_WPC_BYTES` (``OVERSIZED``; an envelope may be
    :data:`MAX_WPC_ENVELOPE_BYTES`), bad UTF-8 or JSON5 syntax or duplicate keys
    (``MALFORMED_JSON``), anything :func:`validate_wpc` refuses (``WPC_INVALID``),
    an envelope that does not verify (its step's code).
    """
    document = parse_document_bytes(data, "WPC", MAX_WPC_ENVELOPE_BYTES, PolicyError)
    if _is_wpc_envelope(document):
        try:
            return dict(verify_wpc_envelope(document).envelope.payload)
        except EnvelopeError as exc:
            raise PolicyError(exc.code, f"the wpc envelope does not verify: {exc.detail}") from exc
    if len(data) > MAX_WPC_BYTES:
        raise PolicyError(
            ReasonCode.OVERSIZED, f"WPC is {len(data)} bytes, the limit is {MAX_WPC_BYTES}"
        )
    validate_wpc(document)
    return dict(document)


def _is_wpc_envelope(document: Any) -> bool:
    # a WPC's own fields never include these two; an envelope always has both
    return (
        isinstance(document, Mapping)
        and document.get("envelope_type") == WPC_ENVELOPE_TYPE
        and "payload" in document
    )


def validate_wpc(document: Any) -> WpcDocument:
    """Check a parsed WPC document; raise ``PolicyError(WPC_INVALID)`` with the reason."""
    if not isinstance(document, Mapping):
        raise PolicyError(ReasonCode.WPC_INVALID, "a WPC must be a JSON object")
    for name in _SELF_HASH_FIELDS:
        if name in document:
            raise PolicyError(
                ReasonCode.WPC_INVALID,
                f"a WPC cannot carry its own hash ({name!r})",
                hint="remove it: the hash is computed from the content (JCS -> SHA-256 -> b64u)",
            )
    _reject_non_finite(document)
    try:
        canonical = jcs(document)
    except ValueError as exc:  # integers beyond 2**53, lone surrogates, ...
        raise PolicyError(ReasonCode.WPC_INVALID, f"not canonicalisable (RFC 8785): {exc}") from exc
    if len(canonical) > MAX_WPC_BYTES:
        raise PolicyError(
            ReasonCode.OVERSIZED,
            f"WPC is {len(canonical)} bytes canonicalised, the limit is {MAX_WPC_BYTES}",
        )
    try:
        return WpcDocument.model_validate(dict(document))
    except ValidationError as exc:
        raise PolicyError(ReasonCode.WPC_INVALID, validation_summary(exc, "document")) from exc


def policy_hash_b64u(document: Any) -> str:
    """b64u(SHA-256(JCS(document))) — the WPC's identity (43 characters)."""
    try:
        return sha256_b64u(jcs(document))
    except ValueError as exc:
        raise PolicyError(ReasonCode.WPC_INVALID, f"not canonicalisable (RFC 8785): {exc}") from exc


def check_policy_hash(value: Any) -> str:
    """Return ``value`` when it looks like a policy hash, else ``MALFORMED_POLICY_HASH``."""
    if not isinstance(value, str) or not B64U_SHA256_RE.fullmatch(value):
        raise PolicyError(
            ReasonCode.MALFORMED_POLICY_HASH,
            f"{value!r} is not a policy hash (43 base64url characters, no prefix)",
            hint="print one with `claw-ledger wpc hash FILE`",
        )
    return value


# --- envelopes ------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedWpc:
    """A ``wpc`` envelope whose schema, payload hash and signature verified."""

    envelope: SignedEnvelope
    policy_hash_b64u: str
    document: WpcDocument

    @property
    def publisher_did(self) -> str:
        return self.envelope.signer_did


def sign_wpc(
    document: Mapping[str, Any], key: KeyPair, *, issued_at: str | None = None
) -> SignedEnvelope:
    """Validate ``document`` and sign it as a ``wpc`` envelope (payload in JCS order)."""
    validate_wpc(document)
    return sign_envelope(WPC_ENVELOPE_TYPE, document, key, issued_at=issued_at)


def verify_wpc_envelope(envelope: Any, *, expected_hash: str | None = None) -> VerifiedWpc:
    """Verify a parsed ``wpc`` envelope (docs/formats.md §2 steps), then its identity.

    Raises :class:`~ledger.errors.EnvelopeError` for the envelope steps (the
    document schema step reports ``WPC_INVALID``) and
    ``PolicyError(WPC_HASH_MISMATCH)`` when ``expected_hash`` is not the hash
    of the content.
    """
    verified = verify_envelope(envelope, {WPC_ENVELOPE_TYPE: validate_wpc}, expected_type="wpc")
    computed = policy_hash_b64u(verified.payload)
    if expected_hash is not None and computed != expected_hash:
        raise PolicyError(
            ReasonCode.WPC_HASH_MISMATCH,
            f"the WPC content hashes to {computed}, not {expected_hash}",
        )
    return VerifiedWpc(verified, computed, validate_wpc(verified.payload))


def parse_wpc_envelope_bytes(raw: bytes) -> Any:
    """Parse the exact bytes of a ``wpc`` envelope, keeping key order (strict JSON)."""
    if len(raw) > MAX_WPC_ENVELOPE_BYTES:
        raise PolicyError(
            ReasonCode.OVERSIZED,
            f"wpc envelope is {len(raw)} bytes, the limit is {MAX_WPC_ENVELOPE_BYTES}",
        )
    try:
        return parse_json_strict(raw)
    except (ValueError, RecursionError) as exc:
        raise PolicyError(ReasonCode.MALFORMED_JSON, f"wpc envelope is not JSON: {exc}") from exc
