"""What every evidence scanner shares: entry records, ``oc://`` paths, sorting, agent scopes.

Upstream ``policy-state-types.ts`` and the helpers of ``policy-state.ts``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cmp_to_key
from typing import Any, Final

from openclaw_policy.collation import locale_compare, locale_sort_key
from openclaw_policy.jsutil import is_record, js_entries, js_lower, js_trim

__all__ = [
    "CONFIG_ROOT",
    "DEFAULTS_AGENT_BASE",
    "GLOBAL_TOOLS_BASE",
    "AgentScope",
    "Entry",
    "agent_scopes",
    "config_source",
    "normalize_provider_id",
    "oc_path_segment",
    "record",
    "sorted_by",
    "sorted_members",
    "string_members",
]

Entry = dict[str, Any]

CONFIG_ROOT: Final = "oc://openclaw.config"
DEFAULTS_AGENT_BASE: Final = f"{CONFIG_ROOT}/agents/defaults"
GLOBAL_TOOLS_BASE: Final = f"{CONFIG_ROOT}/tools"

_PROVIDER_ALIASES: Final = {
    "modelstudio": "qwen",
    "qwencloud": "qwen",
    "z.ai": "zai",
    "z-ai": "zai",
    "opencode-zen": "opencode",
    "opencode-go-auth": "opencode-go",
    "kimi": "kimi",
    "kimi-code": "kimi",
    "kimi-coding": "kimi",
    "moonshotai": "moonshot",
    "moonshot-ai": "moonshot",
    "bedrock": "amazon-bedrock",
    "aws-bedrock": "amazon-bedrock",
    "bytedance": "volcengine",
    "doubao": "volcengine",
}

_OC_PLAIN_SEGMENT = re.compile(r"(?:[A-Za-z0-9_-]+|#[0-9]+)\Z")


def record(value: object) -> dict[str, Any]:
    return value if is_record(value) else {}


def sorted_members(section: object) -> list[tuple[str, Any]]:
    """The members of a config record, in ``localeCompare`` order of their keys."""
    members = list(js_entries(record(section)))
    members.sort(key=lambda item: locale_sort_key(item[0]))
    return members


def string_members(value: object, *keys: str) -> Entry:
    """The string-valued ``keys`` of ``value`` (when it is a record), in ``keys`` order."""
    if not is_record(value):
        return {}
    return {key: value[key] for key in keys if isinstance(value.get(key), str)}


def sorted_by(items: Iterable[Entry], *fields: str) -> list[Entry]:
    """``toSorted`` comparing ``fields`` in turn with ``localeCompare`` (stable)."""

    def compare(a: Entry, b: Entry) -> int:
        for field in fields:
            result = locale_compare(a[field], b[field])
            if result:
                return result
        return 0

    return sorted(items, key=cmp_to_key(compare))


def oc_path_segment(value: str) -> str:
    if _OC_PLAIN_SEGMENT.match(value):
        return value
    if '"' in value or "\\" in value:
        return value
    return f'"{value}"'


def config_source(path: Iterable[str]) -> str:
    """The ``oc://openclaw.config/...`` path of a config location, segments quoted as needed."""
    return "/".join((CONFIG_ROOT, *(oc_path_segment(part) for part in path)))


def normalize_provider_id(provider: str) -> str:
    normalized = js_lower(js_trim(provider))
    return _PROVIDER_ALIASES.get(normalized, normalized)


@dataclass(frozen=True, slots=True)
class AgentScope:
    """Where a per-agent setting is read: the defaults, or one agent of ``agents.list``.

    An agent inherits from the defaults (``agents.defaults.sandbox``, the global
    ``tools``); the defaults scope inherits nothing.
    """

    pid: str
    scope: str
    agent_id: str | None
    sandbox: dict[str, Any]
    inherited_sandbox: dict[str, Any]
    tools: dict[str, Any]
    inherited_tools: dict[str, Any]
    agent_base: str
    tools_base: str

    def entry(self, eid: str, kind: str, source: str) -> Entry:
        entry: Entry = {"id": eid, "kind": kind, "source": source, "scope": self.scope}
        if self.agent_id is not None:
            entry["agentId"] = self.agent_id
        return entry

    def tools_source(self, suffix: str, *, inherited: bool) -> str:
        return f"{GLOBAL_TOOLS_BASE if inherited else self.tools_base}/{suffix}"


def _agent_id(agent: dict[str, Any]) -> str | None:
    raw = agent.get("id")
    if isinstance(raw, str) and js_trim(raw) != "":
        return js_trim(raw)
    return None


def agent_scopes(cfg: dict[str, Any], *, defaults_id: str, defaults_scope: str) -> list[AgentScope]:
    """The defaults scope, then one scope per record of ``agents.list``, in list order."""
    agents = record(cfg.get("agents"))
    default_sandbox = record(record(agents.get("defaults")).get("sandbox"))
    global_tools = record(cfg.get("tools"))
    scopes = [
        AgentScope(
            pid=defaults_id,
            scope=defaults_scope,
            agent_id=None,
            sandbox=default_sandbox,
            inherited_sandbox={},
            tools=global_tools,
            inherited_tools={},
            agent_base=DEFAULTS_AGENT_BASE,
            tools_base=GLOBAL_TOOLS_BASE,
        )
    ]
    agent_list = agents.get("list")
    for index, agent in enumerate(agent_list if isinstance(agent_list, list) else []):
        if not is_record(agent):
            continue
        agent_id = _agent_id(agent)
        scopes.append(
            AgentScope(
                pid=agent_id if agent_id is not None else f"agent-{index}",
                scope="agent",
                agent_id=agent_id,
                sandbox=record(agent.get("sandbox")),
                inherited_sandbox=default_sandbox,
                tools=record(agent.get("tools")),
                inherited_tools=global_tools,
                agent_base=f"{CONFIG_ROOT}/agents/list/#{index}",
                tools_base=f"{CONFIG_ROOT}/agents/list/#{index}/tools",
            )
        )
    return scopes
