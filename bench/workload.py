"""Signed events for the benchmarks, made fast and off the clock.

Producer-side signing is the publishing services' cost, not the ledger's, so
benchmarks sign their events before timing starts (in worker processes).
The envelopes are byte-for-byte what :func:`ledger.events.sign_event` makes:
JCS payload, payload hash over document order, Ed25519 over the hash.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from ledger.canonical import jcs
from ledger.crypto import KeyPair
from ledger.encoding import b64u_encode, sha256_b64u
from ledger.envelope import format_timestamp, signing_bytes
from ledger.tokens import IssuedToken
from ledger.urm import sign_approval, urm_hash_b64u

__all__ = ["WPC", "approved_run", "envelope_jcs", "sign_halt_events"]

#: the Work Policy Contract the benchmarks' jobs run under: read and write tools, no
#: exec, Anthropic models
WPC: dict[str, Any] = {
    "wpc_version": "1",
    "tools": {"allow": ["read", "write"], "deny": ["exec"]},
    "model_calls": {"allowed_providers": ["anthropic"]},
}


def envelope_jcs(
    key: KeyPair,
    event_type: str,
    stream: str,
    body: dict[str, Any],
    *,
    event_id: str,
    occurred_at: str,
) -> bytes:
    """The event's envelope, byte for byte as :func:`ledger.events.sign_event` makes it
    (JCS throughout), issued when it occurred."""
    payload = {
        "body": body,
        "event_id": event_id,
        "event_type": event_type,
        "occurred_at": occurred_at,
        "producer": key.did,
        "stream": stream,
    }
    digest = sha256_b64u(jcs(payload))
    envelope = {
        "algorithm": "Ed25519",
        "envelope_type": "ledger_event",
        "envelope_version": "1",
        "hash_algorithm": "SHA-256",
        "issued_at": occurred_at,
        "payload": payload,
        "payload_hash_b64u": digest,
        "signature_b64u": b64u_encode(key.sign(signing_bytes(digest))),
        "signer_did": key.did,
    }
    return jcs(envelope)


def _chunk(seed: bytes, start: int, count: int, streams: int) -> list[tuple[str, str, bytes]]:
    key = KeyPair.from_seed(seed)
    occurred_at = format_timestamp()
    out = []
    for i in range(start, start + count):
        target = f"job:bench-{i % streams}"
        event_id = str(uuid.uuid4())
        body = {"reason": f"bench {i}", "target": target}
        raw = envelope_jcs(
            key, "agent.halted", f"halt:{target}", body, event_id=event_id, occurred_at=occurred_at
        )
        out.append((event_id, f"halt:{target}", raw))
    return out


def sign_halt_events(
    key: KeyPair, count: int, *, streams: int = 256, workers: int = 2
) -> list[tuple[str, str, bytes]]:
    """``count`` signed ``agent.halted`` envelopes: (event_id, stream, raw bytes)."""
    seed = bytes(key.signing_key)
    size = max(1, count // (workers * 8))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(_chunk, seed, start, min(size, count - start), streams)
            for start in range(0, count, size)
        ]
        result: list[tuple[str, str, bytes]] = []
        for future in futures:
            result.extend(future.result())
    return result


def approved_run(
    job_id: str, wpc: str, token: IssuedToken, approver: KeyPair
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The bodies of ``run.manifest_approved`` and ``run.started`` for a bench job
    under policy ``wpc``, started with ``token`` and approved by ``approver``."""
    urm = {
        "urm_version": "1",
        "job": {"job_id": job_id, "requested_by": "user:bench", "approved_by": ["u"]},
        "policy": {
            "wpc_hash_b64u": wpc,
            "cst_scope_hash": token.token_scope_hash_b64u,
            "policy_hash_pinning": True,
        },
        "execution": {
            "agent_runtime": "OpenClaw",
            "tool_profile": "bench",
            "sandbox_mode": "all",
            "model_routing": "via clawproxy",
        },
        "inputs": [],
        "expected_outputs": [],
        "retention": {"proof_bundle_days": 30},
    }
    digest = urm_hash_b64u(urm)
    approval = sign_approval(digest, approver)
    approved = {"job_id": job_id, "urm_hash_b64u": digest, "urm": urm, "approvals": [approval]}
    started = {"job_id": job_id, "urm_hash_b64u": digest, "cst_jti": token.jti}
    return approved, started
