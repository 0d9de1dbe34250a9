"""Publishing to a ledger whose topics were never created says how to create them.

Automatic topic creation is off on the ledger's brokers, so a wrong
``CLAW_LEDGER_TOPIC_PREFIX`` or a Kafka where ``services topics`` never ran
must not end in a client traceback.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from ledger.crypto import KeyPair
from ledger.errors import PublishError
from ledger.topics import topic_names
from producers import LedgerProducer, NewEvent

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("many", [False, True], ids=["publish", "publish_many"])
async def test_a_topic_that_does_not_exist_is_named_with_the_fix(
    kafka_bootstrap: str, many: bool, caplog: pytest.LogCaptureFixture
) -> None:
    topics = topic_names(f"never-created-{uuid.uuid4().hex[:8]}")
    operator = KeyPair.generate("operator")
    body: dict[str, Any] = {"target": "job:nowhere", "reason": "drill"}
    async with LedgerProducer(kafka_bootstrap, topics, request_timeout_ms=2_000) as producer:
        with pytest.raises(PublishError) as raised:
            if many:
                await producer.publish_many(
                    operator, [NewEvent("agent.halted", "halt:job:nowhere", body)]
                )
            else:
                await producer.publish(operator, "agent.halted", "halt:job:nowhere", body)
    message = str(raised.value)
    assert f"topic {topics.control!r} does not exist on Kafka at {kafka_bootstrap}" in message
    assert "`claw-ledger services topics`" in message
    # said once, by the error: not also by the client at each of its metadata retries
    retries = [r for r in caplog.records if "not found in cluster metadata" in r.getMessage()]
    assert retries == [], len(retries)
