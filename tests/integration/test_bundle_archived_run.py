"""Sealing a run whose manifest or WPC event an archive cut detached (ADR 0021) fails
closed with BUNDLE_EVENTS_ARCHIVED, naming the event, its position and the cut,
instead of a bundle that leaves the event out (or a JOB_UNKNOWN that says it never was)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

import storage.projection_queries as projection_queries
from claw_ledger.bundling import _refuse_archived_run
from ledger.errors import BundleError, ReasonCode
from storage.projection_queries import open_connection

pytestmark = pytest.mark.integration


async def _record_key(conn: Any, position: int) -> str:
    """An ``event_keys`` row (every recorded id keeps one, archived or not)."""
    event_id = str(uuid.uuid4())
    await conn.execute(
        "INSERT INTO event_keys (event_id, payload_hash_b64u, kafka_topic, kafka_partition,"
        " kafka_offset, ledger_seq, position) VALUES ($1, 'h', 't.ingress', 0, $2, $2, $2)",
        uuid.UUID(event_id),
        position,
    )
    return event_id


async def test_a_run_whose_manifest_or_policy_was_archived_is_refused(
    fresh_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = await open_connection(fresh_database)
    try:
        approved, published = await _record_key(conn, 5), await _record_key(conn, 3)
        job = {"job_id": "job-old", "approved_event_id": approved, "wpc_hash_b64u": "wpc-old"}
        policies: dict[str, dict[str, Any]] = {}

        async def get_policy(_conn: Any, policy_hash: str) -> dict[str, Any] | None:
            return policies.get(policy_hash)

        monkeypatch.setattr(projection_queries, "get_policy", get_policy)
        # no cut yet: an id missing from the run's rows is not an archived one
        await _refuse_archived_run(conn, job, set())

        partition = await conn.fetchval("SELECT name FROM event_partitions ORDER BY name LIMIT 1")
        await conn.execute(
            "INSERT INTO archive_boundaries (before_position, partition_name, events,"
            " state_snapshot) VALUES (11, $1, 10, '{}')",
            partition,
        )
        with pytest.raises(BundleError) as refused:
            await _refuse_archived_run(conn, job, set())
        assert refused.value.code is ReasonCode.BUNDLE_EVENTS_ARCHIVED
        assert "run.manifest_approved" in str(refused.value)
        assert f"event {approved}, position 5" in str(refused.value)
        assert "positions below 11 were detached" in str(refused.value)

        # the manifest still in events, the WPC's policy.published detached
        policies["wpc-old"] = {"published_event_id": published}
        with pytest.raises(BundleError) as refused:
            await _refuse_archived_run(conn, job, {approved})
        assert "policy.published" in str(refused.value)
        assert "position 3" in str(refused.value)

        # both in events (the run is whole after the cut), or recorded after it
        await _refuse_archived_run(conn, job, {approved, published})
        job["approved_event_id"] = await _record_key(conn, 12)
        await _refuse_archived_run(conn, job, {published})
    finally:
        await conn.close()
