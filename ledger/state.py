"""The ledger state the rules decide on, and what they hand back.

:class:`LedgerState` is the control-plane projection the verifying processor
needs to decide on an event: registered keys and their roles, WPCs, tokens,
jobs, halts and shadow policies. The rules (``ledger/types/``) read it,
change it on accept and return :class:`ProjectionRow` values, which the
processor persists in the same transaction as the events. Nothing here talks to Kafka or Postgres.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ledger.roles import Role

if TYPE_CHECKING:
    from ledger.events import LedgerEvent
    from ledger.registry import EventBody

__all__ = ["EventContext", "KeyRecord", "LedgerState", "ProjectionRow"]


@dataclass(frozen=True)
class ProjectionRow:
    """One row of a projection table to upsert: ``table``, primary key column, values."""

    table: str
    key_column: str
    values: dict[str, Any]


@dataclass
class KeyRecord:
    did: str
    name: str
    roles: frozenset[Role]
    registered_by: str
    registered_event_id: str
    revoked: bool = False
    revoked_reason: str | None = None

    @classmethod
    def from_row(cls, values: Mapping[str, Any]) -> KeyRecord:
        """The record of a ``keys`` row (a dict, a database record): :meth:`row` undone."""
        return cls(
            did=values["did"],
            name=values["name"],
            roles=frozenset(Role(r) for r in values["roles"]),
            registered_by=values["registered_by"],
            registered_event_id=values["registered_event_id"],
            revoked=values["revoked"],
            revoked_reason=values["revoked_reason"],
        )

    def row(self) -> ProjectionRow:
        return ProjectionRow(
            "keys",
            "did",
            {
                "did": self.did,
                "name": self.name,
                "roles": sorted(r.value for r in self.roles),
                "registered_by": self.registered_by,
                "registered_event_id": self.registered_event_id,
                "revoked": self.revoked,
                "revoked_reason": self.revoked_reason,
            },
        )


@dataclass
class LedgerState:
    """Control-plane state. The records of the claw primitives (policies,
    tokens, jobs, halts) are JSON-shaped dicts keyed by identity."""

    trust_root: str | None = None
    keys: dict[str, KeyRecord] = field(default_factory=dict)
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    halts: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: shadow policies by scope (``*``, ``sub:<s>``, ``job:<j>``; ledger/types/shadows.py)
    shadows: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class EventContext:
    event: LedgerEvent
    body: EventBody
    signer: str
