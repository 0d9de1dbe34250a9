"""RFC 9162 Merkle proofs as properties against the RFC's recursive definitions: each
proof is the definition's, any flipped bit fails, a batch verifies and reads as the
proofs one at a time do, and read plans serve proofs from any key-value source."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import ProofError
from ledger.merkle import (
    InclusionBatch,
    InclusionVerifier,
    MerkleTree,
    NodeId,
    assemble,
    consistency_plan,
    covered_nodes,
    inclusion_plan,
    merkle_tree_hash,
    plan_ids,
    root_plan,
    verify_consistency,
    verify_inclusion,
)

from ._merkle_reference import HASHES, MAX_SIZE, ref_mth, ref_path, ref_subproof


@pytest.fixture(scope="module")
def big_tree() -> MerkleTree:
    tree = MerkleTree()
    tree.extend(HASHES)
    return tree


def _flip(data: bytes, bit: int) -> bytes:
    bit %= len(data) * 8
    mutable = bytearray(data)
    mutable[bit // 8] ^= 1 << (bit % 8)
    return bytes(mutable)


def _tamper(
    data: st.DataObject, first: bytes, second: bytes, proof: Sequence[bytes]
) -> tuple[bytes, bytes, list[bytes]]:
    """One drawn bit flipped in ``first``, in ``second`` or in one node of ``proof``."""
    bit = data.draw(st.integers(0, 255))
    target = data.draw(st.integers(-2, len(proof) - 1))
    tampered = list(proof)
    if target == -2:
        first = _flip(first, bit)
    elif target == -1:
        second = _flip(second, bit)
    else:
        tampered[target] = _flip(tampered[target], bit)
    return first, second, tampered


def _size_and_leaf(data: st.DataObject) -> tuple[int, int]:
    """A tree size up to MAX_SIZE, then the index of a leaf of that tree."""
    size = data.draw(st.integers(1, MAX_SIZE))
    return size, data.draw(st.integers(0, size - 1))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_every_inclusion_proof_matches_path_and_any_flipped_bit_fails(
    big_tree: MerkleTree, data: st.DataObject
) -> None:
    size, index = _size_and_leaf(data)
    root = big_tree.root(size)
    assert root == ref_mth(HASHES[:size])
    proof = big_tree.inclusion_proof(index, size)
    assert proof == ref_path(index, HASHES[:size])
    verify_inclusion(index, size, HASHES[index], proof, root)

    leaf, tampered_root, tampered = _tamper(data, HASHES[index], root, proof)
    with pytest.raises(ProofError):
        verify_inclusion(index, size, leaf, tampered, tampered_root)


def _verdict(check: Callable[..., None], *args: object) -> str:
    try:
        check(*args)
    except ProofError as exc:
        return exc.code
    return "OK"


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_a_batch_verifier_gives_each_proof_the_verdict_of_verify_inclusion(
    big_tree: MerkleTree, data: st.DataObject
) -> None:
    """Side-by-side leaves share most of their climb; whatever the order, and with
    good and tampered proofs mixed (a wrong sibling above a shared node, a proof cut
    short, another leaf's proof), each verdict is the one-proof verifier's."""
    size, first = _size_and_leaf(data)
    root = big_tree.root(size)
    verifier = InclusionVerifier(size, root)
    indices = data.draw(
        st.lists(st.integers(first, min(size - 1, first + 40)), min_size=1, max_size=30)
    )
    for index in indices:
        leaf, proof = HASHES[index], big_tree.inclusion_proof(index, size)
        how = data.draw(st.sampled_from(["good", "flip", "cut", "long", "other"]))
        if how == "flip" and proof:
            position = data.draw(st.integers(0, len(proof) - 1))
            proof[position] = _flip(proof[position], data.draw(st.integers(0, 255)))
        elif how == "cut" and proof:
            proof = proof[:-1]
        elif how == "long":
            proof = [*proof, HASHES[0]]
        elif how == "other":
            leaf = HASHES[data.draw(st.integers(0, size - 1))]
        expected = _verdict(verify_inclusion, index, size, leaf, proof, root)
        got = _verdict(verifier.verify, index, leaf, proof)
        assert got == expected, (index, size, how)


def _subtree_nodes(size: int) -> dict[NodeId, bytes]:
    """Every complete subtree of the first ``size`` leaves of HASHES, by its id."""
    nodes: dict[NodeId, bytes] = {}
    level = 0
    while 1 << level <= size:
        for index in range(size >> level):
            first = index << level
            nodes[(level, index)] = merkle_tree_hash(HASHES[first : first + (1 << level)])
        level += 1
    return nodes


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_batch_of_paths_reads_what_the_plans_read_and_gives_their_proofs(
    big_tree: MerkleTree, data: st.DataObject
) -> None:
    """Runs of neighbours (as a sealed bundle asks) and scattered leaves, repeats
    included: the batch needs exactly the nodes the one-at-a-time plans need, and
    each path is that leaf's proof."""
    size, first = _size_and_leaf(data)
    run = list(range(first, min(size, first + data.draw(st.integers(1, 80)))))
    scattered = data.draw(st.lists(st.integers(0, size - 1), max_size=20))
    indexes = run + scattered
    batch = InclusionBatch(indexes, size)
    needed = batch.nodes()
    assert len(needed) == len(set(needed))
    assert set(needed) == set(plan_ids(e for i in indexes for e in inclusion_plan(i, size)))
    table = {node: big_tree.store.get(*node) for node in needed}
    paths = batch.paths(table)
    assert paths == {i: big_tree.inclusion_proof(i, size) for i in indexes}
    if needed:
        del table[data.draw(st.sampled_from(needed))]
        with pytest.raises(KeyError):
            batch.paths(table)


def test_a_batch_refuses_leaves_outside_its_tree() -> None:
    for indexes, size in (([0], 0), ([4], 4), ([-1], 4), ([2], -1)):
        with pytest.raises(ValueError):
            InclusionBatch(indexes, size)
    assert InclusionBatch([], 5).nodes() == []


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_covered_nodes_are_the_complete_subtrees_over_the_given_leaves(
    data: st.DataObject,
) -> None:
    size = data.draw(st.integers(1, 130))
    given_leaves = set(data.draw(st.lists(st.integers(0, size - 1), max_size=size)))
    first = data.draw(st.integers(0, size - 1))
    given_leaves.update(range(first, min(size, first + data.draw(st.integers(0, 70)))))
    covered = covered_nodes({index: HASHES[index] for index in given_leaves})
    every = _subtree_nodes(size)
    expected = {
        (level, index): hashed
        for (level, index), hashed in every.items()
        if all(leaf in given_leaves for leaf in range(index << level, (index + 1) << level))
    }
    assert covered == expected


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_every_consistency_proof_matches_subproof_and_any_flipped_bit_fails(
    big_tree: MerkleTree, data: st.DataObject
) -> None:
    new = data.draw(st.integers(1, MAX_SIZE))
    old = data.draw(st.integers(1, new))
    root1, root2 = big_tree.root(old), big_tree.root(new)
    proof = big_tree.consistency_proof(old, new)
    assert proof == (ref_subproof(old, HASHES[:new], True) if old < new else [])
    verify_consistency(old, new, root1, root2, proof)

    root1, root2, tampered = _tamper(data, root1, root2, proof)
    with pytest.raises(ProofError):
        verify_consistency(old, new, root1, root2, tampered)


def test_plans_serve_proofs_from_any_key_value_source(big_tree: MerkleTree) -> None:
    # what an async or SQL store does: list the ids, fetch them in one query, fold
    size, index, old = 257, 200, 100
    table = {
        node: big_tree.store.get(*node)
        for node in plan_ids([*inclusion_plan(index, size), *consistency_plan(old, size)])
    }
    assert assemble(inclusion_plan(index, size), table) == ref_path(index, HASHES[:size])
    assert assemble(consistency_plan(old, size), table) == ref_subproof(old, HASHES[:size], True)
    assert root_plan(size) == ((8, 0), (0, 256))
    assert root_plan(0) == ()
    with pytest.raises(KeyError):
        assemble(inclusion_plan(index, size + 64), table)
