"""Byte-exact golden files made with the RFC 8032 test-1 key.

They pin what this code emits: a change of one byte in a token, a signed
WPC, a receipt or an approval fails here. Regenerate deliberately with
``CLAW_LEDGER_UPDATE_GOLDEN=1 pytest tests/primitives/test_golden.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from nacl.signing import VerifyKey

from ledger.crypto import KeyPair
from ledger.encoding import b64u_decode
from ledger.receipts import sign_receipt, verify_receipt_envelope
from ledger.tokens import build_claims, issue_token, verify_token
from ledger.urm import approval_signing_bytes, sign_approval, urm_hash_b64u, verify_approval
from ledger.wpc import sign_wpc, verify_wpc_envelope
from tests.core._helpers import receipt_payload

from ._support import EXAMPLES, GOLDEN, NOW, NOW_TS, RFC8032_SEED, WPC_EXAMPLE, Ledger

KEY = KeyPair.from_seed(RFC8032_SEED)
WPC_HASH = EXAMPLES["wpc_example"]["policy_hash_b64u"]
UPDATE = os.environ.get("CLAW_LEDGER_UPDATE_GOLDEN") == "1"


def _golden(name: str, produced: bytes) -> bytes:
    path: Path = GOLDEN / name
    if UPDATE:
        path.write_bytes(produced)
    assert path.exists(), f"missing golden file {path}"
    return path.read_bytes()


def _cst() -> str:
    claims = build_claims(
        sub="agent:alpha",
        aud="clawproxy",
        scope=["proxy:call:anthropic", "tools:read"],
        ttl_seconds=900,
        now=NOW,
        jti="cst_golden_0001",
        policy_hash_b64u=WPC_HASH,
        mission_id="job-golden",
    )
    return issue_token(claims, KEY).token


def test_cst_golden() -> None:
    token = _cst()
    assert token.encode() + b"\n" == _golden("cst.jwt", token.encode() + b"\n")
    head, body, signature = token.split(".")
    assert b64u_decode(head) == b'{"alg":"EdDSA","typ":"JWT","kid":"' + KEY.kid.encode() + b'"}'
    VerifyKey(KEY.public_key).verify(f"{head}.{body}".encode(), b64u_decode(signature))
    claims = verify_token(token, KEY.did, now=NOW).claims
    assert claims["mission_id"] == "job-golden"
    assert claims["policy_hash_b64u"] == WPC_HASH


def test_wpc_envelope_golden() -> None:
    produced = sign_wpc(WPC_EXAMPLE, KEY, issued_at=NOW_TS).to_bytes()
    golden = _golden("wpc_envelope.json", produced)
    assert produced == golden
    envelope = json.loads(golden)
    assert envelope["signer_did"] == EXAMPLES["rfc8032_test1"]["did_key"]
    assert verify_wpc_envelope(envelope, expected_hash=WPC_HASH).policy_hash_b64u == WPC_HASH


def test_gateway_receipt_golden() -> None:
    payload = receipt_payload(
        {
            "run_id": "job-golden",
            "event_hash_b64u": "mo72_ab1UHvxY2DERZG2Tn12KNl2e_NSUrVDEQ5-Jds",
            "nonce": "nonce_golden",
            "policy_hash": WPC_HASH,
        },
        request=b'{"model":"claude-test","messages":[{"role":"user","content":"hi"}]}',
        response=b'{"content":[{"type":"text","text":"hello"}]}',
        gateway_id="gw_golden",
        # the golden bytes hold the default provider, model and token counts
        latency_ms=123,
        receipt_id="rcpt_00000000-0000-4000-8000-000000000001",
        timestamp=NOW_TS,
    )
    produced = sign_receipt(payload, KEY, issued_at=NOW_TS).to_bytes()
    assert produced == _golden("gateway_receipt.json", produced)
    assert verify_receipt_envelope(json.loads(produced)).signer_did == KEY.did


def test_urm_approval_golden() -> None:
    urm = Ledger().urm("job-golden", WPC_HASH, "7e_jFMJ7ZusdR84fPjfCRzz9_rWXm5kLjZFrxm-JVm0")
    digest = urm_hash_b64u(urm)
    approval = sign_approval(digest, KEY, approved_at=NOW_TS)
    produced = (json.dumps(approval, indent=2) + "\n").encode()
    assert produced == _golden("urm_approval.json", produced)
    assert verify_approval(json.loads(produced), digest) == KEY.did
    message = approval_signing_bytes(digest, NOW_TS)
    VerifyKey(KEY.public_key).verify(message, b64u_decode(approval["signature_b64u"]))


@pytest.mark.skipif(not UPDATE, reason="only when regenerating")
def test_golden_files_were_regenerated() -> None:
    assert sorted(p.name for p in GOLDEN.iterdir()) == [
        "cst.jwt",
        "gateway_receipt.json",
        "urm_approval.json",
        "wpc_envelope.json",
    ]
