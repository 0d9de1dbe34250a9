"""Observed OpenClaw state ("evidence") for policy checks.

A port of OpenClaw's ``extensions/policy/src/policy-state*.ts`` scanners, one
module per upstream file. Each scanner returns plain dicts whose keys,
optional members and order match the upstream objects, because the evidence
object is hashed (``workspace.hash``) and printed verbatim.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from openclaw_policy.evidence.common import Entry, normalize_provider_id, oc_path_segment
from openclaw_policy.evidence.core import (
    scan_policy_channels,
    scan_policy_mcp_servers,
    scan_policy_model_providers,
    scan_policy_model_refs,
    scan_policy_network,
)
from openclaw_policy.evidence.data import scan_policy_auth_profiles, scan_policy_secrets
from openclaw_policy.evidence.gateway import scan_policy_gateway_exposure
from openclaw_policy.evidence.sandbox import scan_policy_agent_workspace
from openclaw_policy.evidence.tool_groups import (
    AGENT_WORKSPACE_POLICY_TOOLS,
    POLICY_TOOL_GROUPS,
    expand_policy_tool_requirement,
    tool_list_covers_tool,
)
from openclaw_policy.evidence.tool_posture import scan_policy_tool_posture
from openclaw_policy.evidence.workspace import scan_policy_tools

__all__ = [
    "AGENT_WORKSPACE_POLICY_TOOLS",
    "POLICY_TOOL_GROUPS",
    "Entry",
    "EvidenceOptions",
    "collect_policy_evidence",
    "expand_policy_tool_requirement",
    "normalize_provider_id",
    "oc_path_segment",
    "scan_policy_agent_workspace",
    "scan_policy_auth_profiles",
    "scan_policy_channels",
    "scan_policy_gateway_exposure",
    "scan_policy_mcp_servers",
    "scan_policy_model_providers",
    "scan_policy_model_refs",
    "scan_policy_network",
    "scan_policy_secrets",
    "scan_policy_tool_posture",
    "scan_policy_tools",
    "tool_list_covers_tool",
]


@dataclass(frozen=True, slots=True)
class EvidenceOptions:
    """Which optional evidence sections join the base five (a section joins only with a rule)."""

    gateway_exposure: bool = False
    agent_workspace: bool = False
    tool_posture: bool = False
    secrets: bool = False
    auth_profiles: bool = False
    tools_raw: str | None = None


def collect_policy_evidence(cfg: dict[str, Any], options: EvidenceOptions) -> dict[str, Any]:
    evidence: dict[str, Any] = {
        "channels": scan_policy_channels(cfg),
        "mcpServers": scan_policy_mcp_servers(cfg),
        "modelProviders": scan_policy_model_providers(cfg),
        "modelRefs": scan_policy_model_refs(cfg),
        "network": scan_policy_network(cfg),
    }
    for key, wanted, scan in (
        ("gatewayExposure", options.gateway_exposure, scan_policy_gateway_exposure),
        ("agentWorkspace", options.agent_workspace, scan_policy_agent_workspace),
        ("toolPosture", options.tool_posture, scan_policy_tool_posture),
        ("secrets", options.secrets, scan_policy_secrets),
        ("authProfiles", options.auth_profiles, scan_policy_auth_profiles),
    ):
        if wanted:
            evidence[key] = scan(cfg)
    if options.tools_raw is not None:
        evidence["tools"] = scan_policy_tools(options.tools_raw)
    return evidence
