"""Append-only Merkle trees over a node store: the right edge, stored proofs, a tree in memory."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from ledger.merkle._plans import (
    EMPTY_ROOT,
    HASH_SIZE,
    Element,
    NodeId,
    _check_size,
    _fold,
    _sha256,
    assemble,
    consistency_plan,
    inclusion_plan,
    plan_ids,
    root_plan,
)


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


def merkle_tree_hash(leaf_hashes: Iterable[bytes]) -> bytes:
    """MTH of a list of leaf hashes, for any size (RFC 9162 §2.1.1)."""
    frontier = CompactRange()
    for hashed in leaf_hashes:
        frontier.append(hashed)
    return frontier.root()
