"""Record batches compressed by another client are read and verified.

Services publish with whatever Kafka client they run, and Java clients often
compress with lz4, snappy or zstd. A codec the processor could not read would
be a fetch error at the same offset on every restart: the partition, and
everything behind it, stopped. Each codec here carries one event on each lane
(a key registration on ingress, a halt on control) from a plain Kafka
producer, and the ledger commits both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from ledger.crypto import KeyPair
from ledger.roles import Role
from ledger.types import REGISTRY
from tests.fixtures_ledger import start_ledger

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("engine", "codec"),
    [*(("kafka", codec) for codec in ("gzip", "snappy", "lz4", "zstd")), ("faust", "zstd")],
)
async def test_events_in_compressed_batches_are_committed(
    ledger_servers: Any, ledger_settings: Any, tmp_path: Path, engine: str, codec: str
) -> None:
    ledger = await start_ledger(ledger_servers, ledger_settings, tmp_path, engine=engine)
    try:
        newcomer = KeyPair.generate("newcomer")
        events: list[tuple[KeyPair, str, str, dict[str, Any]]] = [
            (
                ledger.admin,
                "key.registered",
                f"key:{newcomer.did}",
                {"did": newcomer.did, "name": "newcomer", "roles": [Role.OPERATOR.value]},
            ),
            (
                ledger.keys[Role.OPERATOR],
                "agent.halted",
                f"halt:job:{codec}",
                {"target": f"job:{codec}", "reason": f"sent {codec}-compressed"},
            ),
        ]
        lanes = {REGISTRY[event_type].lane for _, event_type, _, _ in events}
        assert lanes == {"ingress", "control"}, "the two events should travel both lanes"
        async with ledger.producer() as signer:
            signed = [signer.sign(key, kind, stream, body) for key, kind, stream, body in events]
        producer = AIOKafkaProducer(
            bootstrap_servers=ledger.settings.kafka_bootstrap, compression_type=codec
        )
        await producer.start()
        try:
            for envelope, (_, event_type, stream, _) in zip(signed, events, strict=True):
                topic = ledger.topics.for_lane(REGISTRY[event_type].lane)
                await producer.send_and_wait(topic, envelope.to_bytes(), key=stream.encode())
        finally:
            await producer.stop()

        for envelope in signed:
            verdict = await ledger.verdict(envelope.payload["event_id"])
            assert verdict["status"] == "committed", verdict
        assert ledger.processor.alive()
    finally:
        ledger.processor.stop()
