"""RFC 9162 (RFC 6962) Merkle trees: hashes, an append-only tree, proofs and their verifiers.

Nodes are addressed as ``(level, index)``: level 0 holds the leaf hashes and
node ``(level, index)`` is the root of the complete subtree over leaves
``[index * 2**level, (index + 1) * 2**level)``. Only those complete-subtree
nodes are ever stored; the hash of any other range (the right edge of a tree
whose size is not a power of two) is folded from them when a proof needs it.
That keeps the store append-only: a node, once written, never changes.

Proofs are computed in two steps so that any storage can serve them:
``*_plan`` lists the node ids a proof needs (pure arithmetic), the caller
fetches them in one batch (``NodeReader.get_many``, or one SQL query), and
``assemble`` folds them into the proof. The verifiers take only hashes.

What the leaves of claw-ledger's log are is ``ledger.tlog`` (ADR 0011).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Protocol

from ledger.errors import ProofError, ReasonCode

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "InMemoryNodeStore",
    "InclusionBatch",
    "InclusionVerifier",
    "MerkleTree",
    "NodeId",
    "NodeReader",
    "NodeStore",
    "assemble",
    "consistency_plan",
    "consistency_proof",
    "covered_nodes",
    "inclusion_plan",
    "inclusion_proof",
    "leaf_hash",
    "merkle_tree_hash",
    "node_hash",
    "plan_ids",
    "root_at",
    "root_from_inclusion_proof",
    "root_plan",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
#: MTH({}) = SHA-256 of the empty string (RFC 9162 §2.1.1)
EMPTY_ROOT = hashlib.sha256(b"").digest()

#: ``(level, index)`` of a complete subtree
NodeId = tuple[int, int]
#: one proof element: the complete subtrees (left to right) whose right fold is its hash
Element = tuple[NodeId, ...]

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data): the hash of one entry."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an interior node."""
    return _sha256(b"\x01" + left + right).digest()


def _fold(hashes: Sequence[bytes]) -> bytes:
    """MTH of adjacent complete subtrees of strictly decreasing size, folded from the right."""
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = _sha256(b"\x01" + left + result).digest()
    return result


def merkle_tree_hash(leaf_hashes: Iterable[bytes]) -> bytes:
    """MTH of a list of leaf hashes, for any size (RFC 9162 §2.1.1)."""
    frontier = CompactRange()
    for hashed in leaf_hashes:
        frontier.append(hashed)
    return frontier.root()


def _largest_power_of_two_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def _range_ids(start: int, end: int) -> Element:
    """The complete subtrees covering leaves ``[start, end)``, biggest first.

    Callers pass ranges whose ``start`` is a multiple of a power of two at least
    ``end - start``, so the MTH of the range is the right fold of these nodes.
    """
    span = end - start
    if span > 0 and not span & (span - 1) and not start & (span - 1):
        # one complete subtree: the common case of an audit path, worth its shortcut
        level = span.bit_length() - 1
        return ((level, start >> level),)
    ids: list[NodeId] = []
    while start < end:
        level = (end - start).bit_length() - 1
        if start:
            level = min(level, (start & -start).bit_length() - 1)
        ids.append((level, start >> level))
        start += 1 << level
    return tuple(ids)


def _check_size(name: str, value: int) -> None:
    if type(value) is not int or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")


def root_plan(size: int) -> Element:
    """Nodes whose fold is the root of the tree of ``size`` leaves (none for size 0)."""
    _check_size("size", size)
    return _range_ids(0, size)


def inclusion_plan(index: int, size: int) -> list[Element]:
    """Elements of the audit path of leaf ``index`` in the tree of ``size`` (RFC 9162 §2.1.3.1).

    The iterative form of PATH(m, D[n]); the element nearest the leaf comes first.
    """
    _check_size("index", index)
    _check_size("size", size)
    if index >= size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")
    # The leaf sits in one of the complete subtrees that size's binary digits make;
    # it has 2**level leaves, level being the highest bit where index and size differ.
    # Within it the path is one sibling per level; above it, the same for all its leaves.
    level = (index ^ size).bit_length() - 1
    elements: list[Element] = [((below, (index >> below) ^ 1),) for below in range(level)]
    elements.extend(_above_complete_subtree(size, level))
    return elements


