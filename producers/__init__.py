"""Producer SDK: sign ledger events and publish them to the ingress topic.

>>> async with LedgerProducer("127.0.0.1:9092", "claw.ingress") as producer:
...     position = await producer.publish(key, "run.started", "job:42", body)
"""

from producers.sdk import LedgerProducer, Position, RawEvent

__all__ = ["LedgerProducer", "Position", "RawEvent"]
