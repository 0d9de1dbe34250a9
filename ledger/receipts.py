"""Gateway receipts for model calls (docs/formats.md §5).

A receipt is the payload of a clawsig envelope of type ``gateway_receipt``,
signed by the gateway's key. The request and response are hashed as the exact
bytes that crossed the gateway; the ``binding`` ties the call to a run, an
event of that run's chain, a nonce and optionally the WPC and token scope
hash in force.

Receipts produced by other gateways (clawproxy) keep their own key order: a
receipt is verified and stored as the exact bytes received, never
re-serialised (docs/formats.md §2).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ledger.canonical import parse_json_strict
from ledger.checks import check_b64u_hash, matching, only_version
from ledger.crypto import KeyPair
from ledger.encoding import sha256_b64u
from ledger.envelope import SignedEnvelope, format_timestamp, sign_envelope, verify_envelope
from ledger.errors import ReasonCode, ReceiptError, validation_summary

__all__ = [
    "DEFAULT_GATEWAY_ID",
    "MAX_RECEIPT_BYTES",
    "RECEIPT_ENVELOPE_TYPE",
    "RECEIPT_VERSION",
    "RFC3339_RE",
    "GatewayReceipt",
    "ReceiptBinding",
    "build_receipt_payload",
    "check_receipt_binding",
    "check_receipt_bytes",
    "parse_receipt_bytes",
    "sign_receipt",
    "validate_receipt_payload",
    "verify_receipt_envelope",
]

RECEIPT_ENVELOPE_TYPE = "gateway_receipt"
#: the ``gateway_id`` of a receipt whose gateway gives none
DEFAULT_GATEWAY_ID = "claw-ledger-gateway"
RECEIPT_VERSION = "1"
MAX_RECEIPT_BYTES = 64 * 1024

#: an RFC 3339 date-time (``fullmatch``)
RFC3339_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")


class ReceiptBinding(BaseModel):
    """``binding`` of a receipt; unknown keys are kept (and signed)."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    run_id: str = Field(min_length=1, max_length=400)
    event_hash_b64u: str
    nonce: str = Field(min_length=1, max_length=400)
    policy_hash: str | None = None
    token_scope_hash_b64u: str | None = None

    _event_hash = field_validator("event_hash_b64u")(check_b64u_hash)

    @field_validator("policy_hash", "token_scope_hash_b64u")
    @classmethod
    def _optional_hash(cls, value: str | None) -> str | None:
        return None if value is None else check_b64u_hash(value)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class GatewayReceipt(BaseModel):
    """The receipt payload (docs/formats.md §5); unknown keys (e.g. ``metadata``) are kept."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    receipt_version: str
    receipt_id: str = Field(min_length=1, max_length=200)
    gateway_id: str = Field(min_length=1, max_length=200)
    provider: str = Field(min_length=1, max_length=200)
    model: str = Field(min_length=1, max_length=400)
    request_hash_b64u: str
    response_hash_b64u: str
    tokens_input: int = Field(ge=0)
    tokens_output: int = Field(ge=0)
    latency_ms: int = Field(ge=0)
    timestamp: str
    binding: ReceiptBinding

    _hashes = field_validator("request_hash_b64u", "response_hash_b64u")(check_b64u_hash)

    _version = field_validator("receipt_version")(only_version("receipt_version", RECEIPT_VERSION))
    _time = field_validator("timestamp")(
        matching(RFC3339_RE, "timestamp must be an RFC 3339 date-time")
    )


def validate_receipt_payload(payload: Any) -> GatewayReceipt:
    """Schema step for a receipt payload; ``SCHEMA_VALIDATION_FAILED`` on failure."""
    if not isinstance(payload, Mapping):
        raise ReceiptError(ReasonCode.SCHEMA_VALIDATION_FAILED, "receipt payload is not an object")
    try:
        return GatewayReceipt.model_validate(dict(payload))
    except ValidationError as exc:
        summary = validation_summary(exc, "payload")
        raise ReceiptError(ReasonCode.SCHEMA_VALIDATION_FAILED, summary) from exc


def build_receipt_payload(
    *,
    request: bytes,
    response: bytes,
    gateway_id: str = DEFAULT_GATEWAY_ID,
    provider: str,
    model: str,
    tokens_input: int = 0,
    tokens_output: int = 0,
    latency_ms: int = 0,
    binding: ReceiptBinding | Mapping[str, Any],
    receipt_id: str | None = None,
    timestamp: str | None = None,
) -> dict[str, Any]:
    """A validated receipt payload from the exact request and response bytes."""
    bound = binding if isinstance(binding, ReceiptBinding) else _binding(binding)
    payload: dict[str, Any] = {
        "receipt_version": RECEIPT_VERSION,
        "receipt_id": receipt_id or f"rcpt_{uuid.uuid4()}",
        "gateway_id": gateway_id,
        "provider": provider,
        "model": model,
        "request_hash_b64u": sha256_b64u(request),
        "response_hash_b64u": sha256_b64u(response),
        "tokens_input": tokens_input,
        "tokens_output": tokens_output,
        "latency_ms": latency_ms,
        "timestamp": timestamp or format_timestamp(),
        "binding": bound.to_dict(),
    }
    validate_receipt_payload(payload)
    return payload


def _binding(value: Mapping[str, Any]) -> ReceiptBinding:
    try:
        return ReceiptBinding.model_validate(dict(value))
    except ValidationError as exc:
        raise ReceiptError(
            ReasonCode.SCHEMA_VALIDATION_FAILED, f"bad receipt binding: {exc.errors()[0]['msg']}"
        ) from exc


def sign_receipt(
    payload: Mapping[str, Any], key: KeyPair, *, issued_at: str | None = None
) -> SignedEnvelope:
    """Sign a receipt payload as a ``gateway_receipt`` envelope (JCS payload order)."""
    validate_receipt_payload(payload)
    return sign_envelope(RECEIPT_ENVELOPE_TYPE, payload, key, issued_at=issued_at)


def verify_receipt_envelope(
    envelope: Any, *, plain_numbers: bool = False, signature: bool = True
) -> SignedEnvelope:
    """Verify a parsed ``gateway_receipt`` envelope by the numbered steps of docs/formats.md §2.

    Raises :class:`~ledger.errors.EnvelopeError` with the first failing step's code.
    ``plain_numbers`` and ``signature`` as for :func:`ledger.envelope.verify_envelope`.
    """
    return verify_envelope(
        envelope,
        {RECEIPT_ENVELOPE_TYPE: validate_receipt_payload},
        expected_type=RECEIPT_ENVELOPE_TYPE,
        plain_numbers=plain_numbers,
        signature=signature,
    )


def parse_receipt_bytes(raw: bytes | str) -> Any:
    """Parse the exact bytes of a receipt envelope, keeping key order."""
    data = raw.encode("utf-8") if isinstance(raw, str) else raw
    if len(data) > MAX_RECEIPT_BYTES:
        raise ReceiptError(
            ReasonCode.OVERSIZED, f"receipt is {len(data)} bytes, the limit is {MAX_RECEIPT_BYTES}"
        )
    try:
        return parse_json_strict(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ReceiptError(ReasonCode.MALFORMED_JSON, f"receipt is not JSON: {exc}") from exc


def check_receipt_bytes(payload: Mapping[str, Any], request: bytes, response: bytes) -> None:
    """The receipt's hashes are those of these exact bytes, else ``HASH_MISMATCH``."""
    for name, data in (("request", request), ("response", response)):
        if payload.get(f"{name}_hash_b64u") != sha256_b64u(data):
            raise ReceiptError(
                ReasonCode.HASH_MISMATCH, f"{name}_hash_b64u is not the hash of these {name} bytes"
            )