@functools.lru_cache(maxsize=64)
def _above_complete_subtree(size: int, level: int) -> tuple[Element, ...]:
    """The path's elements above the complete subtree of ``2**level`` leaves in the tree
    of ``size`` (nearest first): PATH(m, D[n])'s steps until the range is that subtree."""
    index = size >> (level + 1) << (level + 1)  # the subtree's first leaf
    upper: list[Element] = []
    start, n = 0, size
    while n & (n - 1):
        k = _largest_power_of_two_below(n)
        if index - start < k:
            upper.append(_range_ids(start + k, start + n))
            n = k
        else:
            upper.append(_range_ids(start, start + k))
            start += k
            n -= k
    upper.reverse()
    return tuple(upper)


def consistency_plan(old_size: int, new_size: int) -> list[Element]:
    """Elements of the consistency proof from ``old_size`` to ``new_size`` (RFC 9162 §2.1.4.1).

    The iterative form of SUBPROOF(m, D[n], true); empty when either size makes
    the proof trivial (0 or equal sizes).
    """
    _check_size("old_size", old_size)
    _check_size("new_size", new_size)
    if old_size > new_size:
        raise ValueError(f"old size {old_size} is larger than new size {new_size}")
    if old_size in (0, new_size):
        return []
    elements: list[Element] = []
    start, m, n = 0, old_size, new_size
    old_is_complete_subtree = True
    while m != n:
        k = _largest_power_of_two_below(n)
        if m <= k:
            elements.append(_range_ids(start + k, start + n))
            n = k
        else:
            elements.append(_range_ids(start, start + k))
            start += k
            m -= k
            n -= k
            old_is_complete_subtree = False
    if not old_is_complete_subtree:
        elements.append(_range_ids(start, start + n))
    elements.reverse()
    return elements


def plan_ids(elements: Iterable[Element]) -> list[NodeId]:
    """Every node the elements need, once each, in first-use order (one batched read)."""
    return list(dict.fromkeys(itertools.chain.from_iterable(elements)))


def assemble(elements: Sequence[Element], nodes: Mapping[NodeId, bytes]) -> list[bytes]:
    """The proof hashes of ``elements``, from fetched node hashes."""
    return [
        nodes[element[0]] if len(element) == 1 else _fold([nodes[node] for node in element])
        for element in elements
    ]


class InclusionBatch:
    """The audit paths of many leaves of one tree, planned together (RFC 9162 §2.1.3.1).

    Leaves are grouped by the height of the complete subtree that holds each:
    inside it a path is one sibling per level, above it the same elements for
    the whole group. So a batch reads each node once (:meth:`nodes`) and makes
    each path (:meth:`paths`) without a plan per leaf; the paths are the ones
    :func:`inclusion_plan` and :func:`assemble` give one at a time.
    """

    def __init__(self, indexes: Iterable[int], size: int) -> None:
        _check_size("size", size)
        self.size = size
        self._groups: dict[int, list[int]] = {}
        for index in indexes:
            _check_size("index", index)
            if index >= size:
                raise ValueError(f"leaf {index} is not in a tree of size {size}")
            self._groups.setdefault((index ^ size).bit_length() - 1, []).append(index)

    def nodes(self) -> list[NodeId]:
        """Every node the paths read, once each."""
        wanted: dict[NodeId, None] = {}
        for level, members in self._groups.items():
            for below in range(level):
                wanted.update(
                    ((below, sibling), None) for sibling in {(i >> below) ^ 1 for i in members}
                )
            for element in _above_complete_subtree(self.size, level):
                wanted.update(dict.fromkeys(element))
        return list(wanted)

    def paths(self, nodes: Mapping[NodeId, bytes]) -> dict[int, list[bytes]]:
        """Each leaf's audit path, nearest element first, from ``nodes`` (which must
        hold every node of :meth:`nodes`: ``KeyError`` otherwise)."""
        by_level: dict[int, dict[int, bytes]] = {}
        for (level, index), hashed in nodes.items():
            by_level.setdefault(level, {})[index] = hashed
        paths: dict[int, list[bytes]] = {}
        for level, members in self._groups.items():
            upper = assemble(_above_complete_subtree(self.size, level), nodes)
            siblings = [by_level.get(below, {}) for below in range(level)]
            for index in members:
                path = [siblings[below][(index >> below) ^ 1] for below in range(level)]
                path.extend(upper)
                paths[index] = path
        return paths


