"""Signed events for the benchmarks, made fast and off the clock.

Producer-side signing is the publishing services' cost, not the ledger's, so
benchmarks sign their events before timing starts (in worker processes).
The envelopes are byte-for-byte what :func:`ledger.events.sign_event` makes:
JCS payload, payload hash over document order, Ed25519 over the hash.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ProcessPoolExecutor

from ledger.canonical import jcs
from ledger.crypto import KeyPair
from ledger.encoding import b64u_encode, sha256_b64u
from ledger.envelope import format_timestamp, signing_bytes

__all__ = ["sign_halt_events"]


def _chunk(seed: bytes, start: int, count: int, streams: int) -> list[tuple[str, str, bytes]]:
    key = KeyPair.from_seed(seed)
    occurred_at = format_timestamp()
    out = []
    for i in range(start, start + count):
        target = f"job:bench-{i % streams}"
        event_id = str(uuid.uuid4())
        payload = {
            "body": {"reason": f"bench {i}", "target": target},
            "event_id": event_id,
            "event_type": "agent.halted",
            "occurred_at": occurred_at,
            "producer": key.did,
            "stream": f"halt:{target}",
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
        out.append((event_id, f"halt:{target}", jcs(envelope)))
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
