"""Canonical JSON.

* :func:`jcs` is RFC 8785 (the ``rfc8785`` package): what we sign and hash.
* :func:`compact_json` is ``JSON.stringify`` in document order: what the
  clawsig verifier hashes for ``payload_hash_b64u`` (formats.md §2).
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

__all__ = ["compact_json", "jcs", "jcs_hash_b64u", "parse_json_strict"]


def jcs(value: Any) -> bytes:
    """RFC 8785 canonical bytes of ``value``."""
    return rfc8785.dumps(value)


def jcs_hash_b64u(value: Any) -> str:
    """b64u(SHA-256(JCS(value))) — the identity of WPCs, URMs and scope inputs."""
    from ledger.encoding import sha256_b64u

    return sha256_b64u(jcs(value))


def compact_json(value: Any) -> bytes:
    """``JSON.stringify(value)``: document key order, no whitespace, UTF-8."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
        "utf-8"
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON constant {name}")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def parse_json_strict(data: bytes) -> Any:
    """Parse JSON bytes refusing NaN/Infinity, duplicate keys and invalid UTF-8.

    Duplicate keys are refused because two parsers may keep different values,
    and the bytes that were signed must mean one thing.
    """
    text = data.decode("utf-8")
    return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicate_keys)
