"""Proofs of many events at once (storage.tlog_store.inclusion_proofs_for_events, the
sealed bundle's LogProofSource) are exactly the one-at-a-time proofs, in real Postgres."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

import storage.tlog_store as tlog_store
from ledger.checkpoint import Checkpoint
from ledger.encoding import sha256_b64u
from ledger.log_proofs import EventsNotLogged, SignedCheckpoint
from ledger.merkle import MerkleTree, verify_inclusion
from ledger.tlog import EventLeaf
from storage.tlog_proofs import LogProofSource
from storage.tlog_store import (
    LogEntryNotFound,
    inclusion_proof_for_event,
    inclusion_proofs_for_events,
)
from tests.integration._tlog_rounds import LOG_KEY, append_rounds

pytestmark = pytest.mark.integration

ORIGIN = "test.example/batch-proofs"
#: events per checkpointer round; the last round's events are committed, not logged
ROUNDS = [5, 12, 20]
EVENTS = sum(ROUNDS) + 4


async def _commit_events(conn: asyncpg.Connection) -> list[EventLeaf]:
    """``EVENTS`` rows in ``events`` over two partitions, as their leaves (position order)."""
    leaves = []
    for n in range(EVENTS):
        partition, seq = n % 2, n // 2 + 1
        envelope, chain = sha256_b64u(f"e{n}".encode()), sha256_b64u(f"c{n}".encode())
        leaf = EventLeaf(partition, seq, str(uuid.uuid4()), envelope, chain)
        await conn.execute(
            "INSERT INTO events (event_id, event_type, stream, producer, occurred_at,"
            " payload_hash_b64u, envelope_sha256, envelope_raw, payload, kafka_topic,"
            " kafka_partition, kafka_offset, ledger_seq, chain_hash)"
            " VALUES ($1, 'agent.halted', 'halt:x', 'did:key:z', now(), 'h', $2, '\\x7b7d',"
            " '{}', 't', $3, $4, $4, $5)",
            uuid.UUID(leaf.event_id),
            leaf.envelope_sha256,
            partition,
            seq,
            leaf.chain_hash,
        )
        leaves.append(leaf)
    return leaves


async def _log(conn: asyncpg.Connection, leaves: list[EventLeaf]) -> list[int]:
    """Append the events round by round as the checkpointer does; the checkpoint sizes."""
    # events are committed at positions 1, 2, ... in leaf order
    return await append_rounds(conn, leaves, ROUNDS[:-1], ORIGIN, first_position=1)


@pytest.mark.parametrize("proof_batch", [4, tlog_store.PROOF_BATCH])
async def test_batched_proofs_are_the_one_at_a_time_proofs(
    fresh_database: str, monkeypatch: pytest.MonkeyPatch, proof_batch: int
) -> None:
    # batches of 4: the events of one call span several queries, and few nodes of a
    # path lie over a batch's own leaves; one batch: most are hashed, not read
    monkeypatch.setattr(tlog_store, "PROOF_BATCH", proof_batch)
    conn = await asyncpg.connect(fresh_database)
    try:
        leaves = await _commit_events(conn)
        sizes = await _log(conn, leaves)
        memory = MerkleTree()
        memory.extend(leaf.hash() for leaf in leaves[: sizes[-1]])
        unknown = str(uuid.uuid4())
        asked = [leaf.event_id for leaf in reversed(leaves)] + [unknown, "not-a-uuid"]
        for size in sizes:
            found, missing = await inclusion_proofs_for_events(conn, asked, size)
            assert missing == [leaf.event_id for leaf in reversed(leaves[size:])] + [
                unknown,
                "not-a-uuid",
            ]
            assert len(found) == size
            for index, leaf in enumerate(leaves[:size]):
                one = await inclusion_proof_for_event(conn, leaf.event_id, size)
                assert one.proof == memory.inclusion_proof(index, size)
                assert found[leaf.event_id] == (index, leaf, one.proof)
                assert (one.leaf, one.leaf_data, one.checkpoint.tree_size) == (
                    leaf,
                    leaf.data(),
                    size,
                )
                root = one.checkpoint.root_hash
                verify_inclusion(one.log_index, size, leaf.hash(), one.proof, root)
        # another spelling of an id is proven under the spelling asked
        shouted = leaves[0].event_id.upper()
        found, missing = await inclusion_proofs_for_events(conn, [shouted], sizes[-1])
        assert missing == [] and found[shouted][1] == leaves[0]
        # a size no checkpoint has: nothing is proven against it
        found, missing = await inclusion_proofs_for_events(conn, asked[:3], sizes[0] + 1)
        assert found == {} and missing == asked[:3]
    finally:
        await conn.close()


async def test_the_log_source_proves_a_whole_run_or_names_what_is_missing(
    fresh_database: str,
) -> None:
    conn = await asyncpg.connect(fresh_database)
    try:
        leaves = await _commit_events(conn)
        sizes = await _log(conn, leaves)
    finally:
        await conn.close()
    source = LogProofSource(fresh_database)
    latest = await source.checkpoint()
    assert latest.size == sizes[-1]
    ids = [leaf.event_id for leaf in leaves[: latest.size]]
    proofs = await source.prove(ids, latest)
    assert list(proofs) == ids
    for index, event_id in enumerate(ids):
        assert proofs[event_id].log_index == index
        assert proofs[event_id].leaf == leaves[index]
        verify_inclusion(
            index, latest.size, leaves[index].hash(), proofs[event_id].proof,
            latest.checkpoint.root_hash,
        )  # fmt: skip
    older = SignedCheckpoint("", Checkpoint(ORIGIN, sizes[0], b"\0" * 32))
    with pytest.raises(EventsNotLogged) as refused:
        await source.prove(ids, older)
    assert refused.value.missing == tuple(ids[sizes[0] :])


async def test_one_proof_against_the_latest_or_a_named_checkpoint(fresh_database: str) -> None:
    conn = await asyncpg.connect(fresh_database)
    try:
        leaves = await _commit_events(conn)
        with pytest.raises(LogEntryNotFound, match="not in the log yet"):
            await inclusion_proof_for_event(conn, leaves[0].event_id)
        sizes = await _log(conn, leaves)
        latest = await inclusion_proof_for_event(conn, leaves[1].event_id)
        assert latest.checkpoint.tree_size == sizes[-1]
        assert latest.checkpoint.origin == ORIGIN and latest.checkpoint.signer_did == LOG_KEY.did
        assert latest.checkpoint.created_at is not None
        first = await inclusion_proof_for_event(conn, leaves[1].event_id, sizes[0])
        assert first.checkpoint.tree_size == sizes[0] and first.proof != latest.proof
        assert first.proof_file()["checkpoint"] == first.checkpoint.note
        with pytest.raises(LogEntryNotFound, match="after the checkpoint of size"):
            await inclusion_proof_for_event(conn, leaves[sizes[0]].event_id, sizes[0])
        with pytest.raises(LogEntryNotFound, match=r"no checkpoint of tree size 3 \(the latest"):
            await inclusion_proof_for_event(conn, leaves[1].event_id, 3)
        with pytest.raises(LogEntryNotFound, match="not in the log yet"):
            await inclusion_proof_for_event(conn, leaves[-1].event_id)
        with pytest.raises(LogEntryNotFound, match="no event"):
            await inclusion_proof_for_event(conn, str(uuid.uuid4()))
        with pytest.raises(LogEntryNotFound, match="not an event id"):
            await inclusion_proof_for_event(conn, "x")
    finally:
        await conn.close()
