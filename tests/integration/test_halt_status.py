"""``halt_status``: the ``call.denied`` decisions counted for each halt are those in its
scope, recorded after the halt and before its lift (the kill switch's negative proof)."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import asyncpg
import pytest

from storage.projection_queries import halt_status, open_connection

pytestmark = pytest.mark.integration

_OFFSETS = itertools.count()


async def _event(conn: asyncpg.Connection, event_type: str, body: dict[str, Any]) -> str:
    """An events row with only what the query reads made meaningful."""
    event_id = str(uuid.uuid4())
    offset = next(_OFFSETS)
    payload = {"event_type": event_type, "event_id": event_id, "body": body}
    await conn.execute(
        "INSERT INTO events (event_id, event_type, stream, producer, occurred_at,"
        " payload_hash_b64u, envelope_sha256, envelope_raw, payload, kafka_topic,"
        " kafka_partition, kafka_offset, ledger_seq, chain_hash)"
        " VALUES ($1::uuid, $2, 's:x', 'p', now(), 'h', 'e', ''::bytea, $3::jsonb, 't', 0,"
        " $4::bigint, $4::bigint + 1, 'c')",
        event_id,
        event_type,
        payload,  # the connection's codec encodes jsonb
        offset,
    )
    return event_id


async def _halt(conn: asyncpg.Connection, target: str, halted: str, resumed: str | None) -> None:
    await conn.execute(
        "INSERT INTO halts (target, active, reason, halted_by, halted_at, halted_event_id,"
        " resumed_event_id, deny_tools, deny_model_egress, revoked_jtis)"
        " VALUES ($1, $2, 'r', 'did:key:op', '2026-11-30T00:00:00Z', $3, $4, true, true, '[]')",
        target,
        resumed is None,
        halted,
        resumed,
    )


def _denied(job: str, jti: str | None = None, halt: str | None = None) -> dict[str, Any]:
    return {"job_id": job, "token_jti": jti, "halt_target": halt, "reason_code": "AGENT_HALTED"}


async def test_calls_denied_are_counted_per_scope_between_halt_and_lift(
    fresh_database: str,
) -> None:
    conn = await open_connection(fresh_database)
    try:
        await conn.execute(
            "INSERT INTO tokens (jti, status, sub, aud, scope, iat, exp, kid, issuer_did,"
            " token_scope_hash_b64u, token_sha256_b64u, issued_event_id, issued_at)"
            " VALUES ('t-s', 'revoked', 'agent:s', '\"a\"', '[]', 0, 1, 'k', 'i', 'h', 'h',"
            " 'e', 'x')"
        )
        await _event(conn, "call.denied", _denied("job-j"))  # before every halt
        halt_j = await _event(conn, "agent.halted", {"target": "job:job-j"})
        halt_s = await _event(conn, "agent.halted", {"target": "sub:agent:s"})
        await _event(conn, "call.denied", _denied("job-j"))
        await _event(conn, "call.denied", _denied("job-k", jti="t-s"))
        await _event(conn, "call.denied", _denied("job-m", halt="sub:agent:s"))
        await _event(conn, "call.authorized", _denied("job-j"))
        lift_s = await _event(conn, "agent.resumed", {"target": "sub:agent:s"})
        await _event(conn, "call.denied", _denied("job-k", jti="t-s"))  # after the lift
        halt_all = await _event(conn, "agent.halted", {"target": "*"})
        await _event(conn, "call.denied", _denied("job-z"))
        await _halt(conn, "job:job-j", halt_j, None)
        await _halt(conn, "sub:agent:s", halt_s, lift_s)
        await _halt(conn, "*", halt_all, None)

        active = await halt_status(conn)
        every = await halt_status(conn, include_lifted=True)
        one = await halt_status(conn, target="job:job-j")
    finally:
        await conn.close()
    assert {row["target"] for row in active} == {"job:job-j", "*"}
    counts = {row["target"]: row["calls_denied_since"] for row in every}
    assert counts == {"job:job-j": 1, "sub:agent:s": 2, "*": 1}
    assert [row["target"] for row in one] == ["job:job-j"]
    assert all(row["halted_position"] is not None for row in every)
