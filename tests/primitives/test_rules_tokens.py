"""The token rules: token.issued (its pins, lifetime, scope and issuer) and token.revoked."""

from __future__ import annotations

from ledger.errors import ReasonCode
from ledger.registry import RuleSettings
from ledger.wpc import policy_hash_b64u

from ._rules_support import OTHER_WPC, _issue_refused
from ._support import NOW, Ledger


def test_token_pins(ledger: Ledger) -> None:
    unknown = policy_hash_b64u(OTHER_WPC)
    assert _issue_refused(ledger, ledger.token(policy=unknown)[1]) == ReasonCode.WPC_UNKNOWN
    wpc = ledger.publish_wpc()
    ledger.issue(policy=wpc)
    ledger.ok(
        ledger.keys.policy_admin,
        "policy.revoked",
        f"policy:{wpc}",
        {"policy_hash_b64u": wpc, "reason": "allows exec"},
    )
    assert _issue_refused(ledger, ledger.token(policy=wpc)[1]) == ReasonCode.WPC_REVOKED
    body = ledger.token()[1]
    body["policy_hash_b64u"] = "not-a-policy-hash"
    assert _issue_refused(ledger, body) == ReasonCode.MALFORMED_POLICY_HASH


def test_token_pin_to_superseded_wpc(ledger: Ledger) -> None:
    old, new = ledger.publish_wpc(), ledger.publish_wpc(OTHER_WPC)
    ledger.ok(
        ledger.keys.policy_admin,
        "policy.superseded",
        f"policy:{old}",
        {"old_policy_hash_b64u": old, "new_policy_hash_b64u": new},
    )
    assert _issue_refused(ledger, ledger.token(policy=old)[1]) == ReasonCode.WPC_SUPERSEDED
    ledger.issue(policy=new)


def test_token_lifetimes(ledger: Ledger) -> None:
    body = ledger.token()[1]
    body["exp"] = body["iat"]
    assert _issue_refused(ledger, body) == ReasonCode.TOKEN_BAD_LIFETIME
    body["exp"] = body["iat"] - 10
    assert _issue_refused(ledger, body) == ReasonCode.TOKEN_BAD_LIFETIME
    body["exp"] = body["iat"] + 24 * 3600 + 1
    assert _issue_refused(ledger, body) == ReasonCode.TOKEN_TTL_EXCEEDED
    ledger.settings = RuleSettings(max_token_ttl_seconds=600)
    assert _issue_refused(ledger, ledger.token(ttl=900)[1]) == ReasonCode.TOKEN_TTL_EXCEEDED
    ledger.issue(ttl=600)
    expired = ledger.token(now=NOW - 1000, ttl=600)[1]
    assert _issue_refused(ledger, expired) == ReasonCode.TOKEN_EXPIRED
    future = ledger.token(now=NOW + 3600, ttl=600)[1]
    assert _issue_refused(ledger, future) == ReasonCode.TOKEN_BAD_LIFETIME


def test_token_scope(ledger: Ledger) -> None:
    body = ledger.token()[1]
    body["scope"] = []
    assert _issue_refused(ledger, body) == ReasonCode.TOKEN_EMPTY_SCOPE
    body["scope"] = ["  "]
    assert _issue_refused(ledger, body) == ReasonCode.TOKEN_EMPTY_SCOPE
    body = ledger.token()[1]
    body["scope"] = ["proxy:call:anthropic", "tools:read", "tools:write"]
    assert _issue_refused(ledger, body) == ReasonCode.TOKEN_SCOPE_HASH_MISMATCH


def test_token_identity_checks(ledger: Ledger) -> None:
    body = ledger.issue()
    assert _issue_refused(ledger, body) == ReasonCode.TOKEN_ALREADY_ISSUED
    other = ledger.token()[1]
    other["issuer_did"] = ledger.keys.operator.did
    assert _issue_refused(ledger, other) == ReasonCode.PRODUCER_MISMATCH
    other = ledger.token()[1]
    other["kid"] = "0123456789abcdef"
    assert _issue_refused(ledger, other) == ReasonCode.TOKEN_MALFORMED
    other = ledger.token()[1]
    other["issuer_did"] = ledger.keys.gateway.did
    assert _issue_refused(ledger, other, ledger.keys.gateway) == ReasonCode.ROLE_NOT_ALLOWED


def test_token_revocation(ledger: Ledger) -> None:
    body = ledger.issue()
    stream = f"token:{body['jti']}"
    revoke = {"jti": body["jti"], "reason": "leaked"}
    assert ledger.refused(ledger.keys.gateway, "token.revoked", stream, revoke).code == (
        ReasonCode.ROLE_NOT_ALLOWED
    )
    ledger.ok(ledger.keys.operator, "token.revoked", stream, revoke)
    assert ledger.state.tokens[body["jti"]]["status"] == "revoked"
    assert ledger.state.tokens[body["jti"]]["revoked_by"] == ledger.keys.operator.did
    assert ledger.refused(ledger.keys.issuer, "token.revoked", stream, revoke).code == (
        ReasonCode.TOKEN_REVOKED
    )
    unknown = {"jti": "cst_nothing", "reason": "x"}
    assert ledger.refused(
        ledger.keys.issuer, "token.revoked", "token:cst_nothing", unknown
    ).code == (ReasonCode.TOKEN_UNKNOWN)
