"""Proof verification (RFC 9162 §2.1.3.2 and §2.1.4.2): hashes in, no tree."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from ledger.errors import ProofError, ReasonCode
from ledger.merkle._plans import HASH_SIZE, _above_complete_subtree, node_hash


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def _proof_sizes_ok(*sizes: object) -> bool:
    return all(type(size) is int and size >= 0 for size in sizes)


def _climb(
    fn: int, sn: int, siblings: Sequence[bytes], fail: Callable[[str], ProofError], what: str
) -> Iterator[tuple[bytes, bool, tuple[int, int]]]:
    """Each sibling on the way from node ``fn`` (``sn``: the last one) up to the root,
    with whether it sits on the left (RFC 9162 2.1.3.2 and 2.1.4.2) and ``(fn, sn)``
    once it is hashed in. ``fail`` when the siblings are more or fewer than that way
    has levels."""
    for sibling in siblings:
        if sn == 0:
            raise fail(f"the proof is longer than the path {what}")
        on_left = bool(fn & 1) or fn == sn
        if on_left:
            # a right-edge node: climb until LSB(fn) is set or fn is 0
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        fn >>= 1
        sn >>= 1
        yield sibling, on_left, (fn, sn)
    if sn != 0:
        raise fail(f"the proof is shorter than the path {what}")


def _path(
    fn: int, sn: int, siblings: Sequence[bytes], fail: Callable[[str], ProofError], what: str
) -> list[tuple[bytes, bool, tuple[int, int]]]:
    """:func:`_climb`, all of it: the length is checked before anything is hashed."""
    return list(_climb(fn, sn, siblings, fail, what))


def _all_hashes(values: Sequence[object]) -> bool:
    if set(map(type, values)) <= _BYTES_ONLY:  # in C: the common case of a long batch
        return set(map(len, values)) <= _HASH_SIZE_ONLY  # type: ignore[arg-type]
    return all(_is_hash(value) for value in values)


_BYTES_ONLY = frozenset({bytes})
_HASH_SIZE_ONLY = frozenset({HASH_SIZE})


def root_from_inclusion_proof(
    index: int, size: int, hashed_leaf: bytes, proof: Sequence[bytes]
) -> bytes:
    """The root that ``proof`` leads to from leaf ``index`` of a tree of ``size``.

    ``INCLUSION_PROOF_INVALID`` when the proof cannot belong to that index and size.
    """

    def fail(detail: str) -> ProofError:
        return ProofError(ReasonCode.INCLUSION_PROOF_INVALID, detail)

    if not _proof_sizes_ok(index, size) or index >= size:
        raise fail(f"leaf index {index!r} is not within a tree of size {size!r}")
    if not _is_hash(hashed_leaf) or not all(_is_hash(p) for p in proof):
        raise fail("every hash is 32 bytes")
    result = hashed_leaf
    for sibling, on_left, _ in _path(index, size - 1, proof, fail, "of this leaf"):
        result = node_hash(sibling, result) if on_left else node_hash(result, sibling)
    return result


def verify_inclusion(
    index: int, size: int, hashed_leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise ``ProofError(INCLUSION_PROOF_INVALID)`` unless ``proof`` shows the leaf in ``root``."""
    computed = root_from_inclusion_proof(index, size, hashed_leaf, proof)
    if computed != root:
        raise ProofError(
            ReasonCode.INCLUSION_PROOF_INVALID,
            f"leaf {index} does not lead to the root of the tree of size {size}",
        )


class InclusionVerifier:
    """Verifies many inclusion proofs against one tree, hashing each shared node once.

    The verdict on each proof is :func:`verify_inclusion`'s. The difference is
    the work: the proofs of a run's events, which sit side by side in the log,
    climb through the same nodes. Once a proof has led to the root, each state
    of its climb is remembered with the hash computed there and the siblings
    still to come. A later proof that reaches one of those states with the same
    hash and the same remaining siblings would repeat that climb hash for hash,
    so it is done; any other proof climbs to the root itself.
    """

    __slots__ = ("_proven", "root", "size")

    def __init__(self, size: int, root: bytes) -> None:
        self.size = size
        self.root = root
        #: (fn, sn) after a step of a proven climb -> (hash there, siblings after it)
        self._proven: dict[tuple[int, int], tuple[bytes, tuple[bytes, ...]]] = {}

    def verify(self, index: int, hashed_leaf: bytes, proof: Sequence[bytes]) -> None:
        """Raise ``ProofError(INCLUSION_PROOF_INVALID)`` unless ``proof`` shows the leaf."""

        def fail(detail: str) -> ProofError:
            return ProofError(ReasonCode.INCLUSION_PROOF_INVALID, detail)

        size = self.size
        if not _proof_sizes_ok(index, size) or index >= size:
            raise fail(f"leaf index {index!r} is not within a tree of size {size!r}")
        if not _is_hash(hashed_leaf) or not _all_hashes(proof):
            raise fail("every hash is 32 bytes")
        level = (index ^ size).bit_length() - 1
        expected = level + len(_above_complete_subtree(size, level))
        if len(proof) != expected:  # before the climb, which may stop halfway
            longer = "longer" if len(proof) > expected else "shorter"
            raise fail(f"the proof is {longer} than the path of this leaf")
        proof = tuple(proof)
        climbed: list[tuple[tuple[int, int], bytes, int]] = []
        result = hashed_leaf
        proven = self._proven
        for step, (sibling, on_left, state) in enumerate(
            _climb(index, size - 1, proof, fail, "of this leaf")
        ):
            result = node_hash(sibling, result) if on_left else node_hash(result, sibling)
            known = proven.get(state)
            if known is not None and known[0] == result and known[1] == proof[step + 1 :]:
                break
            climbed.append((state, result, step))
        else:
            if result != self.root:
                raise fail(f"leaf {index} does not lead to the root of the tree of size {size}")
        for state, hashed, step in climbed:
            proven[state] = (hashed, proof[step + 1 :])


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Raise ``ProofError(CONSISTENCY_PROOF_INVALID)`` unless the old tree prefixes the new."""

    def fail(detail: str) -> ProofError:
        return ProofError(ReasonCode.CONSISTENCY_PROOF_INVALID, detail)

    if not _proof_sizes_ok(old_size, new_size) or old_size > new_size:
        raise fail(f"sizes {old_size!r} -> {new_size!r} do not grow")
    if not _is_hash(old_root) or not _is_hash(new_root) or not all(_is_hash(p) for p in proof):
        raise fail("every hash is 32 bytes")
    if old_size == new_size:
        if proof:
            raise fail("equal sizes take an empty proof")
        if old_root != new_root:
            raise fail(f"two different roots for size {old_size}")
        return
    if old_size == 0:
        # the empty tree is a prefix of every tree (RFC 9162 leaves size 0 out)
        if proof:
            raise fail("a proof from the empty tree is empty")
        return
    if not proof:
        raise fail("the proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c, on_left, _ in _path(fn, sn, path[1:], fail, "between these sizes"):
        if on_left:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
        else:
            sr = node_hash(sr, c)
    if fr != old_root:
        raise fail(f"the proof does not lead to the root of size {old_size}")
    if sr != new_root:
        raise fail(f"the proof does not lead to the root of size {new_size}")
