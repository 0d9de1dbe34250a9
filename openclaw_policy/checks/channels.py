"""Channel deny rules (upstream ``doctor/scopes/channels.ts``)."""

from __future__ import annotations

from typing import Any, Final

from openclaw_policy import findings as ids
from openclaw_policy.checks.base import located_finding, sub
from openclaw_policy.checks.shapes import CHANNEL_SHAPES, shape_findings
from openclaw_policy.findings import Finding

__all__ = ["channel_findings"]

_CHANNEL_DENY_HINT: Final = (
    "Disable this channel, remove it from config, or update the policy deny rule."
)


def channel_findings(
    policy: Any, policy_path: str, doc: str, evidence: dict[str, Any]
) -> list[Finding]:
    """An enabled channel whose provider the first matching ``denyRules`` entry denies."""
    shape = shape_findings(policy, CHANNEL_SHAPES, policy_path, doc)
    rules = sub(policy, "channels").get("denyRules")
    if shape or not isinstance(rules, list):
        return shape
    out: list[Finding] = []
    for channel in evidence["channels"]:
        if channel.get("enabled") is False:
            continue
        match = next(
            (
                (index, rule)
                for index, rule in enumerate(rules)
                if rule["when"]["provider"] == channel["provider"]
            ),
            None,
        )
        if match is None:
            continue
        index, rule = match
        out.append(
            located_finding(
                ids.CHANNELS_DENIED_PROVIDER,
                f"Channel '{channel['id']}' uses denied provider '{channel['provider']}'.",
                channel["source"],
                f"oc://{doc}/channels/denyRules/#{index}",
                rule.get("reason", _CHANNEL_DENY_HINT),
            )
        )
    return out
