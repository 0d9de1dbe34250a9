"""One-line summaries of events for the timeline (pure).

Each event type says how it is summarised (its spec's ``summary``); a type
the registry does not know shows its first three body fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ledger.types import REGISTRY
from ledger.types._common import summarize_fields

__all__ = ["summarize"]


def summarize(event_type: str, body: Mapping[str, Any]) -> str:
    spec = REGISTRY.get(event_type)
    if spec is not None:
        return spec.summary(body)
    return summarize_fields(body, tuple(body)[:3])
