"""The log's tables in real Postgres (storage/tlog_store.py, storage/tlog_writer.py):
proofs from the stored nodes are the in-memory tree's, for every index and size,
and a restart reads back the very right edge the rounds left."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from ledger.encoding import sha256_b64u
from ledger.errors import LedgerError
from ledger.merkle import (
    MerkleTree,
    assemble,
    inclusion_plan,
    plan_ids,
    verify_consistency,
    verify_inclusion,
)
from ledger.tlog import EventLeaf
from storage.tlog_store import (
    checkpoint_at,
    checkpoints_after,
    consistency_hashes,
    fetch_nodes,
    latest_checkpoint,
)
from storage.tlog_writer import load_log_state
from tests.integration._tlog_rounds import append_rounds

pytestmark = pytest.mark.integration

ORIGIN = "test.example/tlog"
#: rounds of these many leaves: sizes 1, 4, 5, 12, 13, 29, 33, 40 are checkpoints
ROUNDS = [1, 3, 1, 7, 1, 16, 4, 7]


def _leaf(n: int) -> EventLeaf:
    b64u = sha256_b64u(f"event {n}".encode())
    return EventLeaf(n % 3, n // 3 + 1, str(uuid.UUID(int=n + 1)), b64u, b64u)


async def _write_rounds(conn: asyncpg.Connection) -> tuple[MerkleTree, list[int]]:
    """Every round through append_round, mirrored in an in-memory tree."""
    leaves = [_leaf(n) for n in range(sum(ROUNDS))]
    memory = MerkleTree()
    memory.extend(leaf.hash() for leaf in leaves)
    return memory, await append_rounds(conn, leaves, ROUNDS, ORIGIN, first_position=1000)


async def test_stored_proofs_are_the_in_memory_trees(fresh_database: str) -> None:
    conn = await asyncpg.connect(fresh_database)
    try:
        memory, sizes = await _write_rounds(conn)
        for size in sizes:
            stored = await checkpoint_at(conn, size)
            assert stored is not None and stored.root_hash == memory.root(size)
            for index in range(size):
                elements = inclusion_plan(index, size)
                proof = assemble(elements, await fetch_nodes(conn, plan_ids(elements)))
                assert proof == memory.inclusion_proof(index, size)
                verify_inclusion(index, size, memory.store.get(0, index), proof, stored.root_hash)
            for old in sizes:
                if old > size:
                    continue
                proof = await consistency_hashes(conn, old, size)
                assert proof == memory.consistency_proof(old, size)
                verify_consistency(old, size, memory.root(old), memory.root(size), proof)
        latest = await latest_checkpoint(conn)
        assert latest is not None and latest.tree_size == sizes[-1]
        assert [c.tree_size for c in await checkpoints_after(conn, 5, 3)] == [12, 13, 29]
    finally:
        await conn.close()


async def test_a_restart_resumes_from_the_stored_edge(fresh_database: str) -> None:
    conn = await asyncpg.connect(fresh_database)
    try:
        memory, sizes = await _write_rounds(conn)
        state = await load_log_state(conn)
        assert state.edge.size == sizes[-1]
        assert state.edge.root() == memory.root()
        assert state.checkpoint is not None and state.checkpoint.tree_size == sizes[-1]
        # partition -> the last ledger_seq appended (leaves n go to partition n % 3)
        total = sizes[-1]
        assert state.included == {
            p: max(n // 3 + 1 for n in range(total) if n % 3 == p) for p in range(3)
        }
    finally:
        await conn.close()


async def test_a_changed_node_is_refused_at_restart(fresh_database: str) -> None:
    conn = await asyncpg.connect(fresh_database)
    try:
        await _write_rounds(conn)
        await conn.execute("SET session_replication_role = replica")
        # level 5 index 0: the root of the first 32 leaves, on the right edge of size 40
        await conn.execute(
            "UPDATE tlog_nodes SET hash = $1 WHERE level = 5 AND idx = 0", b"\x07" * 32
        )
        with pytest.raises(LedgerError, match="do not fold to the root"):
            await load_log_state(conn)
    finally:
        await conn.close()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE tlog_nodes SET hash = hash",
        "DELETE FROM tlog_leaves",
        "TRUNCATE tlog_checkpoints",
    ],
)
async def test_the_log_tables_are_append_only(fresh_database: str, statement: str) -> None:
    conn = await asyncpg.connect(fresh_database)
    try:
        await _write_rounds(conn)
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await conn.execute(statement)
    finally:
        await conn.close()
