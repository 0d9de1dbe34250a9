"""Read queries over the claw primitive projections (``migrations/0002``).

Rows come back as plain dicts equal to what the rules in
the rules in :mod:`ledger.types` wrote (jsonb decoded). Every function takes an
open asyncpg connection; :func:`open_connection` gives one with the jsonb
codecs set. Callers resolve the database URL (the application knows where the
ledger is; storage does not read settings).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg

from ledger.canonical import parse_json_strict
from ledger.instants import respelled

__all__ = [
    "active_shadows",
    "connection",
    "get_halt",
    "get_job",
    "get_key",
    "get_policy",
    "get_token",
    "halt_document",
    "halt_status",
    "list_jobs",
    "list_policies",
    "open_connection",
    "policy_document",
    "query_sync",
    "receipts_for",
    "row_dict",
    "tokens_for",
]


async def open_connection(database_url: str) -> asyncpg.Connection:
    """A connection to the ledger database, jsonb decoded to Python values."""
    from storage import connect

    conn = await connect(database_url)
    for name in ("jsonb", "json"):
        await conn.set_type_codec(
            name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog", format="text"
        )
    return conn


@asynccontextmanager
async def connection(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """:func:`open_connection` for one ``async with`` block, closed on the way out."""
    conn = await open_connection(database_url)
    try:
        yield conn
    finally:
        await conn.close()


T = TypeVar("T")


def query_sync(
    database_url: str, query: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any
) -> T:
    """Run one of the queries below on a fresh connection, blocking (for the CLI)."""

    async def run() -> T:
        async with connection(database_url) as conn:
            return await query(conn, *args, **kwargs)

    return asyncio.run(run())


def row_dict(row: asyncpg.Record) -> dict[str, Any]:
    """A projection row as users see it: without the processors' bookkeeping
    column ``control_version`` (migration 0004), and its times (``*_at``, kept as
    the signed events' text, to the millisecond) spelled as every other answer
    spells an instant (:func:`ledger.instants.respelled`)."""
    return {
        k: respelled(v) if type(v) is str and k.endswith("_at") else v
        for k, v in row.items()
        if k != "control_version"
    }


def _one(row: asyncpg.Record | None) -> dict[str, Any] | None:
    return None if row is None else row_dict(row)


#: what the status-filtered listings show of a table: its columns, and their order
_LISTINGS = {
    "policies": (
        "policy_hash_b64u, status, issuer, publisher_did, halt_mode, published_at,"
        " superseded_by, revoked_reason",
        "published_at, policy_hash_b64u",
    ),
    "jobs": (
        "job_id, status, wpc_hash_b64u, cst_jti, receipt_count, outputs_match,"
        " approved_at, started_at, completed_at",
        "approved_at, job_id",
    ),
}


async def _list_by_status(
    conn: asyncpg.Connection, table: str, status: str | None
) -> list[dict[str, Any]]:
    """The rows of ``table`` (all, or those with ``status``), as ``_LISTINGS`` shows them."""
    columns, order = _LISTINGS[table]
    rows = await conn.fetch(
        f"SELECT {columns} FROM {table} WHERE $1::text IS NULL OR status = $1 ORDER BY {order}",
        status,
    )
    return [row_dict(r) for r in rows]


async def get_policy(conn: asyncpg.Connection, policy_hash: str) -> dict[str, Any] | None:
    """The registry row of a WPC (any status), or ``None``."""
    return _one(
        await conn.fetchrow("SELECT * FROM policies WHERE policy_hash_b64u = $1", policy_hash)
    )


async def list_policies(
    conn: asyncpg.Connection, *, status: str | None = None
) -> list[dict[str, Any]]:
    return await _list_by_status(conn, "policies", status)


async def get_token(conn: asyncpg.Connection, jti: str) -> dict[str, Any] | None:
    """What the ledger knows of token ``jti`` (never the token itself), or ``None``."""
    return _one(await conn.fetchrow("SELECT * FROM tokens WHERE jti = $1", jti))


async def tokens_for(
    conn: asyncpg.Connection,
    *,
    job: str | None = None,
    sub: str | None = None,
    active_only: bool = True,
) -> list[dict[str, Any]]:
    """Tokens bound to ``job`` (``mission_id``) and/or issued to ``sub``."""
    if job is None and sub is None:
        raise ValueError("give job or sub")
    rows = await conn.fetch(
        "SELECT * FROM tokens WHERE ($1::text IS NULL OR mission_id = $1)"
        " AND ($2::text IS NULL OR sub = $2) AND (NOT $3 OR status = 'active')"
        " ORDER BY issued_at, jti",
        job,
        sub,
        active_only,
    )
    return [row_dict(r) for r in rows]


async def get_job(conn: asyncpg.Connection, job_id: str) -> dict[str, Any] | None:
    """The job row: URM, approvals, lifecycle, event chain, outputs and flags."""
    return _one(await conn.fetchrow("SELECT * FROM jobs WHERE job_id = $1", job_id))


async def list_jobs(conn: asyncpg.Connection, *, status: str | None = None) -> list[dict[str, Any]]:
    return await _list_by_status(conn, "jobs", status)


async def receipts_for(conn: asyncpg.Connection, job_id: str) -> list[dict[str, Any]]:
    """The recorded receipts of a job, oldest first (``receipt_envelope_raw`` is exact)."""
    rows = await conn.fetch(
        "SELECT * FROM receipts WHERE job_id = $1 ORDER BY recorded_at, receipt_id", job_id
    )
    return [row_dict(r) for r in rows]


async def get_halt(conn: asyncpg.Connection, target: str) -> dict[str, Any] | None:
    return _one(await conn.fetchrow("SELECT * FROM halts WHERE target = $1", target))


#: ``call.denied`` events (the authorisation layer's decisions) in a halt's scope,
#: committed after its ``agent.halted`` and, once lifted, before its ``agent.resumed``
_CALLS_DENIED_SINCE = """
SELECT count(*) FROM events e
WHERE e.event_type = 'call.denied'
  AND (
    -- denied by this halt as soon as it was seen, before the ledger committed it
    -- (ADR 0025): recorded before the halt itself, and named by its event id
    e.payload->'body'->>'seen_event_id' = h.halted_event_id
    OR (
      e.position > hp.position
      AND (rp.position IS NULL OR e.position < rp.position)
      AND (h.target = '*'
           OR e.payload->'body'->>'halt_target' = h.target
           OR (h.target LIKE 'job:%' AND e.payload->'body'->>'job_id' = substr(h.target, 5))
           OR (h.target LIKE 'sub:%' AND (
                 e.payload->'body'->>'token_jti' IN
                     (SELECT t.jti FROM tokens t WHERE t.sub = substr(h.target, 5))
                 OR e.payload->'body'->>'job_id' IN
                     (SELECT j.job_id FROM jobs j WHERE j.sub = substr(h.target, 5)))))))
"""


async def halt_status(
    conn: asyncpg.Connection, *, include_lifted: bool = False, target: str | None = None
) -> list[dict[str, Any]]:
    """The halts (active only unless ``include_lifted``), each with the name of
    the key that halted it (``halted_by_name``), its ledger position
    (``halted_position``) and ``calls_denied_since``: the ``call.denied``
    events in its scope recorded after it (and before its lift), and those that
    denied a call on it when it was seen, before it was committed."""
    rows = await conn.fetch(
        "SELECT h.*, k.name AS halted_by_name, hp.position AS halted_position,"
        f" ({_CALLS_DENIED_SINCE}) AS calls_denied_since"
        " FROM halts h"
        " LEFT JOIN keys k ON k.did = h.halted_by"
        # event_keys: the event_id index of the partitioned events (migration 0017)
        " LEFT JOIN event_keys hp ON hp.event_id = h.halted_event_id::uuid"
        " LEFT JOIN event_keys rp ON rp.event_id = h.resumed_event_id::uuid"
        " WHERE ($1 OR h.active) AND ($2::text IS NULL OR h.target = $2)"
        " ORDER BY h.halted_at, h.target",
        include_lifted,
        target,
    )
    return [row_dict(r) for r in rows]


def policy_document(row: dict[str, Any]) -> dict[str, Any]:
    """A registry row as ``wpc get --json`` and ``GET /v1/policies/{hash}`` give it:
    the exact signed envelope as text (``wpc_envelope_raw``) and parsed in its own
    key order (``envelope``), never the jsonb copy, whose key order is Postgres's."""
    document = {k: v for k, v in row.items() if k != "wpc_envelope"}
    document["envelope"] = parse_json_strict(str(row["wpc_envelope_raw"]).encode("utf-8"))
    return document


def halt_document(row: dict[str, Any]) -> dict[str, Any]:
    """A :func:`halt_status` row as ``halts --json`` and ``GET /v1/halts`` give it:
    scope, since, by whom, why, what it denies, the policy in force, the tokens it
    revoked and the calls denied since."""
    revoked = list(row.get("revoked_jtis") or [])
    return {
        "target": row["target"],
        "active": row["active"],
        "since": row["halted_at"],
        "halted_by": row["halted_by"],
        "halted_by_name": row.get("halted_by_name"),
        "reason": row["reason"],
        "deny_tools": row.get("deny_tools", True),
        "deny_model_egress": row.get("deny_model_egress", True),
        "policy_hash_b64u": row.get("policy_hash_b64u"),
        "tokens_revoked": len(revoked),
        "revoked_jtis": revoked,
        "calls_denied_since": int(row.get("calls_denied_since") or 0),
        "halted_event_id": row["halted_event_id"],
        "halted_position": row.get("halted_position"),
        "resumed_at": row.get("resumed_at"),
        "resumed_by": row.get("resumed_by"),
        "resumed_reason": row.get("resumed_reason"),
        "resume_policy_hash_b64u": row.get("resume_policy_hash_b64u"),
    }


async def active_shadows(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT * FROM shadows WHERE active ORDER BY shadowed_at, scope")
    return [row_dict(r) for r in rows]


async def get_key(conn: asyncpg.Connection, did: str) -> dict[str, Any] | None:
    """The key registry row of ``did`` (``roles`` is a list), or ``None``."""
    return _one(await conn.fetchrow("SELECT * FROM keys WHERE did = $1", did))
