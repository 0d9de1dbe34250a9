"""MCP server, model provider and private-network rules.

Upstream ``doctor/scopes/model-network.ts``.
A server or provider on the deny list is reported as denied and not also as
missing from the allowlist, hence ``first_match``.
"""

from __future__ import annotations

from typing import Any, Final

from openclaw_policy import findings as ids
from openclaw_policy.checks.base import EntryCheck, Match, entry_findings, listed, when_false
from openclaw_policy.evidence import normalize_provider_id
from openclaw_policy.findings import Finding

__all__ = ["mcp_findings", "model_findings", "network_findings"]


def _denied(field: str) -> Match:
    return lambda entry, denied: entry[field] in denied


def _unapproved(field: str) -> Match:
    return lambda entry, allowed: entry[field] not in allowed


_REVIEW: Final = "or update the policy after review."

MCP_CHECKS: Final = (
    EntryCheck(
        ids.MCP_DENIED_SERVER,
        listed("mcp.servers.deny", lowercase=False),
        _denied("id"),
        lambda server, _: f"MCP server '{server['id']}' is denied by policy.",
        f"Remove this configured MCP server {_REVIEW}",
    ),
    EntryCheck(
        ids.MCP_UNAPPROVED_SERVER,
        listed("mcp.servers.allow", lowercase=False),
        _unapproved("id"),
        lambda server, _: f"MCP server '{server['id']}' is not in the policy allowlist.",
        f"Use an approved MCP server {_REVIEW}",
    ),
)

_DENIED_PROVIDERS: Final = listed("models.providers.deny", normalize=normalize_provider_id)
_ALLOWED_PROVIDERS: Final = listed("models.providers.allow", normalize=normalize_provider_id)

MODEL_PROVIDER_CHECKS: Final = (
    EntryCheck(
        ids.MODELS_DENIED_PROVIDER,
        _DENIED_PROVIDERS,
        _denied("id"),
        lambda provider, _: f"Model provider '{provider['id']}' is denied by policy.",
        f"Remove this configured provider {_REVIEW}",
    ),
    EntryCheck(
        ids.MODELS_UNAPPROVED_PROVIDER,
        _ALLOWED_PROVIDERS,
        _unapproved("id"),
        lambda provider, _: f"Model provider '{provider['id']}' is not in the policy allowlist.",
        f"Use an approved model provider {_REVIEW}",
    ),
)

MODEL_REF_CHECKS: Final = (
    EntryCheck(
        ids.MODELS_DENIED_PROVIDER,
        _DENIED_PROVIDERS,
        _denied("provider"),
        lambda ref, _: f"Model ref '{ref['ref']}' uses denied provider '{ref['provider']}'.",
        f"Select an approved model provider {_REVIEW}",
    ),
    EntryCheck(
        ids.MODELS_UNAPPROVED_PROVIDER,
        _ALLOWED_PROVIDERS,
        _unapproved("provider"),
        lambda ref, _: f"Model ref '{ref['ref']}' uses unapproved provider '{ref['provider']}'.",
        f"Select an approved model provider {_REVIEW}",
    ),
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
