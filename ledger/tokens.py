"""Scoped tokens (CST, docs/formats.md §4): issue, decode, verify, scope hash.

A CST is a compact JWS (JWT) signed with Ed25519 ("EdDSA"). It is built by
hand so that the bytes are exactly what the Claw Bureau issuer produces:

* header, in this key order: ``{"alg":"EdDSA","typ":"JWT","kid":"<kid>"}``
  where ``kid`` is the first 16 hex characters of SHA-256(public key);
* claims, serialised with JCS: ``token_version:"1"``, ``sub``, ``aud``,
  ``scope``, ``iat``, ``exp``, ``jti``, optional ``nonce``, optional
  ``policy_hash_b64u`` (WPC pin), optional ``mission_id`` (job binding) and
  ``token_scope_hash_b64u``.

The raw token is a bearer secret: the ledger records its ``jti`` and
:func:`token_sha256_b64u`, never the token.
"""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from ledger.canonical import jcs, jcs_hash_b64u, parse_json_strict
from ledger.crypto import KeyPair, kid_for_public_key, public_key_from_did
from ledger.encoding import B64U_SHA256_RE, b64u_decode, b64u_encode, sha256_b64u
from ledger.errors import PolicyError, ReasonCode, RejectedError, TokenError
from ledger.javascript import js_trim

__all__ = [
    "CLOCK_SKEW_SECONDS",
    "DEFAULT_MAX_TTL_SECONDS",
    "DEFAULT_TTL_SECONDS",
    "HARD_MAX_TTL_SECONDS",
    "JTI_RE",
    "MAX_TOKEN_BYTES",
    "SUBJECT_PATTERN",
    "TOKEN_VERSION",
    "DecodedToken",
    "IssuedToken",
    "build_claims",
    "check_lifetime",
    "decode_token",
    "issue_token",
    "normalize_string_list",
    "parse_ttl",
    "scope_hash_input",
    "token_scope_hash_b64u",
    "token_sha256_b64u",
    "verify_token",
]

TOKEN_VERSION = "1"
DEFAULT_TTL_SECONDS = 15 * 60
#: Default ceiling of a token's lifetime (``exp - iat``); configurable per issuer/processor.
DEFAULT_MAX_TTL_SECONDS = 24 * 3600
#: No configuration may allow more than this.
HARD_MAX_TTL_SECONDS = 30 * 24 * 3600
#: Tolerated clock difference between an issuer and the ledger (``iat`` in the future).
CLOCK_SKEW_SECONDS = 60
MAX_TOKEN_BYTES = 8192
JTI_RE = re.compile(r"^[A-Za-z0-9._:-]{1,200}$")
#: A token's subject: what a halt of ``sub:<s>`` names, so the same as there. A
#: subject with whitespace or over 300 characters could never be halted as one.
SUBJECT_PATTERN = r"^\S{1,300}$"
_SUBJECT_RE = re.compile(SUBJECT_PATTERN)

#: Optional scope-hash fields that enter the hash when they are non-empty strings
#: (trimmed), as in the Claw Bureau identity-auth package.
_SCOPE_HASH_STRING_FIELDS: tuple[str, ...] = (
    "owner_ref",
    "owner_did",
    "controller_did",
    "agent_did",
    "policy_hash_b64u",
    "control_plane_policy_hash_b64u",
    "payment_account_did",
    "mission_id",
    "delegation_id",
    "delegator_did",
    "delegate_did",
    "delegation_policy_hash_b64u",
)

_TTL_RE = re.compile(r"^\s*(\d{1,9})\s*([smhd]?)\s*$")
_TTL_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


# --- scope hash -----------------------------------------------------------------


def _utf16_key(text: str) -> bytes:
    # JavaScript's default sort compares UTF-16 code units; so does this key.
    return text.encode("utf-16-be", "surrogatepass")


