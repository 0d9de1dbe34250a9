"""Tool posture rules and ``TOOLS.md`` metadata rules (upstream ``doctor/scopes/tools.ts``)."""

from __future__ import annotations

from typing import Any, Final

from openclaw_policy import findings as ids
from openclaw_policy.checks.base import (
    EntryCheck,
    Match,
    Message,
    PolicyRule,
    entry_findings,
    has_rule,
    listed,
    located_finding,
    mirrors,
    read_string_list,
    when_false,
    when_true,
)
from openclaw_policy.checks.shapes import TOOL_POSTURE_SHAPES, shape_findings
from openclaw_policy.evidence import (
    Entry,
    expand_policy_tool_requirement,
    tool_list_covers_tool,
)
from openclaw_policy.findings import Finding
from openclaw_policy.jsutil import is_record, js_lower

__all__ = [
    "KNOWN_RISK_LEVELS",
    "KNOWN_SENSITIVITY_LEVELS",
    "has_tool_posture_rules",
    "tool_metadata_findings",
    "tool_posture_findings",
]

KNOWN_RISK_LEVELS: Final = ("low", "medium", "high", "critical")
KNOWN_SENSITIVITY_LEVELS: Final = ("public", "internal", "confidential", "restricted")
_ADJUST: Final = "Adjust the configured tool posture or update policy after review."


def _label(entry: Entry) -> str:
    return "global tools config" if "agentId" not in entry else f"agent '{entry['agentId']}'"


def _unapproved(kind: str) -> Match:
    def matches(entry: Entry, allowed: set[str]) -> bool:
        value = entry.get("value")
        return entry["kind"] == kind and isinstance(value, str) and js_lower(value) not in allowed

    return matches


def _exec_check(check_id: str, kind: str, rule: str, setting: str) -> EntryCheck:
    return EntryCheck(
        check_id,
        listed(f"tools.exec.{rule}"),
        _unapproved(kind),
        lambda e, _: f"{_label(e)} uses unapproved {setting} '{e['value']}'.",
        _ADJUST,
    )


def _setting_check(
    check_id: str, rule: PolicyRule, kind: str, problem: str, setting: str
) -> EntryCheck:
    """A ``kind`` entry whose ``value`` is not the flag ``rule`` requires: ``setting`` fixes it."""
    return EntryCheck(
        check_id,
        rule,
        mirrors(kind, "value"),
        lambda e, _: f"{_label(e)} {problem}.",
        f"Set {setting} or update policy after review.",
    )


TOOL_POSTURE_CHECKS: Final = (
    EntryCheck(
        ids.TOOLS_PROFILE_UNAPPROVED,
        listed("tools.profiles.allow"),
        _unapproved("profile"),
        lambda e, _: f"{_label(e)} uses unapproved tool profile '{e['value']}'.",
        "Use an approved tools.profile value or update policy after review.",
    ),
    _setting_check(
        ids.TOOLS_FS_WORKSPACE_ONLY_REQUIRED,
        when_true("tools.fs.requireWorkspaceOnly"),
        "fsWorkspaceOnly",
        "does not require workspace-only filesystem tools",
        "tools.fs.workspaceOnly=true",
    ),
    _exec_check(
        ids.TOOLS_EXEC_SECURITY_UNAPPROVED, "execSecurity", "allowSecurity", "exec security"
    ),
    _exec_check(ids.TOOLS_EXEC_ASK_UNAPPROVED, "execAsk", "requireAsk", "exec ask"),
    _exec_check(ids.TOOLS_EXEC_HOST_UNAPPROVED, "execHost", "allowHosts", "exec host"),
    _setting_check(
        ids.TOOLS_ELEVATED_ENABLED,
        when_false("tools.elevated.allow"),
        "elevatedEnabled",
        "permits elevated tool mode",
        "tools.elevated.enabled=false",
    ),
)


_TOOL_POSTURE_RULES: Final = (
    ("tools.profiles", ("allow",)),
    ("tools.fs", ("requireWorkspaceOnly",)),
    ("tools.exec", ("allowSecurity", "requireAsk", "allowHosts")),
    ("tools.elevated", ("allow",)),
    ("tools.alsoAllow", ("expected",)),
    ("tools", ("denyTools",)),
)


