"""RFC 9162 Merkle trees against the RFC 6962 reference vectors: roots, inclusion and
consistency proofs, and every corruption of them the verifiers refuse."""

from __future__ import annotations

import hashlib

import pytest

from ledger.errors import ProofError, ReasonCode
from ledger.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    inclusion_plan,
    leaf_hash,
    merkle_tree_hash,
    node_hash,
    root_from_inclusion_proof,
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
