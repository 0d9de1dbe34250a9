"""The transparency log live: proofs served from Postgres, and ingest with a checkpointer.

* :func:`stored_proof` builds a tree of ``leaves`` leaves in a fresh database's
  ``tlog_nodes`` (what the checkpointer writes), then times an inclusion proof
  read from it (one query for the O(log n) nodes, folded) and verified, beside
  the same proof from the in-memory tree measured in the same run.
* :func:`batch_proofs` proves a run of ``run`` consecutive events of that tree
  the way a sealed bundle does (``LogProofSource.prove``: two queries per 5,000
  events), beside the same proofs one event at a time (three queries each).
* :func:`checkpointing_rows` compares end-to-end ingest with a checkpointer
  signing every second against ingest without one, run after run.

Usage: python -m bench.tlog --database-url URL [--leaves 1000000] (the proof
figures only; ``make bench`` runs both).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from ledger.merkle import (
    CompactRange,
    MerkleTree,
    assemble,
    inclusion_plan,
    leaf_hash,
    plan_ids,
    verify_inclusion,
)
from storage.tlog_store import (
    fetch_nodes,
    inclusion_proof_for_event,
    inclusion_proofs_for_events,
)

__all__ = [
    "batch_proof_rows",
    "batch_proofs",
    "checkpointing_rows",
    "stored_proof",
    "stored_proof_rows",
]

Row = tuple[str, str, str, str, str]
LEAVES = 1_000_000
SAMPLES = 500
_COPY_CHUNK = 100_000


async def _copy(conn: asyncpg.Connection, nodes: list[tuple[int, int, bytes]]) -> None:
    # level 0 lives in tlog_leaves (one row per event), complete subtrees above it in
    # tlog_nodes, as the checkpointer writes them (ADR 0017)
    leaves = [
        (idx, idx + 1, uuid.UUID(int=idx + 1), 0, idx + 1, hashed)
        for level, idx, hashed in nodes
        if level == 0
    ]
    inner = [node for node in nodes if node[0] > 0]
    if leaves:
        await conn.copy_records_to_table(
            "tlog_leaves",
            records=leaves,
            columns=("log_index", "position", "event_id", "kafka_partition", "ledger_seq",
                     "leaf_hash"),
        )  # fmt: skip
    if inner:
        await conn.copy_records_to_table(
            "tlog_nodes", records=inner, columns=("level", "idx", "hash")
        )


async def _fill(conn: asyncpg.Connection, hashes: list[bytes]) -> None:
    """The leaves and complete-subtree nodes of ``hashes``, as the checkpointer's rounds
    leave them."""
    edge = CompactRange()
    nodes: list[tuple[int, int, bytes]] = []
    for hashed in hashes:
        nodes.extend(edge.append(hashed))
        if len(nodes) >= _COPY_CHUNK:
            await _copy(conn, nodes)
            nodes = []
    if nodes:
        await _copy(conn, nodes)
    await conn.execute("ANALYZE tlog_nodes")
    await conn.execute("ANALYZE tlog_leaves")


async def stored_proof(
    database_url: str, leaves: int = LEAVES, samples: int = SAMPLES
) -> dict[str, float]:
    """``database_url``: a migrated, empty ledger database (its tlog_nodes is filled)."""
    rng = random.Random(9162)
    hashes = [leaf_hash(i.to_bytes(8, "big")) for i in range(leaves)]
    memory = MerkleTree()
    memory.extend(hashes)
    root = memory.root()
    conn = await asyncpg.connect(database_url)
    try:
        await _fill(conn, hashes)
        indices = [rng.randrange(leaves) for _ in range(samples)]
        for index in indices[:20]:  # warm the index pages and the statement cache
            elements = inclusion_plan(index, leaves)
            await fetch_nodes(conn, plan_ids(elements))
        stored_ns, memory_ns, trip_ns = [], [], []
        for index in indices:
            start = time.perf_counter_ns()
            await conn.fetchval("SELECT 1")
            trip_ns.append(time.perf_counter_ns() - start)
            start = time.perf_counter_ns()
            elements = inclusion_plan(index, leaves)
            proof = assemble(elements, await fetch_nodes(conn, plan_ids(elements)))
            verify_inclusion(index, leaves, hashes[index], proof, root)
            stored_ns.append(time.perf_counter_ns() - start)
            start = time.perf_counter_ns()
            verify_inclusion(index, leaves, hashes[index], memory.inclusion_proof(index), root)
            memory_ns.append(time.perf_counter_ns() - start)
    finally:
        await conn.close()
    return {
        "leaves": float(leaves),
        "stored_us": statistics.median(stored_ns) / 1000,
        "stored_p99_us": statistics.quantiles(stored_ns, n=100)[98] / 1000,
        "memory_us": statistics.median(memory_ns) / 1000,
        "round_trip_us": statistics.median(trip_ns) / 1000,
    }


_RUN_EVENTS = """
INSERT INTO events (position, event_id, event_type, stream, producer, occurred_at,
                    payload_hash_b64u, envelope_sha256, envelope_raw, payload, kafka_topic,
                    kafka_partition, kafka_offset, ledger_seq, chain_hash)
OVERRIDING SYSTEM VALUE
SELECT p, lpad(to_hex(p), 32, '0')::uuid, 'receipt.recorded', 'job:bench', 'did:key:z',
       now(), 'h', $3, '\\x7b7d', '{}', 'bench', 0, p, p, $3