def normalize_string_list(values: str | Sequence[str], field: str) -> list[str]:
    """Trim (as JavaScript's ``trim``), drop empty, de-duplicate, sort (by UTF-16
    code units, like JavaScript's default sort)."""
    items: Sequence[Any] = [values] if isinstance(values, str) else values
    if not isinstance(items, Sequence) or isinstance(items, bytes | bytearray):
        raise TokenError(ReasonCode.TOKEN_MALFORMED, f"{field} must be a string or a list")
    out: set[str] = set()
    for item in items:
        if not isinstance(item, str):
            raise TokenError(ReasonCode.TOKEN_MALFORMED, f"{field} entries must be strings")
        text = js_trim(item)
        if text:
            out.add(text)
    return sorted(out, key=_utf16_key)


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def scope_hash_input(claims: Mapping[str, Any]) -> dict[str, Any]:
    """The object whose JCS hash is ``token_scope_hash_b64u`` (docs/formats.md §4).

    ``{"token_version":"1","sub":trim(sub),"aud":A,"scope":S}`` plus each
    optional field that is a non-empty string after trimming. ``iat``, ``exp``,
    ``jti`` and ``nonce`` never enter it. Refuses an empty ``sub`` or ``scope``.
    """
    sub = claims.get("sub")
    if not isinstance(sub, str) or not js_trim(sub):
        raise TokenError(ReasonCode.TOKEN_MALFORMED, "sub must be a non-empty string")
    if "aud" not in claims or "scope" not in claims:
        raise TokenError(ReasonCode.TOKEN_MALFORMED, "aud and scope are required")
    aud = normalize_string_list(claims["aud"], "aud")
    scope_value = claims["scope"]
    if isinstance(scope_value, str):
        raise TokenError(ReasonCode.TOKEN_MALFORMED, "scope must be a list of strings")
    scope = normalize_string_list(scope_value, "scope")
    if not aud:
        raise TokenError(ReasonCode.TOKEN_MALFORMED, "aud is empty")
    if not scope:
        raise TokenError(
            ReasonCode.TOKEN_EMPTY_SCOPE, "scope is empty: a token must grant something"
        )
    out: dict[str, Any] = {
        "token_version": TOKEN_VERSION,
        "sub": js_trim(sub),
        "aud": aud,
        "scope": scope,
    }
    for name in _SCOPE_HASH_STRING_FIELDS:
        value = claims.get(name)
        if isinstance(value, str) and js_trim(value):
            out[name] = js_trim(value)
    spend_cap = claims.get("spend_cap")
    if _is_number(spend_cap) and spend_cap >= 0:
        out["spend_cap"] = spend_cap
    minor = claims.get("delegation_spend_cap_minor")
    if isinstance(minor, str) and re.fullmatch(r"[0-9]+", js_trim(minor)):
        out["delegation_spend_cap_minor"] = js_trim(minor)
    expires = claims.get("delegation_expires_at")
    if _is_number(expires) and expires > 0:
        out["delegation_expires_at"] = math.floor(expires)
    return out


def token_scope_hash_b64u(claims: Mapping[str, Any]) -> str:
    """b64u(SHA-256(JCS(:func:`scope_hash_input`)))."""
    return jcs_hash_b64u(scope_hash_input(claims))


def token_sha256_b64u(token: str) -> str:
    """What the ledger records instead of the bearer token."""
    return sha256_b64u(js_trim(token).encode("ascii"))


# --- lifetimes ------------------------------------------------------------------------


def parse_ttl(text: str) -> int:
    """``900``, ``900s``, ``15m``, ``1h``, ``2d`` → seconds (> 0)."""
    match = _TTL_RE.fullmatch(text)
    if not match:
        raise TokenError(
            ReasonCode.TOKEN_BAD_LIFETIME,
            f"bad TTL {text!r}",
            hint="use a number of seconds or a number followed by s, m, h or d, e.g. 15m",
        )
    seconds = int(match.group(1)) * _TTL_UNITS[match.group(2)]
    if seconds <= 0:
        raise TokenError(ReasonCode.TOKEN_BAD_LIFETIME, f"TTL {text!r} is not positive")
    return seconds


