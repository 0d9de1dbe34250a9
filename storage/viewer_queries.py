"""The Trust Pulse viewer's reads: one run, the halt windows, one pulse record.

Every statement binds its inputs as parameters. Tables that a later migration
adds (sealed bundles, pulse records) are looked up with ``to_regclass`` first,
so the viewer answers "not sealed yet" on a ledger that has none instead of
failing.
"""

from __future__ import annotations

from typing import Any

import asyncpg

__all__ = [
    "DECISION_TYPES",
    "decisions_for_job",
    "halt_windows",
    "pulse_record",
    "run_view",
    "sealed_bundle",
]

#: The event types of an authorize decision (allowed, denied).
DECISION_TYPES = ("call.authorized", "call.denied")

_DECISIONS = (
    "SELECT position, event_id::text AS event_id, event_type, occurred_at,"
    " payload->'body' AS body FROM events"
    " WHERE event_type = ANY($1::text[]) AND {where} ORDER BY position"
)


def _decision(row: asyncpg.Record) -> dict[str, Any]:
    body = dict(row["body"] or {})
    action = body.get("action") or {}
    if action.get("kind") == "model":
        label = f"model {action.get('provider')}/{action.get('model')}"
    else:
        label = f"tool {action.get('tool')}"
    return {
        "position": row["position"],
        "event_id": row["event_id"],
        "allowed": row["event_type"] == "call.authorized",
        "occurred_at": row["occurred_at"],
        "action": label,
        "job_id": body.get("job_id"),
        "token_jti": body.get("token_jti"),
        "policy_hash_b64u": body.get("policy_hash_b64u"),
        "halt_target": body.get("halt_target"),
        "reason_code": body.get("reason_code"),
    }


async def decisions_for_job(conn: asyncpg.Connection, job_id: str) -> list[dict[str, Any]]:
    """The signed authorize decisions of one job, in ledger order."""
    rows = await conn.fetch(
        _DECISIONS.format(where="stream = $2"), list(DECISION_TYPES), f"job:{job_id}"
    )
    return [_decision(r) for r in rows]


async def _table_exists(conn: asyncpg.Connection, name: str) -> bool:
    return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name))


async def sealed_bundle(conn: asyncpg.Connection, job_id: str) -> dict[str, Any] | None:
    """The newest sealed bundle of a job, or None (none sealed, or no bundles table)."""
    from storage.bundle_queries import bundle_document, bundles_for

    if not await _table_exists(conn, "bundles"):
        return None
    sealed = await bundles_for(conn, job_id)
    if not sealed:
        return None
    newest = dict(sealed[-1])
    newest["bundle_raw"] = await bundle_document(conn, str(newest["bundle_hash_b64u"]))
    return newest


async def pulse_record(conn: asyncpg.Connection, pulse_id: str) -> dict[str, Any] | None:
    """One Trust Pulse record by its id (content hash), or None."""
    if not await _table_exists(conn, "pulse_records"):
        return None
    row = await conn.fetchrow("SELECT * FROM pulse_records WHERE pulse_id = $1", pulse_id)
    return dict(row) if row else None


async def run_view(conn: asyncpg.Connection, job_id: str) -> dict[str, Any] | None:
    """A job with its receipts, decisions and the halts that cover it; None when unknown."""
    job = await conn.fetchrow("SELECT * FROM jobs WHERE job_id = $1", job_id)
    if job is None:
        return None
    targets = ["*", f"job:{job_id}"] + ([f"sub:{job['sub']}"] if job["sub"] else [])
    halts = await conn.fetch(
        "SELECT * FROM halts WHERE target = ANY($1::text[]) ORDER BY halted_at", targets
    )
    receipts = await conn.fetch(
        "SELECT receipt_id, provider, model, gateway_id, event_hash_b64u"
        " FROM receipts WHERE job_id = $1 ORDER BY receipt_id",
        job_id,
    )
    return {
        "job": dict(job),
        "receipts": [dict(r) for r in receipts],
        "decisions": await decisions_for_job(conn, job_id),
        "halts": [dict(h) for h in halts],
        "bundle": await sealed_bundle(conn, job_id),
    }


def _scope_clause(target: str) -> tuple[str, list[Any]]:
    """The decisions a halt target covers, as a WHERE fragment from ``$3`` on."""
    if target == "*":
        return "TRUE", []
    kind, _, value = target.partition(":")
    if kind == "job":
        return "stream = $3", [f"job:{value}"]
    return (
        "payload->'body'->>'token_jti' IN (SELECT jti FROM tokens WHERE sub = $3)",
        [value],
    )


async def halt_windows(conn: asyncpg.Connection, *, limit: int = 20) -> list[dict[str, Any]]:
    """Each halt with what the kill switch changed: the last call allowed before it,
    the calls blocked after it, and the policy hashes in force on either side."""
    halts = await conn.fetch(
        "SELECT h.*, e.position AS halted_position FROM halts h"
        # event_keys: the event_id index of the partitioned events (migration 0017)
        " LEFT JOIN event_keys e ON e.event_id = h.halted_event_id::uuid"
        " ORDER BY h.halted_at DESC LIMIT $1",
        limit,
    )
    windows = []
    for halt in halts:
        where, args = _scope_clause(halt["target"])
        position = halt["halted_position"] or 0
        before = await conn.fetch(
            _DECISIONS.format(where=f"position < $2 AND {where}") + " DESC LIMIT 1",
            ["call.authorized"],
            position,
            *args,
        )
        after = await conn.fetch(
            _DECISIONS.format(where=f"position > $2 AND {where}") + " LIMIT 200",
            ["call.denied"],
            position,
            *args,
        )
        last_allowed = _decision(before[0]) if before else None
        blocked = [_decision(r) for r in after]
        windows.append(
            {
                "halt": dict(halt),
                "last_allowed": last_allowed,
                "blocked": blocked,
                "policy_before": last_allowed["policy_hash_b64u"] if last_allowed else None,
                "policy_after": dict(halt).get("policy_hash_b64u"),
            }
        )
    return windows