def covered_nodes(leaf_hashes: Mapping[int, bytes]) -> dict[NodeId, bytes]:
    """Every node whose leaves are all in ``leaf_hashes`` (leaf index -> leaf hash),
    the leaves themselves included as level 0.

    The proofs of a run of neighbouring leaves mostly need nodes over those same
    leaves: hashing them here costs one SHA-256 per node, far less than reading
    each one back from a store.
    """
    nodes: dict[NodeId, bytes] = {(0, index): hashed for index, hashed in leaf_hashes.items()}
    level, current = 0, dict(leaf_hashes)
    while len(current) > 1:
        parents = {
            index >> 1: _sha256(b"\x01" + left + right).digest()
            for index, left in current.items()
            if not index & 1 and (right := current.get(index | 1)) is not None
        }
        level += 1
        nodes.update(((level, index), hashed) for index, hashed in parents.items())
        current = parents
    return nodes


class NodeReader(Protocol):
    """Where the hashes of complete subtrees are read (memory, a Postgres table, ...)."""

    def get(self, level: int, index: int) -> bytes:
        """The node's hash; ``KeyError`` when it is not stored."""
        ...

    def get_many(self, ids: Sequence[NodeId]) -> list[bytes]:
        """Hashes of ``ids`` in order, in one round trip; ``KeyError`` if any is missing."""
        ...


