"""Microbenchmark of the stateless verify path against a raw Ed25519 verify.

``verify_message`` does one Ed25519 verify per event plus the parse, the schema
validation and the payload hash. Measuring both in the same process tells how
much the path costs beyond the signature check, whatever the machine's speed.

Usage: python -m bench.verify_path [--events 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

from ledger.crypto import KeyPair
from ledger.events import build_event, sign_event
from ledger.verify import Verified, verify_message

__all__ = ["measure"]

#: distinct envelopes cycled through, so that no run verifies one object only
_DISTINCT = 256


def _events(key: KeyPair) -> list[bytes]:
    """Signed ``agent.halted`` envelopes: small, and the type the processor benchmark uses."""
    raws = []
    for i in range(_DISTINCT):
        target = f"job:bench-{i}"
        event = build_event(
            "agent.halted",
            f"halt:{target}",
            {"target": target, "reason": f"bench {i}: cost overrun"},
            key,
        )
        raws.append(sign_event(event, key).to_bytes())
    return raws


#: each figure is the fastest of this many equal slices of the ``n`` calls
_SLICES = 10


def _per_event_us(n: int, step: Callable[[int], object]) -> float:
    """µs per call of ``step``: the fastest slice, as ``timeit`` advises.

    CPU time of this process, not wall time, and the fastest slice rather than
    the mean: on a shared machine both the wall clock and a mean also count
    what other processes did to the core and its caches.
    """
    size = max(1, n // _SLICES)
    best = float("inf")
    for first in range(0, n, size):
        calls = range(first, min(first + size, n))
        start = time.process_time()
        for i in calls:
            step(i)
        best = min(best, (time.process_time() - start) / len(calls))
    return best * 1e6


def measure(n: int = 20000) -> dict[str, float]:
    """µs per event: ``verify_message``, and PyNaCl verifies of the same signatures.

    ``nacl_verify_us`` verifies what an envelope signature covers (the 43-byte
    payload hash); ``nacl_verify_event_size_us`` verifies a signature over a
    message as long as the whole envelope, for comparison at equal size.
    """
    key = KeyPair.generate()
    raws = _events(key)
    for raw in raws:  # every event verifies, or the numbers would mean nothing
        assert isinstance(verify_message(raw), Verified)
    verify_key = key.signing_key.verify_key
    hashes = [json.loads(raw)["payload_hash_b64u"].encode() for raw in raws]
    signatures = [key.sign(h) for h in hashes]
    sized = [key.sign(raw) for raw in raws]
    count = len(raws)
    return {
        "verify_message_us": _per_event_us(n, lambda i: verify_message(raws[i % count])),
        "nacl_verify_us": _per_event_us(
            n, lambda i: verify_key.verify(hashes[i % count], signatures[i % count])
        ),
        "nacl_verify_event_size_us": _per_event_us(
            n, lambda i: verify_key.verify(raws[i % count], sized[i % count])
        ),
        "event_bytes": statistics.mean(len(raw) for raw in raws),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs = [measure(args.events) for _ in range(args.repeat)]
    for name in runs[0]:
        median = statistics.median(run[name] for run in runs)
        print(f"{name:28} {median:10.2f}")
    ratio = statistics.median(r["verify_message_us"] / r["nacl_verify_us"] for r in runs)
    print(f"{'verify_message / nacl':28} {ratio:10.2f}x")


if __name__ == "__main__":
    main()
