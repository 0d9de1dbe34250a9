"""Shared values for the pure domain tests: reference vectors, fixed keys, signing helpers."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from claw_ledger.demo import finops_urm
from ledger.canonical import compact_json, jcs, parse_json_strict
from ledger.crypto import KeyPair
from ledger.encoding import b64u_encode
from ledger.envelope import SignedEnvelope, sign_envelope
from ledger.errors import ReasonCode
from ledger.events import EVENT_ENVELOPE_TYPE, build_event
from ledger.receipts import build_receipt_payload

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
EXAMPLES: dict[str, Any] = json.loads((VECTORS / "examples.json").read_text(encoding="utf-8"))
BUNDLE_PASS_RAW: bytes = (VECTORS / "clawsig-proof-bundle-pass.v1.json").read_bytes()
GOLDEN = Path(__file__).resolve().parent / "golden"

#: RFC 8032 §7.1 TEST 1 secret key (seed)
RFC8032_TEST1_SEED = bytes.fromhex(
    "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
)
RFC8032_TEST1_DID = "did:key:z6MktwupdmLXVVqTzCw4i46r4uGyosGXRnR3XjN4Zq7oMMsw"

FIXED_TS = "2026-02-12T00:00:00.000Z"

#: envelope fields set to values no verifier may accept: (field, value, code)
UNKNOWN_VERSIONS_AND_ALGORITHMS = [
    ("envelope_version", "2", ReasonCode.UNKNOWN_ENVELOPE_VERSION),
    ("envelope_version", "1.0", ReasonCode.UNKNOWN_ENVELOPE_VERSION),
    ("envelope_version", "", ReasonCode.UNKNOWN_ENVELOPE_VERSION),
    ("hash_algorithm", "SHA-512", ReasonCode.UNKNOWN_HASH_ALGORITHM),
    ("hash_algorithm", "sha-256", ReasonCode.UNKNOWN_HASH_ALGORITHM),
    ("hash_algorithm", "SHA3-256", ReasonCode.UNKNOWN_HASH_ALGORITHM),
    ("algorithm", "EdDSA", ReasonCode.UNKNOWN_ALGORITHM),
    ("algorithm", "ed25519", ReasonCode.UNKNOWN_ALGORITHM),
    ("algorithm", "ES256", ReasonCode.UNKNOWN_ALGORITHM),
]


def fresh_python_json(script: str) -> Any:
    """Run ``script`` in a new interpreter at the repository root; the JSON its last line prints."""
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=VECTORS.parents[1],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def key(n: int, name: str = "") -> KeyPair:
    """A deterministic test key (seed = 32 × byte n)."""
    return KeyPair.from_seed(bytes([n]) * 32, name)


def receipt_payload(binding: Mapping[str, Any], **details: Any) -> dict[str, Any]:
    """A receipt payload for ``binding``; the model call is a fixed one unless ``details`` say."""
    call: dict[str, Any] = {
        "request": b"request",
        "response": b"response",
        "gateway_id": "gw",
        "provider": "anthropic",
        "model": "claude-test",
        "tokens_input": 10,
        "tokens_output": 20,
        "latency_ms": 5,
    }
    return build_receipt_payload(binding=binding, **(call | details))


def example_urm(job_id: str, wpc: str, scope_hash: str, **over: Any) -> dict[str, Any]:
    """The demo's finops close URM (:func:`claw_ledger.demo.finops_urm`) with the outputs
    and retention the docs and tests use; ``over`` replaces top-level sections."""
    doc = finops_urm(job_id, wpc, scope_hash)
    doc.update(
        expected_outputs=[
            {"name": "close_report.pdf", "sha256": None},
            {"name": "recon_summary.json", "sha256": "cd" * 32},
        ],
        retention={"proof_bundle_days": 180, "notes": "keep"},
    )
    doc.update(over)
    return doc


def example_key_registered(
    n: int, subject: KeyPair, name: str, roles: list[str], signer: KeyPair
) -> SignedEnvelope:
    """Event ``n`` of the docs' example ledger: ``signer`` registers ``subject``.

    It occurred ``n - 1`` seconds past ``FIXED_TS`` and was signed a second later.
    """
    event = build_event(
        "key.registered",
        f"key:{subject.did}",
        {"did": subject.did, "name": name, "roles": roles},
        signer,
        event_id=f"00000000-0000-4000-8000-{n:012d}",
        occurred_at=f"2026-02-12T00:00:{n - 1:02d}.000Z",
    )
    issued_at = f"2026-02-12T00:00:{n:02d}.000Z"
    return sign_envelope(EVENT_ENVELOPE_TYPE, event.to_payload(), signer, issued_at=issued_at)


def bundle_pass() -> Any:
    """The proof-bundle pass vector, parsed keeping its document key order."""
    return parse_json_strict(BUNDLE_PASS_RAW)


def envelope_dict(
    payload: Mapping[str, Any], signer: KeyPair, *, envelope_type: str = EVENT_ENVELOPE_TYPE
) -> dict[str, Any]:
    """A correctly signed envelope as a plain dict (payload in JCS order), issued at FIXED_TS."""
    envelope = sign_envelope(envelope_type, payload, signer, issued_at=FIXED_TS)
    document: dict[str, Any] = json.loads(envelope.to_bytes())
    return document


def sign_document_order(
    payload: Mapping[str, Any], signer: KeyPair, *, envelope_type: str = EVENT_ENVELOPE_TYPE
) -> dict[str, Any]:
    """Sign ``payload`` exactly as given (document order), the way clawsig does,
    computing the hash independently of :mod:`ledger.envelope`."""
    digest = b64u_encode(hashlib.sha256(compact_json(payload)).digest())
    return {
        "envelope_version": "1",
        "envelope_type": envelope_type,
        "payload": dict(payload),
        "payload_hash_b64u": digest,
        "hash_algorithm": "SHA-256",
        "signature_b64u": b64u_encode(signer.sign(digest.encode("utf-8"))),
        "algorithm": "Ed25519",
        "signer_did": signer.did,
        "issued_at": FIXED_TS,
    }


def to_raw(document: Any) -> bytes:
    """Wire bytes of a (possibly broken) envelope, keeping its key order."""
    return compact_json(document)


def wire(document: Any) -> bytes:
    """Wire bytes of an envelope in JCS order (as producers send it)."""
    return jcs(document)


#: a WPC hash that a state seeded with :func:`seeded_policy` holds as active
RESUME_WPC = "resume-wpc-" + "0" * 32


def seeded_policy(policy_hash: str = RESUME_WPC, *, halt_mode: bool = False) -> dict[str, Any]:
    """A registry record of an active WPC, for states built without a policy.published."""
    return {
        "policy_hash_b64u": policy_hash,
        "status": "active",
        "halt_mode": halt_mode,
        "superseded_by": None,
    }


def published_wpc_body(
    signer: KeyPair, document: Mapping[str, Any] | None = None
) -> tuple[str, dict[str, Any]]:
    """The hash of a WPC signed by ``signer`` and the body of its ``policy.published``
    (stream ``policy:<hash>``); by default an empty non-halt WPC."""
    from ledger.wpc import policy_hash_b64u, sign_wpc

    doc = dict(document or {"wpc_version": "1", "purpose": "re-authorised after a halt"})
    digest = policy_hash_b64u(doc)
    envelope = sign_wpc(doc, signer).to_bytes().decode()
    return digest, {"policy_hash_b64u": digest, "wpc_envelope_json": envelope}
