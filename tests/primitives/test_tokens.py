"""Scoped tokens (formats.md §4): claims, issuing, decoding, verification."""

from __future__ import annotations

import base64
import json

import pytest
from nacl.signing import VerifyKey

from ledger.encoding import b64u_decode, b64u_encode, sha256_b64u
from ledger.errors import PolicyError, ReasonCode, TokenError
from ledger.tokens import (
    DEFAULT_MAX_TTL_SECONDS,
    decode_token,
    issue_token,
    normalize_string_list,
    parse_ttl,
    scope_hash_input,
    token_scope_hash_b64u,
    verify_token,
)
from tests.core._helpers import key

from ._support import EXAMPLES, NOW, alpha_claims

WPC_HASH = EXAMPLES["wpc_example"]["policy_hash_b64u"]


def _claims(**over: object) -> dict[str, object]:
    return alpha_claims(
        **{"jti": "cst_test", "policy_hash_b64u": WPC_HASH, "mission_id": "job-42"} | over
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("900", 900), ("900s", 900), ("15m", 900), ("1h", 3600), ("2d", 172800), (" 5m ", 300)],
)
def test_parse_ttl(text: str, seconds: int) -> None:
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["0", "0s", "-5m", "15min", "", "1.5h", "m"])
def test_parse_ttl_refuses(text: str) -> None:
    with pytest.raises(TokenError) as info:
        parse_ttl(text)
    assert info.value.code == ReasonCode.TOKEN_BAD_LIFETIME


def test_claims_shape_and_scope_hash() -> None:
    claims = _claims()
    assert claims["token_version"] == "1"
    assert claims["exp"] == NOW + 900
    assert claims["iat"] == NOW
    assert claims["mission_id"] == "job-42"
    assert claims["policy_hash_b64u"] == WPC_HASH
    expected_input = {
        "token_version": "1",
        "sub": "agent:alpha",
        "aud": ["clawproxy"],
        "scope": ["proxy:call:anthropic", "tools:read"],
        "policy_hash_b64u": WPC_HASH,
        "mission_id": "job-42",
    }
    assert scope_hash_input(claims) == expected_input
    assert claims["token_scope_hash_b64u"] == token_scope_hash_b64u(expected_input)


def test_exp_not_after_iat() -> None:
    for ttl in (0, -1):
        with pytest.raises(TokenError) as info:
            _claims(ttl_seconds=ttl)
        assert info.value.code == ReasonCode.TOKEN_BAD_LIFETIME


def test_ttl_over_the_maximum() -> None:
    with pytest.raises(TokenError) as info:
        _claims(ttl_seconds=3601, max_ttl_seconds=3600)
    assert info.value.code == ReasonCode.TOKEN_TTL_EXCEEDED
    with pytest.raises(TokenError) as info:
        _claims(ttl_seconds=DEFAULT_MAX_TTL_SECONDS + 1)
    assert info.value.code == ReasonCode.TOKEN_TTL_EXCEEDED
    assert _claims(ttl_seconds=3600, max_ttl_seconds=3600)["exp"] == NOW + 3600


def test_empty_scope() -> None:
    for scope in ([], [""], ["  ", "\t"]):
        with pytest.raises(TokenError) as info:
            _claims(scope=scope)
        assert info.value.code == ReasonCode.TOKEN_EMPTY_SCOPE


def test_malformed_policy_hash() -> None:
    for bad in ("b64u:abc", "x" * 42, WPC_HASH + "A", "sha256:" + "0" * 64):
        with pytest.raises(PolicyError) as info:
            _claims(policy_hash_b64u=bad)
        assert info.value.code == ReasonCode.MALFORMED_POLICY_HASH


def test_normalisation_sorts_by_utf16_code_units() -> None:
    # U+FF61 sorts after U+1F600 by code point, before it by UTF-16 code unit (JavaScript)
    assert normalize_string_list(["\U0001f600", "\uff61"], "scope") == ["\U0001f600", "\uff61"]
    assert normalize_string_list(["b", "a", "b", " a "], "scope") == ["a", "b"]


def test_trimming_is_javascripts() -> None:
    """``String.prototype.trim`` (checked in Node 20): it strips U+FEFF, U+00A0 and
    U+2028; Python's ``str.strip`` would keep U+FEFF and strip U+001F and U+0085."""
    claims = {
        "sub": "\ufeff agent:alpha\u2028",
        "aud": "\xa0clawproxy",
        "scope": ["tools:read\ufeff", "\x1fproxy:call\x85", "\ufeff"],
        "mission_id": "\ufeff",
    }
    assert scope_hash_input(claims) == {
        "token_version": "1",
        "sub": "agent:alpha",
        "aud": ["clawproxy"],
        "scope": ["\x1fproxy:call\x85", "tools:read"],
    }
    example = EXAMPLES["scope_example"]
    padded = {
        "sub": "\ufeff" + example["input"]["sub"],
        "aud": example["input"]["aud"] + "\u3000",
        "scope": ["\ufeff" + item for item in example["input"]["scope"]],
    }
    assert token_scope_hash_b64u(padded) == example["token_scope_hash_b64u"]