def check_lifetime(iat: Any, exp: Any, *, max_ttl_seconds: int = DEFAULT_MAX_TTL_SECONDS) -> None:
    """``iat``/``exp`` are integers, ``exp > iat`` and ``exp - iat <= max_ttl_seconds``."""
    for name, value in (("iat", iat), ("exp", exp)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise TokenError(
                ReasonCode.TOKEN_MALFORMED, f"{name} must be a non-negative integer (seconds)"
            )
    if exp <= iat:
        raise TokenError(
            ReasonCode.TOKEN_BAD_LIFETIME, f"exp ({exp}) must be later than iat ({iat})"
        )
    limit = min(max_ttl_seconds, HARD_MAX_TTL_SECONDS)
    if exp - iat > limit:
        raise TokenError(
            ReasonCode.TOKEN_TTL_EXCEEDED,
            f"lifetime {exp - iat}s exceeds the maximum of {limit}s",
            hint="issue a shorter-lived token (--ttl) or raise the configured maximum",
        )


# --- issuing --------------------------------------------------------------------------


def _header(kid: str) -> dict[str, str]:
    return {"alg": "EdDSA", "typ": "JWT", "kid": kid}


def _header_bytes(kid: str) -> bytes:
    # exact key order of docs/formats.md §4 (not JCS order)
    return json.dumps(_header(kid), separators=(",", ":")).encode("ascii")


def build_claims(
    *,
    sub: str,
    aud: str | Sequence[str],
    scope: Sequence[str],
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
    now: int | None = None,
    jti: str | None = None,
    nonce: str | None = None,
    policy_hash_b64u: str | None = None,
    mission_id: str | None = None,
    max_ttl_seconds: int = DEFAULT_MAX_TTL_SECONDS,
) -> dict[str, Any]:
    """Validated claims for a new token, ``token_scope_hash_b64u`` included.

    Raises ``TOKEN_EMPTY_SCOPE``, ``TOKEN_BAD_LIFETIME``, ``TOKEN_TTL_EXCEEDED``,
    ``TOKEN_MALFORMED`` or ``MALFORMED_POLICY_HASH``.
    """
    iat = int(time.time()) if now is None else now
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int) or ttl_seconds <= 0:
        raise TokenError(ReasonCode.TOKEN_BAD_LIFETIME, f"TTL must be positive, got {ttl_seconds}")
    exp = iat + ttl_seconds
    check_lifetime(iat, exp, max_ttl_seconds=max_ttl_seconds)
    aud_list = normalize_string_list(aud, "aud")
    scope_list = normalize_string_list(list(scope), "scope")
    if not scope_list:
        raise TokenError(
            ReasonCode.TOKEN_EMPTY_SCOPE, "scope is empty: a token must grant something"
        )
    if not aud_list:
        raise TokenError(ReasonCode.TOKEN_MALFORMED, "aud is empty")
    if not js_trim(sub):
        raise TokenError(ReasonCode.TOKEN_MALFORMED, "sub is empty")
    if not _SUBJECT_RE.fullmatch(js_trim(sub)):
        raise TokenError(
            ReasonCode.TOKEN_MALFORMED,
            f"sub {sub!r} cannot be halted as a subject: use 1-300 characters, no whitespace",
        )
    token_id = jti or f"cst_{uuid.uuid4().hex}"
    if not JTI_RE.fullmatch(token_id):
        raise TokenError(ReasonCode.TOKEN_MALFORMED, f"jti {token_id!r} is not allowed")
    claims: dict[str, Any] = {
        "token_version": TOKEN_VERSION,
        "sub": js_trim(sub),
        "aud": aud_list[0] if len(aud_list) == 1 else aud_list,
        "scope": scope_list,
        "iat": iat,
        "exp": exp,
        "jti": token_id,
    }
    if nonce:
        claims["nonce"] = nonce
    if policy_hash_b64u is not None:
        if not B64U_SHA256_RE.fullmatch(policy_hash_b64u):
            raise PolicyError(
                ReasonCode.MALFORMED_POLICY_HASH,
                f"{policy_hash_b64u!r} is not a policy hash (43 base64url characters)",
            )
        claims["policy_hash_b64u"] = policy_hash_b64u
    if mission_id is not None:
        if not js_trim(mission_id):
            raise TokenError(ReasonCode.TOKEN_MALFORMED, "mission_id (job) is empty")
        claims["mission_id"] = js_trim(mission_id)
    claims["token_scope_hash_b64u"] = token_scope_hash_b64u(claims)
    return claims


@dataclass(frozen=True)
class IssuedToken:
    """A freshly signed token and what the ledger may record about it."""

    token: str
    header: dict[str, str]
    claims: dict[str, Any]

    @property
    def jti(self) -> str:
        return str(self.claims["jti"])

    @property
    def token_scope_hash_b64u(self) -> str:
        return str(self.claims["token_scope_hash_b64u"])

    @property
    def token_sha256_b64u(self) -> str:
        return token_sha256_b64u(self.token)

    def event_body(self, issuer_did: str) -> dict[str, Any]:
        """The ``token.issued`` body: claims, scope hash and token hash, never the token."""
        body: dict[str, Any] = {
            "jti": self.jti,
            "sub": self.claims["sub"],
            "aud": self.claims["aud"],
            "scope": list(self.claims["scope"]),
            "iat": self.claims["iat"],
            "exp": self.claims["exp"],
            "kid": self.header["kid"],
            "issuer_did": issuer_did,
            "token_scope_hash_b64u": self.token_scope_hash_b64u,
            "token_sha256_b64u": self.token_sha256_b64u,
        }
        for name in ("policy_hash_b64u", "mission_id", "nonce"):
            if name in self.claims:
                body[name] = self.claims[name]
        return body


def issue_token(claims: Mapping[str, Any], key: KeyPair) -> IssuedToken:
    """Sign ``claims`` (from :func:`build_claims`) as a compact EdDSA JWT."""
    header = _header(key.kid)
    signing_input = (
        b64u_encode(_header_bytes(key.kid)) + "." + b64u_encode(jcs(dict(claims)))
    ).encode("ascii")
    token = signing_input.decode("ascii") + "." + b64u_encode(key.sign(signing_input))
    return IssuedToken(token=token, header=header, claims=dict(claims))


# --- decoding and verification -------------------------------------------------------


