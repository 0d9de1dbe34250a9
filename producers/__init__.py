"""Producer SDK: sign ledger events and publish them to the ingress topic.

>>> async with LedgerProducer("127.0.0.1:9092", "claw.ingress") as producer:
...     position = await producer.publish(key, "run.started", "job:42", body)
...     positions = await producer.publish_many(key, [NewEvent("run.started", "job:43", body)])
"""

from producers.sdk import LedgerProducer, NewEvent, Position, RawEvent, sign_many

__all__ = ["LedgerProducer", "NewEvent", "Position", "RawEvent", "sign_many"]