def test_optional_scope_fields_follow_upstream() -> None:
    base = {"sub": "s", "aud": "a", "scope": ["x"]}
    assert scope_hash_input({**base, "agent_did": " did:key:z1 ", "owner_did": ""}) == {
        "token_version": "1",
        "sub": "s",
        "aud": ["a"],
        "scope": ["x"],
        "agent_did": "did:key:z1",
    }
    assert (
        scope_hash_input({**base, "spend_cap": 5, "delegation_expires_at": 10.7})[
            "delegation_expires_at"
        ]
        == 10
    )
    assert "spend_cap" not in scope_hash_input({**base, "spend_cap": True})


def test_token_header_is_exact_and_signature_is_ed25519() -> None:
    issuer = key(3)
    issued = issue_token(_claims(), issuer)
    head, body, sig = issued.token.split(".")
    assert b64u_decode(head) == (
        b'{"alg":"EdDSA","typ":"JWT","kid":"' + issuer.kid.encode() + b'"}'
    )
    assert json.loads(b64u_decode(body)) == issued.claims
    VerifyKey(issuer.public_key).verify(f"{head}.{body}".encode(), b64u_decode(sig))
    assert issued.token_sha256_b64u == sha256_b64u(issued.token.encode())


def test_event_body_never_holds_the_token() -> None:
    issued = issue_token(_claims(), key(3))
    body = issued.event_body(key(3).did)
    text = json.dumps(body)
    assert issued.token not in text
    assert issued.token.split(".")[2] not in text
    assert body["token_sha256_b64u"] == issued.token_sha256_b64u
    assert body["mission_id"] == "job-42"


def test_verify_round_trip_and_expiry() -> None:
    issuer = key(3)
    issued = issue_token(_claims(), issuer)
    decoded = verify_token(issued.token, issuer.did, now=NOW + 10)
    assert decoded.jti == "cst_test"
    with pytest.raises(TokenError) as info:
        verify_token(issued.token, issuer.did, now=NOW + 900)
    assert info.value.code == ReasonCode.TOKEN_EXPIRED
    verify_token(issued.token, issuer.did, check_expiry=False)


def test_verify_against_another_issuer() -> None:
    issued = issue_token(_claims(), key(3))
    with pytest.raises(TokenError) as info:
        verify_token(issued.token, key(4).did, now=NOW)
    assert info.value.code == ReasonCode.TOKEN_SIGNATURE_INVALID


def _reencode(token: str, **changes: object) -> str:
    head, body, sig = token.split(".")
    claims = json.loads(b64u_decode(body))
    claims.update(changes)
    return f"{head}.{b64u_encode(json.dumps(claims).encode())}.{sig}"


def test_edited_claims_break_the_signature() -> None:
    issuer = key(3)
    issued = issue_token(_claims(), issuer)
    forged = _reencode(issued.token, exp=NOW + 99999)
    with pytest.raises(TokenError) as info:
        verify_token(forged, issuer.did, now=NOW)
    assert info.value.code == ReasonCode.TOKEN_SIGNATURE_INVALID


def test_scope_hash_claim_must_match() -> None:
    issuer = key(3)
    claims = _claims()
    claims["scope"] = ["everything"]  # scope changed, claimed hash kept
    issued = issue_token(claims, issuer)
    with pytest.raises(TokenError) as info:
        verify_token(issued.token, issuer.did, now=NOW)
    assert info.value.code == ReasonCode.TOKEN_SCOPE_HASH_MISMATCH


@pytest.mark.parametrize(
    "token",
    [
        "",
        "a.b",
        "a.b.c.d",
        "!!!.e30.AAAA",
        b64u_encode(b'{"alg":"none"}') + "." + b64u_encode(b'{"token_version":"1"}') + ".AAAA",
        b64u_encode(b'{"alg":"HS256","kid":"x"}') + "." + b64u_encode(b"{}") + ".AAAA",
        b64u_encode(b'{"alg":"EdDSA","kid":"x"}') + "." + b64u_encode(b"[]") + ".AAAA",
        base64.b64encode(b'{"alg":"EdDSA","kid":"x"}').decode() + ".e30.AA==",
        "x" * 9000,
    ],
)
def test_decode_refuses_malformed(token: str) -> None:
    with pytest.raises(TokenError) as info:
        decode_token(token)
    assert info.value.code == ReasonCode.TOKEN_MALFORMED
