"""How a recorded point in time is spelled in the JSON the CLI and the API write.

Signed documents keep the times they were signed with (``format_timestamp`` in
:mod:`ledger.envelope`, milliseconds); this is for the times the ledger itself
records (``recorded_at``, ``received_at``, a checkpoint's ``created_at``…),
which Postgres holds to the microsecond.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

__all__ = ["format_instant", "in_utc", "respelled", "with_instants"]


def format_instant(moment: datetime) -> str:
    """RFC 3339 in UTC, six fraction digits and ``Z``: ``2026-02-12T00:00:00.000000Z``.

    Every time has the same width, so text order is time order: a spelling that
    drops a zero fraction would sort ``…:12Z`` after ``…:12.5Z``.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment!r} has no time zone: it is not a point in time")
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def respelled(text: str) -> str:
    """An RFC 3339 time kept as text (a projection's copy of a signed
    ``occurred_at``, to the millisecond) spelled as :func:`format_instant` spells
    it, so that one instant reads the same in every answer; anything that is not
    such a time is returned as it is."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    return format_instant(moment) if moment.tzinfo is not None else text


def in_utc(moment: datetime) -> datetime:
    """An aware ``moment`` in UTC; ``ValueError`` when UTC puts it outside the years
    1 to 9999 (``9999-12-31T23:59:59-01:00`` is in the year 10000 there), which no
    query could hold and which Python cannot compute with."""
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(
            f"{moment.isoformat()} is out of range: in UTC it falls outside the years 1 to 9999"
        ) from None


def with_instants(document: Mapping[str, Any]) -> dict[str, Any]:
    """``document`` with every ``datetime`` in it, at any depth of its dicts, lists
    and tuples, spelled by :func:`format_instant` (a document about to become JSON)."""
    return {key: _spelled(value) for key, value in document.items()}


def _spelled(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_instant(value)
    if isinstance(value, Mapping):
        return with_instants(value)
    if isinstance(value, list | tuple):
        return [_spelled(item) for item in value]
    return value
