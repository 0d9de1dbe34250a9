"""Producer SDK: sign ledger events, publish them to the ingress topic, await the verdict.

Everything a publishing service needs is importable from here::

    from producers import LedgerProducer, NewEvent, await_verdict, load_key, topic_names

>>> async with LedgerProducer("127.0.0.1:9092", topic_names("claw").ingress) as producer:
...     position = await producer.publish(key, "run.started", "job:42", body)
...     positions = await producer.publish_many(key, [NewEvent("run.started", "job:43", body)])
>>> verdict = await await_verdict(database_url, position)

Names load on first use, so importing this package stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ledger.lazy import lazy_exports

if TYPE_CHECKING:
    from ledger.crypto import KeyPair, load_key
    from ledger.topics import Topics, topic_names
    from producers.outcome import Committed, PublishOutcome, Quarantined, TimedOut, Verdict
    from producers.publish import await_verdict
    from producers.sdk import LedgerProducer, NewEvent, Position, RawEvent, sign_many

#: public name -> the module that defines it
_EXPORTS = {
    "Committed": "producers.outcome",
    "KeyPair": "ledger.crypto",
    "LedgerProducer": "producers.sdk",
    "NewEvent": "producers.sdk",
    "Position": "producers.sdk",
    "PublishOutcome": "producers.outcome",
    "Quarantined": "producers.outcome",
    "RawEvent": "producers.sdk",
    "TimedOut": "producers.outcome",
    "Topics": "ledger.topics",
    "Verdict": "producers.outcome",
    "await_verdict": "producers.publish",
    "load_key": "ledger.crypto",
    "sign_many": "producers.sdk",
    "topic_names": "ledger.topics",
}

__all__ = [
    "Committed",
    "KeyPair",
    "LedgerProducer",
    "NewEvent",
    "Position",
    "PublishOutcome",
    "Quarantined",
    "RawEvent",
    "TimedOut",
    "Topics",
    "Verdict",
    "await_verdict",
    "load_key",
    "sign_many",
    "topic_names",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
