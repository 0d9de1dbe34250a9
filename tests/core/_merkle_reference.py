"""The recursive definitions of RFC 9162 (MTH, PATH and SUBPROOF), written plainly to
check the ledger's Merkle trees against, and the leaf hashes the property and storage
tests (``test_merkle_*.py``) build their trees of."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from ledger.merkle import leaf_hash


def ref_mth(hashes: Sequence[bytes]) -> bytes:
    if not hashes:
        return hashlib.sha256(b"").digest()
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return hashlib.sha256(b"\x01" + ref_mth(hashes[:k]) + ref_mth(hashes[k:])).digest()


def ref_path(m: int, hashes: Sequence[bytes]) -> list[bytes]:
    if len(hashes) == 1:
        return []
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    if m < k:
        return [*ref_path(m, hashes[:k]), ref_mth(hashes[k:])]
    return [*ref_path(m - k, hashes[k:]), ref_mth(hashes[:k])]


def ref_subproof(m: int, hashes: Sequence[bytes], complete: bool) -> list[bytes]:
    n = len(hashes)
    if m == n:
        return [] if complete else [ref_mth(hashes)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*ref_subproof(m, hashes[:k], complete), ref_mth(hashes[k:])]
    return [*ref_subproof(m - k, hashes[k:], False), ref_mth(hashes[:k])]


MAX_SIZE = 300
HASHES = [leaf_hash(i.to_bytes(4, "big")) for i in range(MAX_SIZE)]
