"""Copies to the verified and quarantine topics survive a processor that stops
between its commit and the copy: the next owner of the partition sends them
from the ledger tables, once (at least once overall; ADR 0008). The default
(aiokafka) engine; the faust engine's copies stay best effort."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from consumers.processor import IngressRecord, VerifyingProcessor
from ledger.roles import Role
from storage import postgres as store
from tests.fixtures_ledger import LedgerHarness, start_ledger

pytestmark = pytest.mark.integration


async def _copies(
    ledger: LedgerHarness, marker: bytes, expected: dict[str, int]
) -> dict[str, list[Any]]:
    """Every message holding ``marker`` on the verified and quarantine topics.

    Reads until ``expected`` copies per topic have arrived (a loaded machine can
    take a while), then a little longer so that an extra copy would show too.
    """
    consumer = ledger.outcome_consumer()
    found: dict[str, list[Any]] = {ledger.topics.verified: [], ledger.topics.quarantine: []}
    await consumer.start()
    try:
        deadline = time.monotonic() + 60
        settled_at: float | None = None
        while time.monotonic() < (settled_at or deadline):
            for tp, messages in (await consumer.getmany(timeout_ms=500)).items():
                found[tp.topic] += [m for m in messages if marker in (m.value or b"")]
            if settled_at is None and all(
                len(found[topic]) >= count for topic, count in expected.items()
            ):
                settled_at = time.monotonic() + 3
    finally:
        await consumer.stop()
    return found


async def _commit_without_copying(ledger: LedgerHarness, marker: str) -> None:
    """What a processor does up to its commit, with the processor process down."""
    operator = ledger.keys[Role.OPERATOR]
    stream = f"halt:{marker}"
    async with ledger.producer() as producer:
        envelope = producer.sign(
            operator, "agent.halted", stream, {"target": marker, "reason": "x"}
        )
        good = await (await producer.send_envelope(envelope))
        bogus = b'{"not": "an envelope", "marker": "' + marker.encode() + b'"}'
        # beside the halt, on the control lane's topic (bytes of no type go to
        # ingress unless a topic is named)
        bad = await (await producer.send_raw(bogus, stream, topic=good.topic))
    assert good.topic == ledger.topics.control
    assert (good.partition, good.offset + 1) == (bad.partition, bad.offset)
    records = [
        IngressRecord(good.partition, good.offset, envelope.to_bytes(), stream.encode()),
        IngressRecord(bad.partition, bad.offset, bogus, stream.encode()),
    ]
    assert ledger.settings.database_url
    pool = await asyncpg.create_pool(ledger.settings.database_url, init=store.init_connection)
    try:
        processor = VerifyingProcessor(
            store.PostgresLedgerStore(pool),
            group=ledger.processor.group,
            topic=ledger.topics.control,
            trust_root=None,
        )
        await processor.start()
        report = await processor.process(records)
    finally:
        await pool.close()
    assert len(report.accepted) == 1 and len(report.quarantined) == 1, report


async def _probe(ledger: LedgerHarness, target: str) -> None:
    """A halt through the running processor, committed."""
    await ledger.halt(target, "probe")


async def test_outcomes_committed_but_not_copied_are_copied_by_the_next_owner_once(
    ledger_servers: Any, ledger_settings: Any, tmp_path: Path
) -> None:
    ledger = await start_ledger(ledger_servers, ledger_settings, tmp_path)
    try:
        ledger.processor.stop()
        marker = f"job:fwd-{uuid.uuid4()}"
        await _commit_without_copying(ledger, marker)

        ledger.processor.start()
        # a later event through the restarted processor: by its verdict the
        # partitions have been assigned and the missing copies sent
        await _probe(ledger, f"{marker}-probe")
        expected = {ledger.topics.verified: 2, ledger.topics.quarantine: 1}
        found = await _copies(ledger, marker.encode(), expected)
        assert len(found[ledger.topics.verified]) == 2  # the event and the probe
        [refused] = found[ledger.topics.quarantine]
        assert dict(refused.headers)["reason_code"] == b"MALFORMED_ENVELOPE"

        # the copies are recorded: another restart sends nothing again
        ledger.processor.stop()
        ledger.processor.start()
        await _probe(ledger, f"{marker}-again")
        await asyncio.sleep(1)
        expected = {ledger.topics.verified: 3, ledger.topics.quarantine: 1}
        found = await _copies(ledger, marker.encode(), expected)
        assert len(found[ledger.topics.verified]) == 3
        assert len(found[ledger.topics.quarantine]) == 1
    finally:
        print(ledger.processor.log_tail())
        ledger.processor.stop()


@pytest.mark.parametrize(("copies_tracked", "expected_mark"), [(True, 5), (False, 7)])
async def test_a_commit_leaves_its_copies_to_track_unless_the_engine_does_not(
    fresh_database: str, copies_tracked: bool, expected_mark: int
) -> None:
    # the faust engine's copies are best effort: its commits count them as
    # made, so a later switch to the default engine re-sends nothing old
    pool = await asyncpg.create_pool(fresh_database, init=store.init_connection)
    try:
        processor = VerifyingProcessor(
            store.PostgresLedgerStore(pool),
            group="g",
            topic="ingress",
            trust_root=None,
            copies_tracked=copies_tracked,
        )
        await processor.start()
        report = await processor.process(
            [IngressRecord(0, 5, b"not json"), IngressRecord(0, 6, b"{}")]
        )
        assert len(report.quarantined) == 2
        async with pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT next_offset, forwarded_offset FROM consumer_positions"
                " WHERE consumer_group = 'g'"
            )
            mark, outcomes = await store.unforwarded_outcomes(conn, "g", "ingress", 0)
    finally:
        await pool.close()
    assert (row["next_offset"], row["forwarded_offset"]) == (7, expected_mark)
    assert mark == 7
    assert [o.offset for o in outcomes] == ([5, 6] if copies_tracked else [])
