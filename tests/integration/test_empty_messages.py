"""A Kafka record without a value (a tombstone) or with an empty one is refused
and kept, under either engine; the processor goes on with the next record,
and a replay of the topics counts it as refused too.

Kafka lets any client write such a record to the ledger's topics, so it is
bad input like any other: quarantined as ``MALFORMED_JSON``, never a batch
that fails on every restart.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from ledger.roles import Role
from tests.fixtures_ledger import run_cli, start_ledger

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("engine", ["kafka", "faust"])
@pytest.mark.parametrize("lane", ["ingress", "control"])
async def test_a_record_without_a_value_is_quarantined_and_the_lane_goes_on(
    ledger_servers: Any, ledger_settings: Any, tmp_path: Path, engine: str, lane: str
) -> None:
    ledger = await start_ledger(ledger_servers, ledger_settings, tmp_path, engine=engine)
    try:
        async with ledger.connection() as conn:
            before = await conn.fetchval("SELECT count(*) FROM quarantine")
        producer = AIOKafkaProducer(bootstrap_servers=ledger.settings.kafka_bootstrap)
        await producer.start()
        try:
            topic = ledger.topics.for_lane(lane)
            await producer.send_and_wait(topic, value=None, key=b"tombstone")
            await producer.send_and_wait(topic, value=b"", key=b"empty")
        finally:
            await producer.stop()

        rows = (await ledger.wait_quarantine_count(before + 2))[before:]
        assert [(r["reason_code"], bytes(r["raw"])) for r in rows] == [
            ("MALFORMED_JSON", b""),
            ("MALFORMED_JSON", b""),
        ]
        # the same lane still commits what follows (a halt travels the control lane,
        # a key registration the ingress lane)
        await ledger.halt("job:after-a-tombstone", "the lane goes on")
        await ledger.register_key(Role.POLICY_ADMIN)
        assert ledger.processor.alive()
        if engine == "kafka":
            # a replay of the topics counts them as the processor did, none dropped
            replayed = run_cli(ledger.env, "replay", "--source", "kafka", "--json")
            summary = json.loads(replayed.stdout)
            assert replayed.returncode == 0, summary
            assert summary["skipped"].get("MALFORMED_JSON") == 2, summary["skipped"]
    finally:
        ledger.processor.stop()