def check_receipt_binding(
    payload: Mapping[str, Any],
    *,
    run_id: str | None = None,
    event_hashes: Collection[str] | None = None,
    policy_hash: str | None = None,
    token_scope_hash_b64u: str | None = None,
) -> None:
    """The binding names this run and one of these events; when the receipt
    names a policy hash or token scope hash they are the ones given.
    ``RECEIPT_BINDING_MISMATCH`` otherwise. ``None`` arguments are not checked.
    """
    binding = payload.get("binding")
    if not isinstance(binding, Mapping):
        raise ReceiptError(ReasonCode.RECEIPT_BINDING_MISMATCH, "receipt has no binding")
    if run_id is not None and binding.get("run_id") != run_id:
        raise ReceiptError(
            ReasonCode.RECEIPT_BINDING_MISMATCH,
            f"receipt is bound to run {binding.get('run_id')!r}, not {run_id!r}",
        )
    if event_hashes is not None and binding.get("event_hash_b64u") not in set(event_hashes):
        raise ReceiptError(
            ReasonCode.RECEIPT_BINDING_MISMATCH,
            f"receipt names event {binding.get('event_hash_b64u')!r}, which is not in the run's"
            " event chain",
        )
    for name, want in (
        ("policy_hash", policy_hash),
        ("token_scope_hash_b64u", token_scope_hash_b64u),
    ):
        got = binding.get(name)
        if want is not None and got is not None and got != want:
            raise ReceiptError(
                ReasonCode.RECEIPT_BINDING_MISMATCH,
                f"receipt binding {name} is {got!r}, the run's is {want!r}",
            )
