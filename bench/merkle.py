"""Merkle tree microbenchmark: proofs at 1,000,000 leaves (target: well under 1 ms each).

Usage: python -m bench.merkle [--leaves 1000000]. ``measure()`` returns the
figures for ``make bench`` to report.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

from ledger.merkle import (
    InMemoryNodeStore,
    MerkleTree,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)

LEAVES = 1_000_000
SAMPLES = 2_000


def _timings_ns(samples: list[Callable[[], object]]) -> list[int]:
    timings = []
    for call in samples:
        start = time.perf_counter_ns()
        call()
        timings.append(time.perf_counter_ns() - start)
    return timings


def _median_us(samples: list[Callable[[], object]]) -> float:
    return statistics.median(_timings_ns(samples)) / 1_000


def _p99_us(samples: list[Callable[[], object]]) -> float:
    return statistics.quantiles(_timings_ns(samples), n=100)[98] / 1_000


def measure(leaves: int = LEAVES, samples: int = SAMPLES) -> dict[str, float]:
    """Build a tree of ``leaves`` leaves, then time proofs and verifications at its size."""
    rng = random.Random(6962)
    hashes = [leaf_hash(i.to_bytes(8, "big")) for i in range(leaves)]
    store = InMemoryNodeStore()
    tree = MerkleTree(store)
    start = time.perf_counter()
    tree.extend(hashes)
    append_s = time.perf_counter() - start
    size = tree.size
    root = tree.root()

    indices = [rng.randrange(size) for _ in range(samples)]
    olds = [rng.randrange(1, size) for _ in range(samples)]
    proofs = {i: tree.inclusion_proof(i, size) for i in indices}
    old_roots = {m: tree.root(m) for m in olds}
    consistency = {m: tree.consistency_proof(m, size) for m in olds}

    def inclusion(i: int) -> Callable[[], object]:
        return lambda: tree.inclusion_proof(i, size)

    def check_inclusion(i: int) -> Callable[[], object]:
        return lambda: verify_inclusion(i, size, hashes[i], proofs[i], root)

    def prove_consistency(m: int) -> Callable[[], object]:
        return lambda: tree.consistency_proof(m, size)

    def check_consistency(m: int) -> Callable[[], object]:
        return lambda: verify_consistency(m, size, old_roots[m], root, consistency[m])

    def historical_root(m: int) -> Callable[[], object]:
        return lambda: tree.root(m)

    return {
        "leaves": float(size),
        "append_leaves_per_s": size / append_s,
        "inclusion_proof_us": _median_us([inclusion(i) for i in indices]),
        "inclusion_proof_p99_us": _p99_us([inclusion(i) for i in indices]),
        "inclusion_verify_us": _median_us([check_inclusion(i) for i in indices]),
        "consistency_proof_us": _median_us([prove_consistency(m) for m in olds]),
        "consistency_proof_p99_us": _p99_us([prove_consistency(m) for m in olds]),
        "consistency_verify_us": _median_us([check_consistency(m) for m in olds]),
        "root_at_size_us": _median_us([historical_root(m) for m in olds]),
        "inclusion_proof_hashes": statistics.mean(len(p) for p in proofs.values()),
        "node_store_mib": store.nbytes / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--leaves", type=int, default=LEAVES)
    args = parser.parse_args()
    for name, value in measure(args.leaves).items():
        print(f"{name:28} {value:14,.1f}")


if __name__ == "__main__":
    main()
