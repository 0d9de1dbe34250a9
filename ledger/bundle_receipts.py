"""The other receipts a clawsig proof bundle may carry (docs/formats.md §6): tool,
side-effect and human-approval receipts, checked at the schema step.

The Claw Bureau schemas define them (``poh/tool_receipt.v1``, ``.v2``,
``tool_receipt_envelope.v1``, ``.v2``, and the ``side_effect_receipts`` and
``human_approval_receipts`` items of ``poh/proof_bundle.v1``). A bundle whose
entries break those shapes is refused where the clawsig verifier refuses it:
``SCHEMA_VALIDATION_FAILED`` at step 3, before the payload hash, so a bundle
that is both malformed and re-hashed by no one names the malformation.

This ledger records gateway receipts only: it does not verify these receipts'
signatures or bind them to the chain, and says so in its docs. The v2 tool
receipt's nested parts (binding, selective disclosures, co-signatures) are
checked for their JSON type only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ledger.envelope import ENVELOPE_FIELDS
from ledger.receipts import RFC3339_RE

__all__ = ["MAX_OTHER_RECEIPTS", "OTHER_RECEIPT_MEMBERS", "other_receipts_problem"]

#: ``maxItems`` of each array in the clawsig schema
MAX_OTHER_RECEIPTS = 1000

_B64U = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class _Check:
    """A JSON Schema keyword set for one member: its test and what it requires."""

    test: Callable[[Any], bool]
    says: str


def _const(value: str) -> _Check:
    return _Check(lambda x: type(x) is str and x == value, f"must be {value!r}")


def _enum(*values: str) -> _Check:
    return _Check(lambda x: type(x) is str and x in values, f"must be one of {list(values)}")


_STRING = _Check(lambda x: type(x) is str, "must be a string")
_NON_EMPTY = _Check(lambda x: type(x) is str and len(x) > 0, "must be a non-empty string")
_DID = _Check(lambda x: type(x) is str and x.startswith("did:"), "must be a DID")
_DATE_TIME = _Check(
    lambda x: type(x) is str and RFC3339_RE.fullmatch(x) is not None,
    "must be an RFC 3339 date-time",
)
_NON_NEGATIVE = _Check(
    lambda x: type(x) in (int, float) and x >= 0, "must be a number, zero or more"
)
_BOOLEAN = _Check(lambda x: type(x) is bool, "must be a boolean")
_OBJECT = _Check(lambda x: isinstance(x, Mapping), "must be an object")
_B64U_8 = _Check(
    lambda x: type(x) is str and len(x) >= 8 and _B64U.fullmatch(x) is not None,
    "must be base64url text of 8 characters or more",
)
_CO_SIGNATURES = _Check(
    lambda x: isinstance(x, list) and len(x) <= 16 and all(isinstance(s, Mapping) for s in x),
    "must be a list of at most 16 objects",
)


@dataclass(frozen=True, slots=True)
class _Shape:
    """An object schema: its members' checks, the required ones, and whether
    other members are refused (``additionalProperties: false``)."""

    members: Mapping[str, _Check]
    required: tuple[str, ...]
    closed: bool

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, Mapping):
            return "is not an object"
        missing = [name for name in self.required if name not in value]
        if missing:
            return f"lacks {', '.join(missing)}"
        if self.closed:
            unknown = sorted(set(value) - set(self.members))
            if unknown:
                return f"has unknown member(s) {', '.join(unknown)}"
        for name, check in self.members.items():
            if name in value and not check.test(value[name]):
                return f"{name} {check.says}"
        return None


_TOOL_V1 = _Shape(
    {
        "receipt_version": _const("1"),
        "receipt_id": _NON_EMPTY,
        "tool_name": _NON_EMPTY,
        "tool_version": _STRING,
        "args_hash_b64u": _NON_EMPTY,
        "result_hash_b64u": _NON_EMPTY,
        "result_status": _enum("success", "error", "timeout"),
        "hash_algorithm": _enum("SHA-256"),
        "agent_did": _NON_EMPTY,
        "timestamp": _DATE_TIME,
        "latency_ms": _NON_NEGATIVE,
        "binding": _OBJECT,
    },
    (
        "receipt_version",
        "receipt_id",
        "tool_name",
        "args_hash_b64u",
        "result_hash_b64u",
        "hash_algorithm",
        "agent_did",
        "timestamp",
        "latency_ms",
    ),
    closed=True,
)
_TOOL_V2 = _Shape(
    {
        **_TOOL_V1.members,
        "receipt_version": _const("2"),
        "args_hash_b64u": _B64U_8,
        "result_hash_b64u": _B64U_8,
        "hash_algorithm": _enum("SHA-256", "BLAKE3"),
        "agent_did": _DID,
        "args_salt_b64u": _B64U_8,
        "result_salt_b64u": _B64U_8,
        "args_disclosure": _OBJECT,
        "result_disclosure": _OBJECT,
    },
    (*_TOOL_V1.required, "args_salt_b64u", "result_salt_b64u"),
    closed=True,
)
_TOOL_ENVELOPE_V1 = _Shape(
    {
        "envelope_version": _const("1"),
        "envelope_type": _const("tool_receipt"),
        "payload": _OBJECT,
        "payload_hash_b64u": _NON_EMPTY,
        "hash_algorithm": _enum("SHA-256"),
        "signature_b64u": _NON_EMPTY,
        "algorithm": _enum("Ed25519"),
        "signer_did": _NON_EMPTY,
        "issued_at": _DATE_TIME,
        "expires_at": _DATE_TIME,
    },
    ENVELOPE_FIELDS,
    closed=True,
)
_TOOL_ENVELOPE_V2 = _Shape(
    {
        **_TOOL_ENVELOPE_V1.members,
        "envelope_version": _const("2"),
        "payload_hash_b64u": _B64U_8,
        "hash_algorithm": _enum("SHA-256", "BLAKE3"),
        "signature_b64u": _B64U_8,
        "signer_did": _DID,
        "co_signatures": _CO_SIGNATURES,
    },
    ENVELOPE_FIELDS,
    closed=True,
)


def _action_receipt(kind: Mapping[str, _Check], required: tuple[str, ...]) -> _Shape:
    """A side-effect or human-approval receipt: the members every such receipt
    has around those of its ``kind`` (in this order), and ``required`` between
    its id and its agent."""
    members = {
        "receipt_version": _const("1"),
        "receipt_id": _NON_EMPTY,
        **kind,
        "agent_did": _DID,
        "timestamp": _DATE_TIME,
        "binding": _OBJECT,
    }
    return _Shape(
        members,
        ("receipt_version", "receipt_id", *required, "agent_did", "timestamp"),
        closed=False,
    )


_SIDE_EFFECT = _action_receipt(
    {
        "effect_class": _enum("network_egress", "filesystem_write", "external_api_write"),
        "target_digest": _STRING,
        "request_digest": _STRING,
        "response_digest": _STRING,
        "hash_algorithm": _enum("SHA-256", "BLAKE3"),
        "vendor_id": _STRING,
        "bytes_written": _NON_NEGATIVE,
    },
    ("effect_class", "hash_algorithm"),
)
_HUMAN_APPROVAL = _action_receipt(
    {
        "approval_type": _enum("explicit_approve", "explicit_deny", "auto_approve", "timeout_deny"),
        "scope_hash_b64u": _STRING,
        "plan_hash_b64u": _STRING,
        "approver_subject": _STRING,
        "capability_minted": _BOOLEAN,
        "policy_hash_b64u": _STRING,
    },
    ("approval_type",),
)


def _tool_receipt_problem(value: Any) -> str | None:
    """``oneOf`` the four tool receipt forms; they differ by a version constant, so
    the form is chosen by it and any other problem is that form's."""
    if not isinstance(value, Mapping):
        return "is not an object"
    if "envelope_type" in value:
        envelope = _TOOL_ENVELOPE_V2 if value.get("envelope_version") == "2" else _TOOL_ENVELOPE_V1
        problem = envelope.problem(value)
        if problem is not None:
            return problem
        payload = _TOOL_V2 if envelope is _TOOL_ENVELOPE_V2 else _TOOL_V1
        inner = payload.problem(value["payload"])
        return None if inner is None else f"payload {inner}"
    return (_TOOL_V2 if value.get("receipt_version") == "2" else _TOOL_V1).problem(value)


#: bundle member -> the problem of one of its entries (``None``: it conforms)
OTHER_RECEIPT_MEMBERS: Mapping[str, Callable[[Any], str | None]] = {
    "tool_receipts": _tool_receipt_problem,
    "side_effect_receipts": _SIDE_EFFECT.problem,
    "human_approval_receipts": _HUMAN_APPROVAL.problem,
}


def other_receipts_problem(payload: Mapping[str, Any]) -> str | None:
    """The first way the bundle's tool, side-effect or human-approval receipts
    break their schemas, named by member and index; ``None`` when they conform."""
    for member, problem_of in OTHER_RECEIPT_MEMBERS.items():
        if member not in payload:
            continue
        entries = payload[member]
        if not isinstance(entries, list) or len(entries) > MAX_OTHER_RECEIPTS:
            return f"{member} must be a list of at most {MAX_OTHER_RECEIPTS} receipts"
        for index, entry in enumerate(entries):
            problem = problem_of(entry)
            if problem is not None:
                return f"{member}[{index}] {problem}"
    return None
