"""The WPC registry: ``policy.published``, ``policy.superseded``, ``policy.revoked``.

Fail closed: a WPC is used only while it is active (:func:`usable_policy`).
A superseded WPC stays readable but no new token, URM or run may name it.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from ledger.checks import check_b64u_hash
from ledger.errors import PolicyError, ReasonCode
from ledger.registry import EventBody, EventTypeSpec, RuleSettings
from ledger.roles import Role
from ledger.state import EventContext, LedgerState, ProjectionRow
from ledger.types._common import (
    ACTIVE,
    SUPERSEDED,
    Revocation,
    body_of,
    require_role,
    require_stream,
    row,
    spec,
    usable_policy,
)
from ledger.wpc import parse_wpc_envelope_bytes, verify_wpc_envelope

__all__ = ["SPECS", "PolicyPublished", "PolicyRevoked", "PolicySuperseded", "usable_policy"]


class PolicyPublished(EventBody):
    """A signed WPC enters the registry under the hash of its content.

    ``wpc_envelope_json`` is the envelope as the exact text signed by the
    publisher (a JSON object round trip could reorder an external payload).
    """

    policy_hash_b64u: str
    wpc_envelope_json: str = Field(
        min_length=2, max_length=300_000, description="exact signed `wpc` envelope text"
    )

    _hash = field_validator("policy_hash_b64u")(check_b64u_hash)


class PolicySuperseded(EventBody):
    """An active WPC is replaced by another active one."""

    old_policy_hash_b64u: str
    new_policy_hash_b64u: str
    reason: str = Field(default="", max_length=2000)

    _old = field_validator("old_policy_hash_b64u")(check_b64u_hash)
    _new = field_validator("new_policy_hash_b64u")(check_b64u_hash)


class PolicyRevoked(EventBody):
    """A WPC may be used no more."""

    policy_hash_b64u: str
    reason: str = Field(min_length=1, max_length=2000)

    _hash = field_validator("policy_hash_b64u")(check_b64u_hash)


def _check_published(state: LedgerState, ctx: EventContext, settings: RuleSettings, /) -> None:
    body = body_of(ctx, PolicyPublished)
    require_stream(ctx, f"policy:{body.policy_hash_b64u}")
    if body.policy_hash_b64u in state.policies:
        raise PolicyError(
            ReasonCode.WPC_ALREADY_PUBLISHED,
            f"WPC {body.policy_hash_b64u} is already in the registry"
            f" ({state.policies[body.policy_hash_b64u]['status']})",
        )
    document = parse_wpc_envelope_bytes(body.wpc_envelope_json.encode("utf-8"))
    verified = verify_wpc_envelope(document, expected_hash=body.policy_hash_b64u)
    require_role(state, verified.publisher_did, Role.POLICY_ADMIN, "WPC")


def _apply_published(
    state: LedgerState, ctx: EventContext, settings: RuleSettings, /
) -> list[ProjectionRow]:
    body = body_of(ctx, PolicyPublished)
    envelope = parse_wpc_envelope_bytes(body.wpc_envelope_json.encode("utf-8"))
    verified = verify_wpc_envelope(envelope, expected_hash=body.policy_hash_b64u)
    record: dict[str, Any] = {
        "policy_hash_b64u": body.policy_hash_b64u,
        "status": ACTIVE,
        "publisher_did": verified.publisher_did,
        "published_by": ctx.signer,
        "issuer": verified.document.issuer,
        "halt_mode": verified.document.halt_mode,
        "wpc_envelope_raw": body.wpc_envelope_json,
        "wpc_envelope": envelope,
        "published_event_id": ctx.event.event_id,
        "published_at": ctx.event.occurred_at,
        "supersedes": [],
        # filled by policy.superseded or policy.revoked
        **dict.fromkeys(
            ("superseded_by", "superseded_at", "revoked_reason", "revoked_by", "revoked_at")
        ),
    }
    state.policies[body.policy_hash_b64u] = record
    return [row("policies", "policy_hash_b64u", record)]


def _check_superseded(state: LedgerState, ctx: EventContext, settings: RuleSettings, /) -> None:
    body = body_of(ctx, PolicySuperseded)
    require_stream(ctx, f"policy:{body.old_policy_hash_b64u}")
    if body.old_policy_hash_b64u == body.new_policy_hash_b64u:
        raise PolicyError(ReasonCode.WPC_INVALID, "a WPC cannot supersede itself")
    usable_policy(state, body.old_policy_hash_b64u)
    usable_policy(state, body.new_policy_hash_b64u)


def _apply_superseded(
    state: LedgerState, ctx: EventContext, settings: RuleSettings, /
) -> list[ProjectionRow]:
    body = body_of(ctx, PolicySuperseded)
    old = state.policies[body.old_policy_hash_b64u]
    new = state.policies[body.new_policy_hash_b64u]
    old.update(
        status=SUPERSEDED,
        superseded_by=body.new_policy_hash_b64u,
        superseded_at=ctx.event.occurred_at,
    )
    new["supersedes"] = [*new.get("supersedes", []), body.old_policy_hash_b64u]
    return [row("policies", "policy_hash_b64u", old), row("policies", "policy_hash_b64u", new)]


# fmt: off
_REVOCATION = Revocation("policies", "policy_hash_b64u", "policy", PolicyError,
                         ReasonCode.WPC_UNKNOWN, ReasonCode.WPC_REVOKED)

#: event type, body, stream, roles, projections written; check, apply, timeline summary
SPECS: tuple[EventTypeSpec, ...] = (
    spec("policy.published", PolicyPublished, "policy:<hash>", "policy-admin", "policies",
         _check_published, _apply_published, "policy_hash_b64u"),
    spec("policy.superseded", PolicySuperseded, "policy:<old hash>", "policy-admin", "policies",
         _check_superseded, _apply_superseded, "old_policy_hash_b64u new_policy_hash_b64u"),
    spec("policy.revoked", PolicyRevoked, "policy:<hash>", "policy-admin", "policies",
         _REVOCATION.check, _REVOCATION.apply, "policy_hash_b64u reason",
         lane="control"),
)
# fmt: on