@dataclass(frozen=True)
class DecodedToken:
    """A token split and parsed; nothing about it is trusted yet."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes
    token_sha256_b64u: str

    @property
    def kid(self) -> str:
        return str(self.header.get("kid", ""))

    @property
    def jti(self) -> str | None:
        jti = self.claims.get("jti")
        return jti if isinstance(jti, str) else None


def decode_token(token: str) -> DecodedToken:
    """Split and parse a compact token; ``TOKEN_MALFORMED`` on anything unexpected."""
    token = js_trim(token)
    if len(token) > MAX_TOKEN_BYTES:
        raise TokenError(ReasonCode.TOKEN_MALFORMED, f"token longer than {MAX_TOKEN_BYTES} bytes")
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        raise TokenError(
            ReasonCode.TOKEN_MALFORMED, "a token has three non-empty dot-separated parts"
        )
    try:
        header = parse_json_strict(b64u_decode(parts[0]))
        claims = parse_json_strict(b64u_decode(parts[1]))
        signature = b64u_decode(parts[2])
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise TokenError(
            ReasonCode.TOKEN_MALFORMED, f"token parts are not base64url JSON: {exc}"
        ) from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise TokenError(ReasonCode.TOKEN_MALFORMED, "token header and claims must be JSON objects")
    if header.get("alg") != "EdDSA" or header.get("typ", "JWT") != "JWT":
        raise TokenError(
            ReasonCode.TOKEN_MALFORMED, f"unsupported token header {header!r} (need alg EdDSA)"
        )
    if not isinstance(header.get("kid"), str):
        raise TokenError(ReasonCode.TOKEN_MALFORMED, "token header has no kid")
    if claims.get("token_version") != TOKEN_VERSION:
        raise TokenError(
            ReasonCode.TOKEN_MALFORMED,
            f"token_version {claims.get('token_version')!r} is not supported",
        )
    if len(signature) != 64:
        raise TokenError(ReasonCode.TOKEN_MALFORMED, "an Ed25519 signature is 64 bytes")
    return DecodedToken(
        header=header,
        claims=claims,
        signing_input=f"{parts[0]}.{parts[1]}".encode("ascii"),
        signature=signature,
        token_sha256_b64u=token_sha256_b64u(token),
    )


def verify_token(
    token: str | DecodedToken,
    issuer_did: str,
    *,
    now: int | None = None,
    check_expiry: bool = True,
    max_ttl_seconds: int = HARD_MAX_TTL_SECONDS,
) -> DecodedToken:
    """Check a token against its issuer: kid, signature, scope hash, lifetime, expiry.

    Reason codes: ``TOKEN_MALFORMED``, ``TOKEN_SIGNATURE_INVALID`` (also when the
    ``kid`` does not name the issuer's key), ``TOKEN_SCOPE_HASH_MISMATCH``,
    ``TOKEN_BAD_LIFETIME``, ``TOKEN_TTL_EXCEEDED``, ``TOKEN_EXPIRED``.
    """
    decoded = token if isinstance(token, DecodedToken) else decode_token(token)
    try:
        verify_key = public_key_from_did(issuer_did)
    except RejectedError as exc:
        raise TokenError(ReasonCode.TOKEN_SIGNATURE_INVALID, exc.detail) from exc
    if decoded.kid != kid_for_public_key(bytes(verify_key)):
        raise TokenError(
            ReasonCode.TOKEN_SIGNATURE_INVALID, f"kid {decoded.kid!r} does not name {issuer_did}"
        )
    try:
        verify_key.verify(decoded.signing_input, decoded.signature)
    except Exception as exc:  # nacl BadSignatureError / ValueError
        raise TokenError(
            ReasonCode.TOKEN_SIGNATURE_INVALID, "token signature does not verify"
        ) from exc
    claims = decoded.claims
    jti = claims.get("jti")
    if not isinstance(jti, str) or not JTI_RE.fullmatch(jti):
        raise TokenError(ReasonCode.TOKEN_MALFORMED, "jti is missing or not allowed")
    claimed = claims.get("token_scope_hash_b64u")
    computed = token_scope_hash_b64u(claims)
    if claimed != computed:
        raise TokenError(
            ReasonCode.TOKEN_SCOPE_HASH_MISMATCH,
            f"token_scope_hash_b64u is {claimed!r}, the claims hash to {computed}",
        )
    check_lifetime(claims.get("iat"), claims.get("exp"), max_ttl_seconds=max_ttl_seconds)
    if check_expiry:
        moment = int(time.time()) if now is None else now
        if moment >= claims["exp"]:
            raise TokenError(ReasonCode.TOKEN_EXPIRED, f"token {jti} expired at {claims['exp']}")
        if claims["iat"] > moment + CLOCK_SKEW_SECONDS:
            raise TokenError(ReasonCode.TOKEN_BAD_LIFETIME, f"token {jti} is not valid yet")
    return decoded
