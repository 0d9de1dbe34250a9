"""The SQL of sealed bundles and Trust Pulse (migration 0012, ADR 0019).

Reads take a connection with the jsonb codecs of
:func:`storage.projection_queries.open_connection` (the reader role is
enough); :func:`store_bundle_document` is the one write, an INSERT that never
replaces a row (the writer role has no UPDATE on ``bundle_documents``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import asyncpg

from storage.projection_queries import row_dict
from storage.tlog_store import leaf_chain_sql

__all__ = [
    "bundle_document",
    "bundles_for",
    "get_pulse",
    "log_rows_after",
    "pulses_for",
    "run_event_rows",
    "seal_candidates",
    "store_bundle_document",
]

#: a leaf's ``partition`` is its chain number (ledger.tlog.chain_number, ADR 0024)
_LEAF_COLUMNS = (
    f"e.position, {leaf_chain_sql('e.')} AS kafka_partition, e.ledger_seq,"
    " e.event_id::text AS event_id, e.envelope_sha256, e.chain_hash"
)


async def run_event_rows(
    conn: asyncpg.Connection, job_id: str, streams: Iterable[str]
) -> list[dict[str, Any]]:
    """A run's accepted events, in commit order: those of ``streams`` and the authorize
    decisions naming the job (whatever their stream); never the bundle events themselves."""
    rows = await conn.fetch(
        f"SELECT {_LEAF_COLUMNS}, e.event_type, e.stream, e.envelope_raw FROM events e"
        " WHERE (e.stream = ANY($1::text[])"
        "        OR (e.event_type IN ('call.authorized', 'call.denied')"
        "            AND e.payload->'body'->>'job_id' = $2))"
        "   AND e.event_type NOT IN ('bundle.sealed', 'pulse.published')"
        " ORDER BY e.position",
        sorted(streams),
        job_id,
    )
    return [dict(r) for r in rows]


async def log_rows_after(
    conn: asyncpg.Connection, included: Mapping[int, int]
) -> list[dict[str, Any]]:
    """The leaf columns of every event above ``included[partition]`` (its last
    ``ledger_seq`` already in the tree; 0 for none), in commit order."""
    partitions = sorted(included)
    rows = await conn.fetch(
        f"SELECT {_LEAF_COLUMNS} FROM events e"
        " LEFT JOIN unnest($1::int[], $2::bigint[]) AS inc (kafka_partition, ledger_seq)"
        f"   ON inc.kafka_partition = {leaf_chain_sql('e.')}"
        " WHERE e.ledger_seq > coalesce(inc.ledger_seq, 0)"
        " ORDER BY e.position",
        partitions,
        [included[p] for p in partitions],
    )
    return [dict(r) for r in rows]


async def seal_candidates(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """Runs to seal, each once per trigger not sealed yet: ``completed`` for a completed
    run, ``halted:<halt event id>`` for a running one an active halt covers."""
    rows = await conn.fetch(
        "WITH wanted AS ("
        "  SELECT job_id, 'completed' AS trigger FROM jobs WHERE status = 'completed'"
        "  UNION"
        "  SELECT j.job_id, 'halted:' || min(h.halted_event_id) FROM jobs j"
        "  JOIN halts h ON h.active"
        "   AND (h.target = '*' OR h.target = 'job:' || j.job_id OR h.target = 'sub:' || j.sub)"
        "  WHERE j.status = 'running' GROUP BY j.job_id"
        ")"
        " SELECT w.job_id, w.trigger FROM wanted w"
        " WHERE NOT EXISTS (SELECT 1 FROM bundles b"
        "                   WHERE b.job_id = w.job_id AND b.trigger = w.trigger)"
        " ORDER BY w.job_id, w.trigger"
    )
    return [dict(r) for r in rows]


async def store_bundle_document(
    conn: asyncpg.Connection, bundle_hash_b64u: str, job_id: str, raw: bytes
) -> bool:
    """Store a bundle's bytes under their hash; ``False`` when they were stored already."""
    status = await conn.execute(
        "INSERT INTO bundle_documents (bundle_hash_b64u, job_id, bundle) VALUES ($1, $2, $3)"
        " ON CONFLICT (bundle_hash_b64u) DO NOTHING",
        bundle_hash_b64u,
        job_id,
        raw,
    )
    return str(status).endswith(" 1")


async def bundles_for(conn: asyncpg.Connection, job_id: str) -> list[dict[str, Any]]:
    """The sealed bundles of a run, oldest first, with ``stored`` (the bytes are held)."""
    rows = await conn.fetch(
        "SELECT b.*, EXISTS (SELECT 1 FROM bundle_documents d"
        "                    WHERE d.bundle_hash_b64u = b.bundle_hash_b64u) AS stored"
        " FROM bundles b WHERE b.job_id = $1 ORDER BY b.sealed_at, b.sealed_event_id",
        job_id,
    )
    return [row_dict(r) for r in rows]


async def bundle_document(conn: asyncpg.Connection, bundle_hash_b64u: str) -> bytes | None:
    value = await conn.fetchval(
        "SELECT bundle FROM bundle_documents WHERE bundle_hash_b64u = $1", bundle_hash_b64u
    )
    return None if value is None else bytes(value)


async def get_pulse(conn: asyncpg.Connection, pulse_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow("SELECT * FROM pulse_records WHERE pulse_id = $1", pulse_id)
    return None if row is None else row_dict(row)


async def pulses_for(conn: asyncpg.Connection, job_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT * FROM pulse_records WHERE job_id = $1 ORDER BY published_at", job_id
    )
    return [row_dict(r) for r in rows]
