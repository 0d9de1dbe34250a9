"""Filter values that must name something the ledger can hold: an event type,
a reason code. A name it cannot hold matches nothing, and an empty page reads
as "nothing happened"; every reader (CLI, HTTP API, Trust Pulse) refuses it
instead, naming the closest known ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from claw_ledger.shown import printable
from ledger.errors import ReasonCode

__all__ = ["EVENT_TYPES", "REASON_CODES", "KnownNames", "UnknownNameError"]


class UnknownNameError(ValueError):
    """``text`` is none of the known names; the message says which come close."""


@dataclass(frozen=True)
class KnownNames:
    """One fixed set of names: ``what`` they are, ``listed_in`` where the docs list them."""

    what: str
    names: Callable[[], Iterable[str]]
    listed_in: str

    def resolve(self, text: str) -> str:
        """The known name ``text`` spells (in any case); else :class:`UnknownNameError`."""
        known = tuple(self.names())
        if text in known:
            return text
        folded = {name.casefold(): name for name in known}
        if text.casefold() in folded:
            return folded[text.casefold()]
        import difflib  # only on a miss: every CLI command imports this module

        close = difflib.get_close_matches(text, known, n=3, cutoff=0.6)
        guess = f"; did you mean {' or '.join(close)}?" if close else ""
        raise UnknownNameError(
            f"{printable(text)!r} is not a known {self.what}{guess}"
            f" (all are listed in {self.listed_in})"
        )


def _event_types() -> tuple[str, ...]:
    # imported when first asked: the registry loads every event family's models
    from ledger.types import REGISTRY

    return REGISTRY.event_types()


#: event types the registry knows
EVENT_TYPES = KnownNames("event type", _event_types, "docs/architecture.md#event-types")
#: the stable reason codes
REASON_CODES = KnownNames(
    "reason code", lambda: (code.value for code in ReasonCode), "docs/architecture.md#reason-codes"
)
