"""Roles a registered key may hold, and which event types each role may publish."""

from __future__ import annotations

from enum import StrEnum
from functools import cache

__all__ = ["ROLE_EVENT_TYPES", "Role", "roles_allowed_for"]


class Role(StrEnum):
    ADMIN = "admin"
    ISSUER = "issuer"
    POLICY_ADMIN = "policy-admin"
    GATEWAY = "gateway"
    RUNTIME = "runtime"
    OPERATOR = "operator"
    APPROVER = "approver"
    LEDGER = "ledger"


#: The one table of who may publish what. Least privilege: admin manages keys only.
ROLE_EVENT_TYPES: dict[Role, frozenset[str]] = {
    Role.ADMIN: frozenset({"key.registered", "key.revoked"}),
    Role.POLICY_ADMIN: frozenset({"policy.published", "policy.superseded", "policy.revoked"}),
    Role.ISSUER: frozenset({"token.issued", "token.revoked"}),
    Role.GATEWAY: frozenset({"receipt.recorded"}),
    Role.RUNTIME: frozenset(
        {"run.manifest_approved", "run.started", "run.completed", "policy.attested", "policy.drift"}
    ),
    Role.OPERATOR: frozenset(
        {
            "agent.halted",
            "agent.resumed",
            "token.revoked",
            "run.manifest_approved",
            "policy.attested",
            "policy.drift",
        }
    ),
    # approvers sign URM approvals; the approval signatures travel inside run.manifest_approved
    Role.APPROVER: frozenset(),
    # the ledger's own key: reserved for signing proof bundles; it publishes no events
    Role.LEDGER: frozenset(),
}


@cache
def roles_allowed_for(event_type: str) -> frozenset[Role]:
    return frozenset(role for role, types in ROLE_EVENT_TYPES.items() if event_type in types)
