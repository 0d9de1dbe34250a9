"""What a verified replay (:mod:`ledger.replay`) takes and gives: the stored
events it folds, the steps and the break it reports, and the memories of the
event ids it has seen (the duplicate check)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Protocol

from ledger.errors import ReasonCode
from ledger.state import ProjectionRow
from ledger.verify import Rejected, Verified

__all__ = [
    "AllEventIds",
    "EventIds",
    "RecentEventIds",
    "ReplayBreak",
    "ReplayStep",
    "StoredEvent",
    "projection_key",
]


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One event as a source holds it. Only ``raw`` is required: without the
    stored chain fields (a topic record) the links are computed, not checked."""

    raw: bytes
    partition: int = 0
    offset: int | None = None
    ledger_seq: int | None = None
    prev_chain_hash: str | None = None
    chain_hash: str | None = None
    #: when the source recorded it (ledger ``recorded_at``, Kafka timestamp)
    recorded_at: datetime | None = None
    #: the ledger ``position``, for naming a break
    position: int | None = None
    #: the ``event_id`` column stored beside the envelope (checked against it)
    event_id: str | None = None
    #: the lane's topic (ADR 0024): each (topic, partition) is a chain of its own;
    #: events fed without one share the chains of :attr:`ledger.replay.Replay.positions`
    topic: str = ""


@dataclass(frozen=True, slots=True)
class ReplayBreak:
    """Where and why the replay stopped: the first event that cannot be trusted."""

    partition: int
    ledger_seq: int | None
    offset: int | None
    position: int | None
    event_id: str | None
    code: ReasonCode
    detail: str
    #: the lane's topic of the partition (empty when the source did not say)
    topic: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "code": self.code.value}

    def __str__(self) -> str:
        where = (
            f"partition {self.topic}/{self.partition}"
            if self.topic
            else f"partition {self.partition}"
        )
        if self.ledger_seq is not None:
            where += f" seq {self.ledger_seq}"
        if self.offset is not None:
            where += f" offset {self.offset}"
        if self.position is not None:
            where += f" position {self.position}"
        return f"{where} event {self.event_id or '?'}: {self.code.value}: {self.detail}"


@dataclass(frozen=True, slots=True)
class ReplayStep:
    """What one event did: accepted (``verified`` set, ``refused`` None), a
    duplicate, or refused (skipped on a topic replay)."""

    stored: StoredEvent
    verified: Verified | None
    refused: Rejected | None = None
    duplicate: bool = False


def projection_key(row: ProjectionRow) -> tuple[str, Any]:
    return row.table, row.values[row.key_column]


class EventIds(Protocol):
    """The payload hash recorded under each event id seen so far: what the
    duplicate check (step 4) asks. Implementations choose what to remember."""

    def get(self, event_id: str) -> str | None: ...

    def add(self, event_id: str, payload_hash: str) -> None: ...


class AllEventIds(dict[str, str]):
    """Every id, in memory: exact, and one entry per accepted event."""

    def add(self, event_id: str, payload_hash: str) -> None:
        self[event_id] = payload_hash


class RecentEventIds:
    """The last ``capacity`` ids only: memory stays bounded, and a repeat
    further back goes unseen. Only for a source that cannot repeat an id (the
    ledger: ``events.event_id`` is UNIQUE), where the window is a second check."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, str] = OrderedDict()

    def get(self, event_id: str) -> str | None:
        return self._ids.get(event_id)

    def add(self, event_id: str, payload_hash: str) -> None:
        self._ids[event_id] = payload_hash
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
