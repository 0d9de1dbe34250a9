"""Tool names, tool groups and deny-list coverage (upstream ``tool-policy-conformance.ts``)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from openclaw_policy.jsutil import js_lower, js_trim

__all__ = [
    "AGENT_WORKSPACE_POLICY_TOOLS",
    "POLICY_TOOL_GROUPS",
    "expand_policy_tool_requirement",
    "tool_list_covers_tool",
]

AGENT_WORKSPACE_POLICY_TOOLS: Final = ("exec", "process", "write", "edit", "apply_patch")

_GROUPS: Final[dict[str, tuple[str, ...]]] = {
    "group:fs": ("read", "write", "edit", "apply_patch"),
    "group:runtime": ("exec", "process", "code_execution"),
    "group:web": ("web_search", "web_fetch", "x_search"),
    "group:memory": ("memory_search", "memory_get"),
    "group:sessions": (
        "sessions_list",
        "sessions_history",
        "sessions_send",
        "sessions_spawn",
        "sessions_yield",
        "subagents",
        "session_status",
    ),
    "group:ui": ("browser", "canvas"),
    "group:messaging": ("message",),
    "group:automation": ("heartbeat_respond", "cron", "gateway"),
    "group:nodes": ("nodes",),
    "group:agents": (
        "agents_list",
        "get_goal",
        "create_goal",
        "update_goal",
        "update_plan",
        "skill_workshop",
    ),
    "group:media": ("image", "image_generate", "music_generate", "video_generate", "tts"),
}

#: Canonical OpenClaw tool groups (``tool-policy-conformance.ts``). ``group:openclaw``
#: is OpenClaw's own tools: the other groups but for exec, process, read, the
#: write tools and canvas, in this order.
POLICY_TOOL_GROUPS: Final[dict[str, tuple[str, ...]]] = {
    "group:openclaw": (
        "code_execution",
        *_GROUPS["group:web"],
        *_GROUPS["group:memory"],
        *_GROUPS["group:sessions"],
        "browser",
        *_GROUPS["group:messaging"],
        *_GROUPS["group:automation"],
        *_GROUPS["group:nodes"],
        *_GROUPS["group:agents"],
        *_GROUPS["group:media"],
    ),
    **_GROUPS,
}


def _normalize_policy_tool_name(value: str) -> str:
    normalized = js_lower(js_trim(value))
    if normalized == "bash":
        return "exec"
    if normalized == "apply-patch":
        return "apply_patch"
    return normalized


def _tool_glob_matches(tool: str, pattern: str) -> bool:
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, tool, flags=re.DOTALL) is not None


def tool_list_covers_tool(entries: Iterable[str], tool: str) -> bool:
    for entry in entries:
        normalized = _normalize_policy_tool_name(entry)
        if normalized in ("*", tool):
            return True
        if tool in POLICY_TOOL_GROUPS.get(normalized, ()):
            return True
        if "*" in normalized and _tool_glob_matches(tool, normalized):
            return True
    return False


def expand_policy_tool_requirement(value: str) -> tuple[str, ...]:
    normalized = _normalize_policy_tool_name(value)
    return POLICY_TOOL_GROUPS.get(normalized, (normalized,))
