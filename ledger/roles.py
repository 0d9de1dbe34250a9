"""Roles a registered key may hold.

Which role may publish which event type is part of each type's spec in the
event-type registry (``ledger.types.REGISTRY``).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Role", "roles_allowed_for"]


class Role(StrEnum):
    ADMIN = "admin"
    ISSUER = "issuer"
    POLICY_ADMIN = "policy-admin"
    GATEWAY = "gateway"
    RUNTIME = "runtime"
    OPERATOR = "operator"
    #: signs URM approvals, which travel inside run.manifest_approved; publishes nothing
    APPROVER = "approver"
    #: the ledger's own key: signs the transparency log's checkpoints (checkpoint.signed),
    #: seals proof bundles and publishes Trust Pulse records (bundle.sealed, pulse.published)
    LEDGER = "ledger"
    #: the authorize service's key: signs its decisions (call.authorized, call.denied)
    AUTHORIZER = "authorizer"


def roles_allowed_for(event_type: str) -> frozenset[Role]:
    """The roles that may publish ``event_type`` (none for an unknown type)."""
    # imported here: the registry's specs name roles, so they import this module
    from ledger.types import REGISTRY

    return REGISTRY.roles_allowed_for(event_type)
