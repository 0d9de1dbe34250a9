"""MCP server, model provider and private-network rules.

Upstream ``doctor/scopes/model-network.ts``.
A server or provider on the deny list is reported as denied and not also as
missing from the allowlist, hence ``first_match``.
"""

from __future__ import annotations

from typing import Any, Final

from openclaw_policy import findings as ids
from openclaw_policy.checks.base import (
    EntryCheck,
    Match,
    Message,
    PolicyRule,
    entry_findings,
    listed,
    when_false,
)
from openclaw_policy.evidence import normalize_provider_id
from openclaw_policy.findings import Finding

__all__ = ["mcp_findings", "model_findings", "network_findings"]


def _denied(field: str) -> Match:
    return lambda entry, denied: entry[field] in denied


def _unapproved(field: str) -> Match:
    return lambda entry, allowed: entry[field] not in allowed


_REVIEW: Final = "or update the policy after review."


def _deny_allow(
    check_ids: tuple[str, str],
    rules: tuple[PolicyRule, PolicyRule],
    field: str,
    hints: tuple[str, str],
    denied: Message,
    unapproved: Message,
) -> tuple[EntryCheck, EntryCheck]:
    """A deny list and an allowlist over ``field`` of each entry (run with ``first_match``)."""
    return (
        EntryCheck(check_ids[0], rules[0], _denied(field), denied, hints[0]),
        EntryCheck(check_ids[1], rules[1], _unapproved(field), unapproved, hints[1]),
    )


MCP_CHECKS: Final = _deny_allow(
    (ids.MCP_DENIED_SERVER, ids.MCP_UNAPPROVED_SERVER),
    (listed("mcp.servers.deny", lowercase=False), listed("mcp.servers.allow", lowercase=False)),
    "id",
    (f"Remove this configured MCP server {_REVIEW}", f"Use an approved MCP server {_REVIEW}"),
    lambda server, _: f"MCP server '{server['id']}' is denied by policy.",
    lambda server, _: f"MCP server '{server['id']}' is not in the policy allowlist.",
)

_MODEL_IDS: Final = (ids.MODELS_DENIED_PROVIDER, ids.MODELS_UNAPPROVED_PROVIDER)
_PROVIDER_RULES: Final = (
    listed("models.providers.deny", normalize=normalize_provider_id),
    listed("models.providers.allow", normalize=normalize_provider_id),
)

MODEL_PROVIDER_CHECKS: Final = _deny_allow(
    _MODEL_IDS,
    _PROVIDER_RULES,
    "id",
    (f"Remove this configured provider {_REVIEW}", f"Use an approved model provider {_REVIEW}"),
    lambda provider, _: f"Model provider '{provider['id']}' is denied by policy.",
    lambda provider, _: f"Model provider '{provider['id']}' is not in the policy allowlist.",
)

MODEL_REF_CHECKS: Final = _deny_allow(
    _MODEL_IDS,
    _PROVIDER_RULES,
    "provider",
    (f"Select an approved model provider {_REVIEW}",) * 2,
    lambda ref, _: f"Model ref '{ref['ref']}' uses denied provider '{ref['provider']}'.",
    lambda ref, _: f"Model ref '{ref['ref']}' uses unapproved provider '{ref['provider']}'.",
)

NETWORK_CHECKS: Final = (
    EntryCheck(
        ids.NETWORK_PRIVATE_ACCESS_ENABLED,
        when_false("network.privateNetwork.allow"),
        lambda setting, _: bool(setting["value"]),
        lambda setting, _: f"Network setting '{setting['id']}' allows private-network access.",
        "Disable this private-network access setting or update policy after review.",
    ),
)


def mcp_findings(policy: Any, doc: str, evidence: dict[str, Any]) -> list[Finding]:
    return entry_findings(MCP_CHECKS, policy, doc, evidence["mcpServers"], first_match=True)


def model_findings(policy: Any, doc: str, evidence: dict[str, Any]) -> list[Finding]:
    return [
        *entry_findings(
            MODEL_PROVIDER_CHECKS, policy, doc, evidence["modelProviders"], first_match=True
        ),
        *entry_findings(MODEL_REF_CHECKS, policy, doc, evidence["modelRefs"], first_match=True),
    ]


def network_findings(policy: Any, doc: str, evidence: dict[str, Any]) -> list[Finding]:
    return entry_findings(NETWORK_CHECKS, policy, doc, evidence["network"])
