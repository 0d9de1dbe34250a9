"""Agent workspace rules: sandboxed workspace access and denied mutating tools.

Upstream ``doctor/scopes/sandbox.ts`` (``sandbox-findings.ts``). Nothing is
reported while ``agents`` itself is malformed: the shape finding says it.
"""

from __future__ import annotations

from typing import Any, Final

from openclaw_policy import findings as ids
from openclaw_policy.checks.base import EntryCheck, entry_findings, has_rule, listed
from openclaw_policy.checks.shapes import AGENTS_SHAPES, shape_findings
from openclaw_policy.evidence import Entry
from openclaw_policy.findings import Finding

__all__ = ["AGENT_WORKSPACE_CHECKS", "agent_workspace_findings", "has_agent_workspace_rules"]


def _label(entry: Entry) -> str:
    return "agents.defaults" if "agentId" not in entry else f"agent '{entry['agentId']}'"


def _sandbox_disabled(entry: Entry) -> bool:
    return entry.get("sandboxEnabled") is not True


def _access_message(entry: Entry, _allowed_access: object) -> str:
    observed = (
        f"sandbox mode '{entry.get('sandboxMode', 'off')}'"
        if _sandbox_disabled(entry)
        else f"sandbox workspaceAccess '{entry['value']}'"
    )
    return f"{_label(entry)} {observed} is not allowed by policy."


def _access_source(entry: Entry) -> str:
    # an unsandboxed agent is fixed where its sandbox mode is set
    key = (
        "sandboxModeSource"
        if _sandbox_disabled(entry) and "sandboxModeSource" in entry
        else "source"
    )
    source: str = entry[key]
    return source


AGENT_WORKSPACE_CHECKS: Final = (
    EntryCheck(
        ids.AGENTS_WORKSPACE_ACCESS_DENIED,
        listed("agents.workspace.allowedAccess"),
        lambda e, allowed: (
            e["kind"] == "workspaceAccess" and (_sandbox_disabled(e) or e["value"] not in allowed)
        ),
        _access_message,
        "Enable sandbox mode with workspaceAccess none/ro or update policy after review.",
        locate=_access_source,
    ),
    EntryCheck(
        ids.AGENTS_TOOL_NOT_DENIED,
        listed("agents.workspace.denyTools"),
        lambda e, required: (
            e["kind"] == "toolDeny" and e["tool"] in required and e["denied"] is not True
        ),
        lambda e, _: f"{_label(e)} does not deny required tool '{e['tool']}'.",
        "Add the tool to tools.deny or agents.list[].tools.deny, or update policy after review.",
    ),
)


def has_agent_workspace_rules(policy: Any) -> bool:
    return has_rule(policy, "agents.workspace", "allowedAccess", "denyTools")


def agent_workspace_findings(
    policy: Any, policy_path: str, doc: str, evidence: dict[str, Any]
) -> list[Finding]:
    if shape_findings(policy, AGENTS_SHAPES, policy_path, doc):
        return []
    return entry_findings(AGENT_WORKSPACE_CHECKS, policy, doc, evidence.get("agentWorkspace", []))