FROM generate_series($1::bigint, $2::bigint) AS p
"""


async def batch_proofs(
    database_url: str, leaves: int = LEAVES, run: int = 10_000
) -> dict[str, float]:
    """``database_url``: a migrated, empty ledger database. Seconds to prove ``run``
    events of a ``leaves``-leaf stored log for a sealed bundle, batched and one by one."""
    from ledger.checkpoint import Checkpoint, NoteSigner, sign_checkpoint
    from ledger.crypto import KeyPair
    from ledger.encoding import b64u_encode
    from ledger.envelope import format_timestamp
    from ledger.log_proofs import SignedCheckpoint
    from storage.tlog_proofs import LogProofSource

    hashes = [leaf_hash(i.to_bytes(8, "big")) for i in range(leaves)]
    edge = CompactRange()
    for hashed in hashes:
        edge.append(hashed)
    origin, key = "bench.example/log", KeyPair.from_seed(b"\x07" * 32, "ledger")
    checkpoint = Checkpoint(origin, leaves, edge.root())
    note = sign_checkpoint(checkpoint, [NoteSigner(origin, key)]).decode()
    first = leaves - run  # the newest events: a run sealed when it completes
    digest = b64u_encode(bytes(32))
    conn = await asyncpg.connect(database_url)
    try:
        await _fill(conn, hashes)
        # the leaves of _copy name event uuid(int=position), partition 0, seq = position
        await conn.execute(_RUN_EVENTS, first + 1, leaves, digest)
        await conn.execute(
            "INSERT INTO tlog_checkpoints (tree_size, origin, root_hash, note, signer_did,"
            " event_id, occurred_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            leaves, origin, edge.root(), note, key.did, uuid.uuid4(), format_timestamp(),
        )  # fmt: skip
        await conn.execute("ANALYZE events")
        ids = [str(uuid.UUID(int=position)) for position in range(first + 1, leaves + 1)]
        signed = SignedCheckpoint(note, checkpoint)
        started = time.perf_counter()
        proofs = await LogProofSource(database_url).prove(ids, signed)
        batched = time.perf_counter() - started
        started = time.perf_counter()
        for event_id in ids:
            one = await inclusion_proof_for_event(conn, event_id, leaves)
            assert tuple(one.proof) == proofs[event_id].proof
        single = time.perf_counter() - started
        found, _ = await inclusion_proofs_for_events(conn, ids[:1], leaves)
        verify_inclusion(first, leaves, hashes[first], found[ids[0]][2], edge.root())
    finally:
        await conn.close()
    return {"leaves": float(leaves), "run": float(run), "batched_s": batched, "single_s": single}


async def batch_proof_rows(database_url: str, leaves: int = LEAVES) -> list[Row]:
    figures = await batch_proofs(database_url, leaves)
    return [
        (
            f"proofs of a sealed bundle's {figures['run']:,.0f} events from a"
            f" {figures['leaves']:,.0f}-event stored log (LogProofSource, batched)",
            f"{figures['batched_s']:,.2f} s",
            f"one proof at a time (3 queries each) {figures['single_s']:,.2f} s",
            "≤ 1 s",
            "met" if figures["batched_s"] <= 1 else "NOT met",
        )
    ]


async def stored_proof_rows(database_url: str, leaves: int = LEAVES) -> list[Row]:
    figures = await stored_proof(database_url, leaves)
    return [
        (
            f"inclusion proof over a {figures['leaves']:,.0f}-event tree in Postgres:"
            " one node query + fold + verify (median)",
            f"{figures['stored_us']:,.0f} µs (p99 {figures['stored_p99_us']:,.0f} µs)",
            f"the same from the in-memory tree {figures['memory_us']:,.0f} µs; a `SELECT 1`"
            f" round trip {figures['round_trip_us']:,.0f} µs",
            "≤ 1 ms",
            "met" if figures["stored_us"] <= 1000 else "NOT met",
        )
    ]


async def checkpointing_rows(
    run: Callable[[bool], Awaitable[Any]], events: int, repeat: int
) -> tuple[list[Row], list[str]]:
    """``run(checkpointer)``: one end-to-end run (``.sustained`` ev/s) on a fresh ledger,
    with or without a checkpointer signing every second. Runs alternate, so both see
    the same minutes of a shared machine; the medians are compared."""
    plain: list[float] = []
    checkpointed: list[float] = []
    for _ in range(repeat):
        plain.append((await run(False)).sustained)
        checkpointed.append((await run(True)).sustained)
    without, with_ = statistics.median(plain), statistics.median(checkpointed)
    ratio = with_ / without
    rows: list[Row] = [
        (
            f"end to end, {events:,} events, checkpointer signing every second"
            f" (median of {repeat} runs)",
            f"{with_:,.0f} ev/s sustained",
            f"{without:,.0f} ev/s without a checkpointer (ratio {ratio:.3f})",
            "≥ 0.95 × without",
            "met" if ratio >= 0.95 else "NOT met",
        )
    ]
    note = (
        "checkpointing runs, sustained ev/s: with "
        + ", ".join(f"{v:,.0f}" for v in checkpointed)
        + "; without "
        + ", ".join(f"{v:,.0f}" for v in plain)
    )
    return rows, [note]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="a migrated, empty database")
    parser.add_argument("--leaves", type=int, default=LEAVES)
    parser.add_argument(
        "--batch", type=int, metavar="RUN", help="time the batched proofs of RUN events instead"
    )
    args = parser.parse_args()
    if args.batch:
        figures = asyncio.run(batch_proofs(args.database_url, args.leaves, args.batch))
    else:
        figures = asyncio.run(stored_proof(args.database_url, args.leaves))
    for name, value in figures.items():
        print(f"{name:16} {value:14,.3f}")


if __name__ == "__main__":
    main()
