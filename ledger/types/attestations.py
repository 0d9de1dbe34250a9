"""OpenClaw policy attestations: ``policy.attested`` and ``policy.drift``.

Evidence only: they have no rule beyond the signer check and change no state.
"""

from __future__ import annotations

from ledger.registry import EventBody, EventTypeSpec
from ledger.types._common import no_apply, no_check, spec

__all__ = ["SPECS", "PolicyAttested", "PolicyDrift"]


class PolicyAttested(EventBody):
    """The result of an OpenClaw policy check of a workspace."""

    ok: bool
    policy_hash: str | None
    workspace_hash: str
    findings_hash: str
    attestation_hash: str
    checked_at: str
    policy_path: str
    findings_count: int


class PolicyDrift(EventBody):
    """A policy check whose attestation differs from the previous one."""

    previous_attestation_hash: str | None
    attestation_hash: str
    ok: bool
    checked_at: str
    findings_count: int


#: event type, body, stream, roles, projections written; check, apply, timeline summary
# fmt: off
SPECS: tuple[EventTypeSpec, ...] = (
    spec("policy.attested", PolicyAttested, "openclaw-policy:<…>", "runtime operator", "",
         no_check, no_apply, "ok attestation_hash findings_count"),
    spec("policy.drift", PolicyDrift, "openclaw-policy:<…>", "runtime operator", "",
         no_check, no_apply, "previous_attestation_hash attestation_hash ok"),
)
# fmt: on
