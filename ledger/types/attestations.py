"""OpenClaw policy attestations: ``policy.attested`` and ``policy.drift``.

Evidence only: they have no rule beyond the signer check and change no state.
"""

from __future__ import annotations

from ledger.registry import EventBody, EventTypeSpec
from ledger.roles import Role
from ledger.types._common import fields_summary, no_apply, no_check

__all__ = ["SPECS", "PolicyAttested", "PolicyDrift"]


class PolicyAttested(EventBody):
    ok: bool
    policy_hash: str | None
    workspace_hash: str
    findings_hash: str
    attestation_hash: str
    checked_at: str
    policy_path: str
    findings_count: int


class PolicyDrift(EventBody):
    previous_attestation_hash: str | None
    attestation_hash: str
    ok: bool
    checked_at: str
    findings_count: int


SPECS: tuple[EventTypeSpec, ...] = (
    EventTypeSpec(
        event_type="policy.attested",
        body=PolicyAttested,
        stream_kind="openclaw-policy",
        stream_id="<…>",
        roles=frozenset({Role.RUNTIME, Role.OPERATOR}),
        check=no_check,
        apply=no_apply,
        writes=(),
        description="the result of an OpenClaw policy check of a workspace",
        summary=fields_summary("ok", "attestation_hash", "findings_count"),
    ),
    EventTypeSpec(
        event_type="policy.drift",
        body=PolicyDrift,
        stream_kind="openclaw-policy",
        stream_id="<…>",
        roles=frozenset({Role.RUNTIME, Role.OPERATOR}),
        check=no_check,
        apply=no_apply,
        writes=(),
        description="a policy check whose attestation differs from the previous one",
        summary=fields_summary("previous_attestation_hash", "attestation_hash", "ok"),
    ),
)
