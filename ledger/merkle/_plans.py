"""RFC 9162 hashes and proof plans: which complete subtrees a root or a proof folds.

Pure arithmetic over node ids; see the package docstring for the addressing.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
from collections.abc import Iterable, Mapping, Sequence

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


def _split(target: int, start: int, n: int) -> tuple[Element, int, int]:
    """One step of the recursion PATH and SUBPROOF share (RFC 9162 §2.1.3.1, §2.1.4.1).

    Leaves ``[start, start + n)`` split at the largest power of two below ``n``;
    the half without leaf ``target`` is a proof element, and the walk goes on in
    the other half, whose ``start`` and size are returned with it.
    """
    k = _largest_power_of_two_below(n)
    if target - start < k:
        return _range_ids(start + k, start + n), start, k
    return _range_ids(start, start + k), start + k, n - k


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
        element, start, n = _split(index, start, n)
        upper.append(element)
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
    start, n = 0, new_size
    # SUBPROOF's m is old_size - start; its last old leaf is the one the walk follows
    while old_size - start != n:
        element, start, n = _split(old_size - 1, start, n)
        elements.append(element)
    if start:
        # a step went right, so the old tree is not one complete subtree of the new:
        # SUBPROOF's flag is false and the range it ends on is an element too
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
