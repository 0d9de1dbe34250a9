"""Objects as JSON-ready dicts: named attributes, in the order given."""

from __future__ import annotations

from typing import Any

__all__ = ["attributes"]


def attributes(obj: object, *names: str) -> dict[str, Any]:
    """``{name: obj.name}`` for each of ``names``, in that order (the order a JSON
    document or a status line shows them)."""
    return {name: getattr(obj, name) for name in names}