class NodeStore(NodeReader, Protocol):
    def put_many(self, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        """Store new ``(level, index, hash)`` nodes; rewriting one with another hash is an error."""
        ...


def _read(reader: NodeReader, elements: Sequence[Element]) -> dict[NodeId, bytes]:
    ids = plan_ids(elements)
    return dict(zip(ids, reader.get_many(ids), strict=True))


def root_at(reader: NodeReader, size: int) -> bytes:
    """Root of the tree's first ``size`` leaves, from stored nodes."""
    plan = root_plan(size)
    if not plan:
        return EMPTY_ROOT
    return _fold(reader.get_many(plan))


def inclusion_proof(reader: NodeReader, index: int, size: int) -> list[bytes]:
    elements = inclusion_plan(index, size)
    return assemble(elements, _read(reader, elements))


def consistency_proof(reader: NodeReader, old_size: int, new_size: int) -> list[bytes]:
    elements = consistency_plan(old_size, new_size)
    return assemble(elements, _read(reader, elements))


class CompactRange:
    """The right edge of a tree: the roots of its complete subtrees ``[0, size)``, biggest first.

    Enough to append leaves and compute the root without reading anything else.
    """

    __slots__ = ("hashes", "size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        _check_size("size", size)
        if len(hashes) != size.bit_count():
            raise ValueError(f"a tree of size {size} has {size.bit_count()} edge nodes")
        self.size = size
        self.hashes = list(hashes)

    @classmethod
    def from_reader(cls, reader: NodeReader, size: int) -> CompactRange:
        plan = root_plan(size)
        return cls(size, reader.get_many(plan) if plan else [])

    def append(self, hashed_leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add the next leaf hash; returns the new complete-subtree nodes to store."""
        return self.extend((hashed_leaf,))

    def extend(self, hashed_leaves: Iterable[bytes]) -> list[tuple[int, int, bytes]]:
        """Add each leaf hash in turn; returns every new complete-subtree node to store,
        in order."""
        new: list[tuple[int, int, bytes]] = []
        edge, size, sha256 = self.hashes, self.size, _sha256
        try:
            for hashed_leaf in hashed_leaves:
                if len(hashed_leaf) != HASH_SIZE:
                    raise ValueError("a leaf hash is 32 bytes")
                index = size
                new.append((0, index, hashed_leaf))
                level, current = 0, hashed_leaf
                while index & 1:
                    current = sha256(b"\x01" + edge.pop() + current).digest()
                    level += 1
                    index >>= 1
                    new.append((level, index, current))
                edge.append(current)
                size += 1
        finally:
            self.size = size  # the leaves before a refused one stay appended
        return new

    def root(self) -> bytes:
        return _fold(self.hashes) if self.hashes else EMPTY_ROOT


class InMemoryNodeStore:
    """A ``NodeStore`` in one ``bytearray`` per level (32 bytes a node, no per-node object)."""

    def __init__(self) -> None:
        self._levels: list[bytearray] = []

    @property
    def leaf_count(self) -> int:
        return len(self._levels[0]) // HASH_SIZE if self._levels else 0

    @property
    def nbytes(self) -> int:
        return sum(len(level) for level in self._levels)

    def get(self, level: int, index: int) -> bytes:
        offset = index * HASH_SIZE
        if level < 0 or index < 0 or level >= len(self._levels):
            raise KeyError((level, index))
        buffer = self._levels[level]
        if offset + HASH_SIZE > len(buffer):
            raise KeyError((level, index))
        return bytes(buffer[offset : offset + HASH_SIZE])

    def get_many(self, ids: Sequence[NodeId]) -> list[bytes]:
        return [self.get(level, index) for level, index in ids]

    def put_many(self, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        for level, index, hashed in nodes:
            if len(hashed) != HASH_SIZE:
                raise ValueError("a node hash is 32 bytes")
            while len(self._levels) <= level:
                self._levels.append(bytearray())
            buffer = self._levels[level]
            offset = index * HASH_SIZE
            if offset == len(buffer):
                buffer += hashed
            elif buffer[offset : offset + HASH_SIZE] == hashed:
                continue  # a replayed write is harmless
            else:
                raise ValueError(f"node {(level, index)} is out of order or conflicts")


class MerkleTree:
    """An append-only RFC 9162 tree over a ``NodeStore``.

    ``size`` is the number of leaves already in the store; the right edge is
    read back from it, so a tree reopens without touching its leaves' sources.
    """

    def __init__(self, store: NodeStore | None = None, size: int = 0) -> None:
        self.store: NodeStore = store if store is not None else InMemoryNodeStore()
        self._edge = CompactRange.from_reader(self.store, size)

    @property
    def size(self) -> int:
        return self._edge.size

    def append(self, hashed_leaf: bytes) -> int:
        """Append one leaf hash; returns its index."""
        index = self._edge.size
        self.store.put_many(self._edge.append(hashed_leaf))
        return index

    def extend(self, hashed_leaves: Iterable[bytes]) -> None:
        self.store.put_many(self._edge.extend(hashed_leaves))

    def root(self, size: int | None = None) -> bytes:
        if size is None or size == self._edge.size:
            return self._edge.root()
        self._check_within(size)
        return root_at(self.store, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        size = self._edge.size if size is None else size
        self._check_within(size)
        return inclusion_proof(self.store, index, size)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        new_size = self._edge.size if new_size is None else new_size
        self._check_within(new_size)
        return consistency_proof(self.store, old_size, new_size)

    def _check_within(self, size: int) -> None:
        _check_size("size", size)
        if size > self._edge.size:
            raise ValueError(f"the tree has {self._edge.size} leaves, not {size}")


# --- verification (RFC 9162 §2.1.3.2 and §2.1.4.2): hashes in, no tree ---------------------


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
