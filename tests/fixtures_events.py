"""Signed ledger events that several test modules publish, built one way."""

from __future__ import annotations

import time
from typing import Any

from ledger.crypto import KeyPair
from ledger.events import build_event, sign_event
from ledger.tokens import build_claims, issue_token


def signed_event(event_type: str, stream: str, body: dict[str, Any], key: KeyPair) -> bytes:
    """The envelope bytes of ``event_type`` on ``stream``, signed by ``key``."""
    return sign_event(build_event(event_type, stream, body, key), key).to_bytes()


def token_issued(issuer: KeyPair, policy_hash_b64u: str, sub: str = "agent:a") -> tuple[str, bytes]:
    """``(jti, token.issued)``: a 15-minute token for ``sub`` pinned to the WPC."""
    claims = build_claims(
        sub=sub,
        aud="clawproxy",
        scope=["tool:search"],
        ttl_seconds=900,
        now=int(time.time()),
        policy_hash_b64u=policy_hash_b64u,
    )
    body = issue_token(claims, issuer).event_body(issuer.did)
    jti = str(body["jti"])
    return jti, signed_event("token.issued", f"token:{jti}", body, issuer)


def policy_attested(signer: KeyPair) -> bytes:
    """A ``policy.attested``: evidence only, it writes no control row."""
    body = {
        "ok": True,
        "policy_hash": None,
        "workspace_hash": "w",
        "findings_hash": "f",
        "attestation_hash": "a",
        "checked_at": "2026-12-02T10:00:00Z",
        "policy_path": "policy.yaml",
        "findings_count": 0,
    }
    return signed_event("policy.attested", "openclaw-policy:ws", body, signer)
