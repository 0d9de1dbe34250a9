"""RFC 9162 Merkle trees: reference vectors, properties against the RFC definitions, leaves."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import ProofError, ReasonCode
from ledger.merkle import (
    EMPTY_ROOT,
    CompactRange,
    InclusionBatch,
    InclusionVerifier,
    InMemoryNodeStore,
    MerkleTree,
    NodeId,
    assemble,
    consistency_plan,
    covered_nodes,
    inclusion_plan,
    leaf_hash,
    merkle_tree_hash,
    node_hash,
    plan_ids,
    root_from_inclusion_proof,
    root_plan,
    verify_consistency,
    verify_inclusion,
)

# --- the RFC 6962 reference vectors of Certificate Transparency / Trillian ------------------
# (transparency-dev/merkle proof/verify_test.go: leaves, roots, inclusionProofs, consistencyProofs)

LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
ROOTS = [
    bytes.fromhex(h)
    for h in (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]


def _h(*hexes: str) -> list[bytes]:
    return [bytes.fromhex(h) for h in hexes]


#: (leaf index, tree size, proof); the vectors number leaves from 1
INCLUSION = [
    (0, 1, []),
    (
        0,
        8,
        _h(
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
    ),
    (
        5,
        8,
        _h(
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
    (2, 3, _h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")),
    (
        1,
        5,
        _h(
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
    ),
]
#: (old size, new size, proof)
CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        _h(
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
    ),
    (
        6,
        8,
        _h(
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
    (
        2,
        5,
        _h(
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
    ),
    (
        6,
        7,
        _h(
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
]
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


@pytest.fixture(scope="module")
def vector_tree() -> MerkleTree:
    tree = MerkleTree()
    tree.extend(leaf_hash(data) for data in LEAVES)
    return tree


def test_hash_prefixes_and_empty_tree() -> None:
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest() == ROOTS[0]
    assert (
        node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    )
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert merkle_tree_hash([]) == MerkleTree().root() == EMPTY_ROOT


def test_roots_of_every_prefix(vector_tree: MerkleTree) -> None:
    for size in range(1, 9):
        assert vector_tree.root(size) == ROOTS[size - 1]
        assert merkle_tree_hash(leaf_hash(d) for d in LEAVES[:size]) == ROOTS[size - 1]
    assert vector_tree.root() == ROOTS[7]


def _wrong_sizes(first: int, second: int) -> list[tuple[int, int]]:
    """The (index or old size, tree size) pairs a proof must not verify for."""
    return [
        (first - 1, second),
        (first + 1, second),
        (first ^ 2, second),
        (first, second * 2),
        (first, second // 2),
    ]


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_inclusion_vectors(
    vector_tree: MerkleTree, index: int, size: int, proof: list[bytes]
) -> None:
    assert vector_tree.inclusion_proof(index, size) == proof
    leaf = leaf_hash(LEAVES[index])
    root = ROOTS[size - 1]
    verify_inclusion(index, size, leaf, proof, root)
    corrupted = [(i, s, leaf, proof, root) for i, s in _wrong_sizes(index, size)]
    corrupted += [
        (index, size, leaf_hash(b"WrongLeaf"), proof, root),
        (index, size, leaf, proof, EMPTY_ROOT),
        (index, size, leaf, proof, SOME_HASH),
        (index, size, leaf, [*proof, root], root),
        (index, size, leaf, [root, *proof], root),
        (index, size, leaf, [*proof, b""], root),
        (index, size, leaf, [b"", *proof], root),
    ]
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([flipped[i][0] ^ 8]) + flipped[i][1:]
        corrupted.append((index, size, leaf, flipped, root))
    if proof:
        corrupted.append((index, size, leaf, proof[:-1], root))
    if len(proof) > 1:
        corrupted.append((index, size, leaf, [proof[0], SOME_HASH, *proof[1:]], root))
    for case in corrupted:
        with pytest.raises(ProofError) as caught:
            verify_inclusion(*case)
        assert caught.value.code == ReasonCode.INCLUSION_PROOF_INVALID, case


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_consistency_vectors(
    vector_tree: MerkleTree, old: int, new: int, proof: list[bytes]
) -> None:
    assert vector_tree.consistency_proof(old, new) == proof
    root1, root2 = ROOTS[old - 1], ROOTS[new - 1]
    verify_consistency(old, new, root1, root2, proof)
    if not proof:
        return
    corrupted = [(o, n, root1, root2, proof) for o, n in _wrong_sizes(old, new)]
    corrupted += [
        (old, new, SOME_HASH, root2, proof),
        (old, new, root1, SOME_HASH, proof),
        (old, new, root2, root1, proof),
        (old, new, root1, root2, []),
        (old, new, root1, root2, [*proof, root1]),
        (old, new, root1, root2, [*proof, root2]),
        (old, new, root1, root2, [root1, *proof]),
        (old, new, root1, root2, [root2, *proof]),
        (old, new, root1, root2, [proof[0], *proof]),
        (old, new, root1, root2, proof[:-1]),
    ]
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([flipped[i][0] ^ 16]) + flipped[i][1:]
        corrupted.append((old, new, root1, root2, flipped))
    for case in corrupted:
        with pytest.raises(ProofError) as caught:
            verify_consistency(*case)
        assert caught.value.code == ReasonCode.CONSISTENCY_PROOF_INVALID, case


@pytest.mark.parametrize(
    ("old", "new", "root1", "root2", "proof", "ok"),
    [
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [], True),
        (0, 1, SOME_HASH, ROOTS[0], [], True),
        (1, 1, ROOTS[0], ROOTS[0], [], True),
        (0, 0, EMPTY_ROOT, SOME_HASH, [], False),
        (1, 1, ROOTS[0], ROOTS[1], [], False),
        (1, 0, ROOTS[0], EMPTY_ROOT, [], False),
        (2, 1, ROOTS[1], ROOTS[0], [], False),
        (1, 2, ROOTS[0], ROOTS[1], [], False),
        (0, 1, EMPTY_ROOT, ROOTS[0], [EMPTY_ROOT], False),
        (1, 1, ROOTS[0], ROOTS[0], [EMPTY_ROOT], False),
    ],
)
def test_consistency_edge_sizes(
    old: int, new: int, root1: bytes, root2: bytes, proof: list[bytes], ok: bool
) -> None:
    if ok:
        verify_consistency(old, new, root1, root2, proof)
    else:
        with pytest.raises(ProofError):
            verify_consistency(old, new, root1, root2, proof)


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 0), (2, 1), (-1, 4), (True, 2)])
def test_inclusion_refuses_impossible_positions(index: int, size: int) -> None:
    with pytest.raises(ProofError):
        root_from_inclusion_proof(index, size, SOME_HASH, [])
    with pytest.raises(ValueError):
        inclusion_plan(index, size)


def test_verifiers_refuse_hashes_of_the_wrong_length() -> None:
    leaf = leaf_hash(b"data")
    verify_inclusion(0, 1, leaf, [], leaf)
    for bad in (b"", leaf[:31], leaf + b"\x00"):
        with pytest.raises(ProofError):
            verify_inclusion(0, 1, bad, [], bad)
        with pytest.raises(ProofError):
            verify_consistency(1, 1, bad, bad, [])


# --- properties against the recursive definitions of RFC 9162 -------------------------------


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


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_every_inclusion_proof_matches_path_and_any_flipped_bit_fails(
    big_tree: MerkleTree, data: st.DataObject
) -> None:
    size = data.draw(st.integers(1, MAX_SIZE))
    index = data.draw(st.integers(0, size - 1))
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
    size = data.draw(st.integers(1, MAX_SIZE))
    root = big_tree.root(size)
    verifier = InclusionVerifier(size, root)
    first = data.draw(st.integers(0, size - 1))
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
    size = data.draw(st.integers(1, MAX_SIZE))
    first = data.draw(st.integers(0, size - 1))
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


# --- storage ------------------------------------------------------------------------------


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
    from ledger.merkle import _range_ids

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
