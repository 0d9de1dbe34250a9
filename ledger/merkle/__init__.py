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

from ledger.merkle._plans import (
    EMPTY_ROOT,
    HASH_SIZE,
    InclusionBatch,
    NodeId,
    assemble,
    consistency_plan,
    covered_nodes,
    inclusion_plan,
    leaf_hash,
    node_hash,
    plan_ids,
    root_plan,
)
from ledger.merkle._trees import (
    CompactRange,
    InMemoryNodeStore,
    MerkleTree,
    NodeReader,
    NodeStore,
    consistency_proof,
    inclusion_proof,
    merkle_tree_hash,
    root_at,
)
from ledger.merkle._verify import (
    InclusionVerifier,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)

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
