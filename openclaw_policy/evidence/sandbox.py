"""Agent workspace posture: sandbox mode, workspace access and the denied mutating tools.

Upstream ``policy-state-sandbox.ts``: one ``workspaceAccess`` entry and one
``toolDeny`` entry per :data:`AGENT_WORKSPACE_POLICY_TOOLS` tool, for the
defaults and for every agent of ``agents.list``.
"""

from __future__ import annotations

from typing import Any

from openclaw_policy.evidence.common import (
    DEFAULTS_AGENT_BASE,
    AgentScope,
    Entry,
    agent_scopes,
    record,
    sorted_by,
)
from openclaw_policy.evidence.tool_groups import (
    AGENT_WORKSPACE_POLICY_TOOLS,
    tool_list_covers_tool,
)
from openclaw_policy.jsutil import read_string, read_string_array

__all__ = ["scan_policy_agent_workspace"]


def _sandbox_tool_deny_entries(tools: dict[str, Any]) -> list[str] | None:
    deny = record(record(tools.get("sandbox")).get("tools")).get("deny")
    return read_string_array(deny) if isinstance(deny, list) else None


def _tool_deny(scope: AgentScope, tool: str, sandbox_covers_main: bool) -> tuple[bool, str]:
    """Whether ``tool`` is denied, and the config location that denies it (or should)."""
    sources: list[tuple[list[str], str]] = [
        (read_string_array(scope.tools.get("deny")), scope.tools_source("deny", inherited=False)),
        (
            read_string_array(scope.inherited_tools.get("deny")),
            scope.tools_source("deny", inherited=True),
        ),
    ]
    if sandbox_covers_main:
        local = _sandbox_tool_deny_entries(scope.tools)
        inherited = local is None
        listed = _sandbox_tool_deny_entries(scope.inherited_tools) if inherited else local
        sources.append(
            (listed or [], scope.tools_source("sandbox/tools/deny", inherited=inherited))
        )
    for deny_list, deny_source in sources:
        if tool_list_covers_tool(deny_list, tool):
            return True, deny_source
    return False, scope.tools_source("deny", inherited=False)


def _sandbox_setting(scope: AgentScope, key: str) -> tuple[str | None, str | None, str]:
    """``(own value, inherited value, source)`` of ``sandbox.<key>``; the defaults when unset."""
    own = read_string(scope.sandbox.get(key))
    inherited = read_string(scope.inherited_sandbox.get(key))
    base = scope.agent_base if own is not None else DEFAULTS_AGENT_BASE
    return own, inherited, f"{base}/sandbox/{key}"


def _push_agent_workspace(entries: list[Entry], scope: AgentScope) -> None:
    own_mode, inherited_mode, mode_source = _sandbox_setting(scope, "mode")
    sandbox_mode = own_mode or inherited_mode or "off"
    covers_main = sandbox_mode == "all"
    own_access, inherited_access, access_source = _sandbox_setting(scope, "workspaceAccess")
    entry = scope.entry(f"{scope.pid}-workspace-access", "workspaceAccess", access_source)
    entry |= {
        "value": own_access or inherited_access or "none",
        "sandboxMode": sandbox_mode,
        "sandboxModeSource": mode_source,
        "sandboxEnabled": covers_main,
        "explicit": own_access is not None,
    }
    entries.append(entry)
    for tool in AGENT_WORKSPACE_POLICY_TOOLS:
        denied, source = _tool_deny(scope, tool, covers_main)
        tool_entry = scope.entry(f"{scope.pid}-tool-{tool}", "toolDeny", source)
        tool_entry |= {"tool": tool, "denied": denied, "explicit": denied}
        entries.append(tool_entry)


def scan_policy_agent_workspace(cfg: dict[str, Any]) -> list[Entry]:
    entries: list[Entry] = []
    for scope in agent_scopes(cfg, defaults_id="agents-defaults", defaults_scope="defaults"):
        _push_agent_workspace(entries, scope)
    return sorted_by(entries, "source", "id")
