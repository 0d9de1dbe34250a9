"""Every event type of the ledger, one module per family, and the one registry of them.

A family module holds its body models, its rules and its ``SPECS``. Adding an
event type means adding its spec there; nothing registers itself on import.
"""

from __future__ import annotations

from ledger.registry import EventRegistry
from ledger.types import (
    attestations,
    bundles,
    checkpoints,
    decisions,
    halts,
    keys,
    policies,
    runs,
    shadows,
    tokens,
)

__all__ = ["REGISTRY"]

#: In the order of docs/architecture.md's table of event types.
REGISTRY = EventRegistry(
    (
        *keys.SPECS,
        *policies.SPECS,
        *tokens.SPECS,
        *runs.SPECS,
        *halts.SPECS,
        *attestations.SPECS,
        *checkpoints.SPECS,
        *decisions.SPECS,
        *bundles.SPECS,
        *shadows.SPECS,
    )
)
