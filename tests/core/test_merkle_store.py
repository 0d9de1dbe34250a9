"""Merkle trees over their node store: a proof is one batched read, only complete
subtrees are kept and never rewritten, and a reopened tree or a compact range goes on
from the stored nodes."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.merkle import CompactRange, InMemoryNodeStore, MerkleTree, NodeId, consistency_plan

from ._merkle_reference import HASHES, ref_mth


class CountingStore(InMemoryNodeStore):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[NodeId]] = []

    def get_many(self, ids: Sequence[NodeId]) -> list[bytes]:
        self.batches.append(list(ids))
        return super().get_many(ids)


def test_a_proof_is_one_batched_read_of_logarithmic_size() -> None:
    store = CountingStore()
    tree = MerkleTree(store)
    tree.extend(HASHES)
    store.batches.clear()
    tree.inclusion_proof(150, 299)
    tree.consistency_proof(77, 299)
    assert len(store.batches) == 2
    # at most two nodes per level of a 299-leaf tree
    assert all(len(batch) <= 2 * 9 for batch in store.batches)
    assert all(len(set(batch)) == len(batch) for batch in store.batches)


def test_a_reopened_tree_continues_from_its_stored_nodes() -> None:
    store = InMemoryNodeStore()
    first = MerkleTree(store)
    first.extend(HASHES[:123])
    reopened = MerkleTree(store, size=store.leaf_count)
    assert reopened.size == 123
    assert reopened.root() == first.root()
    for hashed in HASHES[123:]:
        reopened.append(hashed)
    assert reopened.root() == ref_mth(HASHES)
    assert reopened.root(123) == ref_mth(HASHES[:123])
    assert CompactRange.from_reader(store, 200).root() == ref_mth(HASHES[:200])


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 120), st.integers(0, 120))
def test_extending_an_edge_is_appending_each_leaf(start: int, count: int) -> None:
    one_by_one = CompactRange()
    for hashed in HASHES[:start]:
        one_by_one.append(hashed)
    at_once = CompactRange(one_by_one.size, one_by_one.hashes)
    expected = [
        node for hashed in HASHES[start : start + count] for node in one_by_one.append(hashed)
    ]
    assert at_once.extend(HASHES[start : start + count]) == expected
    assert (at_once.size, at_once.hashes, at_once.root()) == (
        one_by_one.size,
        one_by_one.hashes,
        ref_mth(HASHES[: start + count]),
    )
    # a malformed hash is refused; the leaves before it stay appended, as append leaves them
    with pytest.raises(ValueError):
        at_once.extend([HASHES[0], b"short"])
    assert at_once.size == start + count + 1
    assert at_once.root() == ref_mth([*HASHES[: start + count], HASHES[0]])


def test_the_store_keeps_only_complete_subtrees_and_never_rewrites() -> None:
    store = InMemoryNodeStore()
    tree = MerkleTree(store)
    tree.extend(HASHES[:5])
    # levels: 5 leaves, 2 pairs, 1 quad; the incomplete right edge is not stored
    assert store.get(2, 0) == ref_mth(HASHES[:4])
    with pytest.raises(KeyError):
        store.get(1, 2)
    with pytest.raises(KeyError):
        store.get(3, 0)
    store.put_many([(0, 4, HASHES[4])])  # a replay is harmless
    with pytest.raises(ValueError, match="conflicts"):
        store.put_many([(0, 4, HASHES[5])])
    with pytest.raises(ValueError, match="out of order"):
        store.put_many([(0, 9, HASHES[5])])


def test_the_tree_refuses_sizes_it_does_not_have() -> None:
    tree = MerkleTree()
    tree.extend(HASHES[:4])
    for call in (
        lambda: tree.root(5),
        lambda: tree.inclusion_proof(0, 5),
        lambda: tree.consistency_proof(2, 5),
        lambda: tree.consistency_proof(3, 2),
        lambda: tree.append(b"short"),
    ):
        with pytest.raises(ValueError):
            call()
    with pytest.raises(ValueError):
        consistency_plan(-1, 2)


def test_the_benchmark_measures_every_figure_on_a_small_tree() -> None:
    from bench.merkle import measure

    figures = measure(leaves=1_000, samples=20)
    assert figures["leaves"] == 1_000
    assert figures["inclusion_proof_hashes"] == pytest.approx(10, abs=1)
    assert all(value > 0 for value in figures.values())


def test_a_complete_subtree_range_is_its_one_node_and_any_other_range_its_cover() -> None:
    from ledger.merkle._plans import _range_ids

    for start in range(0, 130):
        for end in range(start, 260):
            ids = _range_ids(start, end)
            covered = [(i << level, (i + 1) << level) for level, i in ids]
            # adjacent, from start to end (none for an empty range)
            assert [a for a, _ in covered] == ([start] if ids else []) + [
                b for _, b in covered[:-1]
            ]
            assert (covered[-1][1] if covered else start) == end
            span = end - start
            if span and not span & (span - 1) and start % span == 0:
                assert ids == ((span.bit_length() - 1, start // span),)
