"""Read queries of the tamper audit beyond the hash chains (those are in
:mod:`storage.ledger_queries`): quarantine rows, duplicated Kafka coordinates
and the control-plane digests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from ledger.control_digest import CONTROL_DIGEST_TABLES, parse_digest, row_hash
from ledger.control_digest import DIGEST_MODULUS as _MODULUS
from ledger.tlog_audit import TreeRebuild
from storage.ledger_queries import _connect, _snapshot_rows
from storage.tlog_store import leaf_chain_sql

__all__ = [
    "audit_transparency_log",
    "control_digest_report",
    "duplicate_coordinates",
    "iter_quarantine",
]


def iter_quarantine(database_url: str, batch: int = 5000) -> AsyncIterator[dict[str, Any]]:
    """Every quarantine row's checked columns (the length of ``raw``, not ``raw``), by id."""
    return _snapshot_rows(
        database_url,
        "SELECT id, reason_code, raw_size, octet_length(raw) AS raw_length,"
        " kafka_topic, kafka_partition, kafka_offset FROM quarantine ORDER BY id",
        batch,
    )


async def duplicate_coordinates(database_url: str) -> list[dict[str, Any]]:
    """Kafka (topic, partition, offset) claimed by more than one row of ``events``
    and ``quarantine`` together (the unique constraints hold each table alone,
    unless they were dropped)."""
    conn = await _connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT kafka_topic, kafka_partition, kafka_offset, array_agg(place ORDER BY place)"
            " AS rows FROM (SELECT kafka_topic, kafka_partition, kafka_offset,"
            " 'events.position=' || position AS place FROM events UNION ALL"
            " SELECT kafka_topic, kafka_partition, kafka_offset, 'quarantine.id=' || id"
            " FROM quarantine) AS claimed GROUP BY kafka_topic, kafka_partition, kafka_offset"
            " HAVING count(*) > 1 ORDER BY kafka_topic, kafka_partition, kafka_offset"
        )
    finally:
        await conn.close()
    return [dict(r) for r in rows]


async def control_digest_report(
    database_url: str, batch: int = 5000
) -> dict[str, tuple[int | None, int]]:
    """Per control-plane table: the stored digest (``None``: not sealed) and the
    digest of its rows now, read in one snapshot."""
    conn = await _connect(database_url)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            stored = {
                r["table_name"]: parse_digest(r["digest"])
                for r in await conn.fetch("SELECT table_name, digest FROM control_digests")
            }
            report: dict[str, tuple[int | None, int]] = {}
            for table in CONTROL_DIGEST_TABLES:
                total = 0
                # table names are constants
                async for row in conn.cursor(f"SELECT * FROM {table}", prefetch=batch):
                    total += row_hash(table, dict(row))
                report[table] = (stored.get(table), total % _MODULUS)
            return report
    finally:
        await conn.close()


async def audit_transparency_log(
    database_url: str, batch: int = 5000, progress: Callable[[int], None] | None = None
) -> TreeRebuild:
    """The transparency log's tables against a rebuild from the events, in one snapshot:
    every leaf (log order, with its event), every stored node, every checkpoint;
    ``progress(leaves read)`` every ``batch`` leaves."""
    rebuild = TreeRebuild()
    conn = await _connect(database_url)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            leaves = conn.cursor(
                "SELECT l.log_index, l.event_id::text AS event_id, l.kafka_partition,"
                " l.ledger_seq, l.leaf_hash, e.event_id::text AS e_event_id,"
                f" {leaf_chain_sql('e.')} AS e_partition,"
                " e.ledger_seq AS e_seq, e.envelope_sha256 AS e_envelope_sha256,"
                " e.chain_hash AS e_chain_hash,"
                # an archived event's row left with its partition (migration 0017): its
                # leaf is checked against event_keys, its stored hash taken as cut
                " k.event_id::text AS k_event_id, k.kafka_partition AS k_partition,"
                " k.ledger_seq AS k_seq, (e.position IS NULL AND l.position < coalesce("
                "(SELECT max(before_position) FROM archive_boundaries), 0)) AS archived"
                " FROM tlog_leaves l LEFT JOIN events e ON e.position = l.position"
                " LEFT JOIN event_keys k ON k.position = l.position"
                " ORDER BY l.log_index",
                prefetch=batch,
            )
            async for row in leaves:
                rebuild.add_leaf(row)
                if progress is not None and rebuild.size % batch == 0:
                    progress(rebuild.size)
            counts: dict[int, int] = {}
            nodes = conn.cursor(
                "SELECT level, idx, hash FROM tlog_nodes ORDER BY level, idx", prefetch=batch
            )
            async for row in nodes:
                level = int(row["level"])
                counts[level] = counts.get(level, 0) + 1
                rebuild.check_node(level, int(row["idx"]), bytes(row["hash"]))
            rebuild.check_node_counts(counts)
            ledger_keys = {
                r["did"]
                for r in await conn.fetch("SELECT did, roles FROM keys")
                if "ledger" in (r["roles"] or [])
            }
            published = {
                int(r["tree_size"]): str(r["note"])
                for r in await conn.fetch(
                    "SELECT (payload->'body'->>'tree_size')::bigint AS tree_size,"
                    " payload->'body'->>'note' AS note FROM events"
                    " WHERE event_type = 'checkpoint.signed'"
                )
            }
            async for row in conn.cursor(
                "SELECT tree_size, origin, root_hash, note, signer_did FROM tlog_checkpoints"
                " ORDER BY tree_size",
                prefetch=batch,
            ):
                rebuild.check_checkpoint(
                    row, ledger_keys, published.pop(int(row["tree_size"]), None)
                )
            for size in sorted(published):
                rebuild.missing_checkpoint(size)
    finally:
        await conn.close()
    return rebuild
