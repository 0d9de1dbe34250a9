"""What became of a published event: the ledger's verdict, as typed values.

A :class:`PublishOutcome` is where Kafka stored the event plus, when the
publisher waited, one :data:`Verdict`: :class:`Committed` (its ledger
position), :class:`Quarantined` (reason code and detail) or :class:`TimedOut`
(no verdict in time). :meth:`PublishOutcome.check` is the one place that turns
an outcome into the matching :mod:`ledger.errors` error.

No I/O here, so that callers can hold and test outcomes without a broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ledger.canonical import field_values
from ledger.errors import LedgerError, ReasonCode, RejectedError, ServiceError

if TYPE_CHECKING:
    from producers.sdk import Position

__all__ = ["Committed", "PublishOutcome", "Quarantined", "TimedOut", "Verdict"]


@dataclass(frozen=True)
class Committed:
    """The processor committed the event at ``position`` of the ledger."""

    status: ClassVar[str] = "committed"
    position: int
    ledger_seq: int
    chain_hash: str

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, **field_values(self)}


@dataclass(frozen=True)
class Quarantined:
    """The processor refused the event. ``reason_code`` is the stored code, verbatim."""

    status: ClassVar[str] = "quarantined"
    reason_code: str
    detail: str

    @property
    def code(self) -> ReasonCode:
        """The code as a :class:`ReasonCode`; ``INTERNAL_ERROR`` for one this code does not know
        (a newer processor may store codes added after this release)."""
        if self.reason_code in ReasonCode.__members__:
            return ReasonCode(self.reason_code)
        return ReasonCode.INTERNAL_ERROR

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "reason_code": self.reason_code, "detail": self.detail}

    def error(self, what: str = "the event") -> RejectedError:
        return RejectedError(self.code, f"the ledger refused {what}: {self.detail}")


@dataclass(frozen=True)
class TimedOut:
    """Kafka has the event, but no verdict arrived within ``seconds``."""

    status: ClassVar[str] = "timed_out"
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "timeout": self.seconds}

    def error(self, event_id: str) -> ServiceError:
        return ServiceError(
            f"event {event_id} was published but no verdict arrived in {self.seconds:.0f}s",
            hint="is the processor running, and caught up? `claw-ledger status` shows it"
            " and its lag; start it with `claw-ledger up` or `claw-ledger processor run`."
            " The event stays on Kafka and is decided once a processor reads it",
        )


Verdict = Committed | Quarantined | TimedOut


@dataclass(frozen=True)
class PublishOutcome:
    """A published event: where Kafka stored it and, unless not awaited, its verdict."""

    event_type: str
    sent: Position
    verdict: Verdict | None = None

    @property
    def event_id(self) -> str:
        return self.sent.event_id

    @property
    def status(self) -> str:
        """``published`` (verdict not awaited), ``committed``, ``quarantined`` or ``timed_out``."""
        return "published" if self.verdict is None else self.verdict.status

    @property
    def position(self) -> int | None:
        """The ledger position of a committed event, else ``None``."""
        return self.verdict.position if isinstance(self.verdict, Committed) else None

    def to_dict(self) -> dict[str, Any]:
        """The JSON document the CLI prints: event type, Kafka position, verdict fields."""
        verdict = {"status": "published"} if self.verdict is None else self.verdict.to_dict()
        return {"event_type": self.event_type, **self.sent.to_dict(), **verdict}

    def error(self, what: str = "the event") -> LedgerError | None:
        """The error this outcome stands for: ``RejectedError`` (exit 1) when quarantined,
        ``ServiceError`` (exit 2) when timed out, ``None`` otherwise."""
        verdict = self.verdict
        if isinstance(verdict, Quarantined):
            return verdict.error(what)
        if isinstance(verdict, TimedOut):
            return verdict.error(self.event_id)
        return None

    def check(self, what: str = "the event") -> PublishOutcome:
        """Return ``self``, or raise :meth:`error` when the event was refused or timed out."""
        error = self.error(what)
        if error is not None:
            raise error
        return self
