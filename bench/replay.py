"""Microbenchmark of the verified replay fold (ledger/replay.py), no database.

Three rates over the same ``n`` events, in the same run: the full rebuild
(every envelope verified, every event decided and chained), the rebuild given
verdicts computed beforehand (the fold alone: no parse, no signature check),
and the raw PyNaCl verify rate of the same signatures, the floor of any
verified replay.

Usage: python -m bench.replay [--events 20000]
"""

from __future__ import annotations

import argparse
import json
import time

from ledger.crypto import KeyPair
from ledger.events import build_event, sign_event
from ledger.replay import Replay
from ledger.verify import Verified, verify_message
from ledger.wpc import policy_hash_b64u, sign_wpc

__all__ = ["measure"]


def _events(n: int) -> tuple[list[bytes], dict[str, KeyPair]]:
    """A trust root, an operator, a WPC, then halts and resumes (under that WPC) of
    distinct jobs."""
    admin = KeyPair.from_seed(bytes([1]) * 32, "admin")
    operator = KeyPair.from_seed(bytes([6]) * 32, "operator")
    policy_admin = KeyPair.from_seed(bytes([2]) * 32, "policy-admin")
    raws = [
        sign_event(
            build_event(
                "key.registered",
                f"key:{did}",
                {"did": did, "name": name, "roles": [role]},
                admin,
            ),
            admin,
        ).to_bytes()
        for did, name, role in (
            (admin.did, "admin", "admin"),
            (operator.did, "op", "operator"),
            (policy_admin.did, "pa", "policy-admin"),
        )
    ]
    wpc = {"wpc_version": "1", "purpose": "bench"}
    wpc_hash = policy_hash_b64u(wpc)
    published = {
        "policy_hash_b64u": wpc_hash,
        "wpc_envelope_json": sign_wpc(wpc, policy_admin).to_bytes().decode(),
    }
    event = build_event("policy.published", f"policy:{wpc_hash}", published, policy_admin)
    raws.append(sign_event(event, policy_admin).to_bytes())
    for i in range(max(0, n - len(raws))):
        target = f"job:bench-{i // 2}"
        event_type = "agent.halted" if i % 2 == 0 else "agent.resumed"
        body = {"target": target, "reason": f"bench {i}"}
        if event_type == "agent.resumed":
            body["policy_hash_b64u"] = wpc_hash
        event = build_event(event_type, f"halt:{target}", body, operator)
        raws.append(sign_event(event, operator).to_bytes())
    return raws, {admin.did: admin, operator.did: operator, policy_admin.did: policy_admin}


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def measure(n: int = 20000) -> dict[str, float]:
    """Events per second (CPU time of this process): ``rebuild_per_s`` (verified
    fold), ``rebuild_no_verify_per_s`` (verdicts given), ``raw_verify_per_s``
    (PyNaCl on the same signatures), and ``rebuild_vs_raw`` (their ratio)."""
    raws, keys = _events(n)
    verdicts = [verify_message(raw) for raw in raws]
    assert all(isinstance(v, Verified) for v in verdicts)

    start = time.process_time()
    fold = Replay()
    for raw in raws:
        fold.feed(raw)
    full = time.process_time() - start
    assert fold.broken is None and fold.accepted == len(raws), fold.broken

    start = time.process_time()
    fold = Replay()
    for raw, verdict in zip(raws, verdicts, strict=True):
        fold.feed(raw, verdict)
    bare = time.process_time() - start
    assert fold.broken is None and fold.accepted == len(raws), fold.broken

    pairs = []
    for raw in raws:
        document = json.loads(raw)
        key = keys[document["signer_did"]]
        digest = document["payload_hash_b64u"].encode()
        pairs.append((key.signing_key.verify_key, digest, key.sign(digest)))
    start = time.process_time()
    for verify_key, digest, signature in pairs:
        verify_key.verify(digest, signature)
    raw_verify = time.process_time() - start

    rebuild = _rate(len(raws), full)
    raw_rate = _rate(len(raws), raw_verify)
    return {
        "events": float(len(raws)),
        "rebuild_per_s": rebuild,
        "rebuild_no_verify_per_s": _rate(len(raws), bare),
        "raw_verify_per_s": raw_rate,
        "rebuild_vs_raw": rebuild / raw_rate,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    args = parser.parse_args()
    for name, value in measure(args.events).items():
        print(f"{name:26} {value:12,.2f}")


if __name__ == "__main__":
    main()