def has_tool_posture_rules(policy: Any) -> bool:
    return any(has_rule(policy, dotted, *keys) for dotted, keys in _TOOL_POSTURE_RULES)


def _required_deny_findings(policy: Any, doc: str, entries: list[Entry]) -> list[Finding]:
    """Every deny list (global, per agent) must cover every tool ``denyTools`` requires."""
    required = read_string_list(policy, ("tools", "denyTools"))
    tools = dict.fromkeys(
        tool for value in required for tool in expand_policy_tool_requirement(value)
    )
    return [
        located_finding(
            ids.TOOLS_REQUIRED_DENY_MISSING,
            f"{_label(entry)} does not deny required tool '{tool}'.",
            entry["source"],
            f"oc://{doc}/tools/denyTools",
            "Add the tool or group to tools.deny/agents.list[].tools.deny, or update "
            "policy after review.",
        )
        for entry in entries
        if entry["kind"] == "deny"
        for tool in tools
        if not tool_list_covers_tool(entry.get("entries", []), tool)
    ]


def tool_posture_findings(
    policy: Any, policy_path: str, doc: str, evidence: dict[str, Any]
) -> list[Finding]:
    if not is_record(policy) or not is_record(policy.get("tools")):
        return []
    if shape_findings(policy, TOOL_POSTURE_SHAPES, policy_path, doc):
        return []
    entries: list[Entry] = evidence.get("toolPosture", [])
    return [
        *entry_findings(TOOL_POSTURE_CHECKS, policy, doc, entries),
        *_required_deny_findings(policy, doc, entries),
    ]


def _metadata(key: str) -> PolicyRule:
    """Active when ``key`` is among the required metadata (the rule's value, a set)."""
    return PolicyRule(
        "tools.requireMetadata", lambda required, _: True if key in required else None
    )


def _tools_md_check(
    check_id: str, key: str, matches: Match, message: Message, hint: str
) -> EntryCheck:
    return EntryCheck(
        check_id, _metadata(key), matches, message, hint, path="TOOLS.md", with_line=True
    )


def _missing(check_id: str, key: str, what: str, hint: str) -> EntryCheck:
    return _tools_md_check(
        check_id,
        key,
        lambda tool, _: key not in tool,
        lambda tool, _: f"TOOLS.md tool '{tool['id']}' has no {what}.",
        hint,
    )


def _unknown(check_id: str, key: str, known: tuple[str, ...]) -> EntryCheck:
    return _tools_md_check(
        check_id,
        key,
        lambda tool, _: key in tool and tool[key] not in known,
        lambda tool, _: f"TOOLS.md tool '{tool['id']}' declares unknown {key} '{tool[key]}'.",
        f"Use one of: {', '.join(known)}.",
    )


#: Groups of checks; within a group a tool yields at most one finding.
TOOLS_MD_CHECKS: Final = (
    (
        _missing(
            ids.TOOLS_MISSING_RISK_LEVEL,
            "risk",
            "explicit risk classification",
            "Declare risk:low, risk:medium, risk:high, risk:critical, or an R0-R5 review alias.",
        ),
    ),
    (_unknown(ids.TOOLS_UNKNOWN_RISK_LEVEL, "risk", KNOWN_RISK_LEVELS),),
    (
        _missing(
            ids.TOOLS_MISSING_SENSITIVITY_TOKEN,
            "sensitivity",
            "declared artifact sensitivity",
            f"Declare sensitivity as one of: {', '.join(KNOWN_SENSITIVITY_LEVELS)}.",
        ),
        _unknown(ids.TOOLS_UNKNOWN_SENSITIVITY_TOKEN, "sensitivity", KNOWN_SENSITIVITY_LEVELS),
    ),
    (
        _missing(
            ids.TOOLS_MISSING_OWNER,
            "owner",
            "declared owner",
            "Declare owner:<team-or-person> for this tool.",
        ),
    ),
)


def tool_metadata_findings(required: set[str], doc: str, evidence: dict[str, Any]) -> list[Finding]:
    """TOOLS.md tools lacking metadata that ``tools.requireMetadata`` asks for, or unknown."""
    tools: list[Entry] = evidence.get("tools", [])
    return [
        finding
        for group in TOOLS_MD_CHECKS
        for finding in entry_findings(group, required, doc, tools, first_match=True)
    ]
