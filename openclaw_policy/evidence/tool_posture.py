"""Tool posture: profile, allow/deny lists, filesystem, exec and elevated settings.

Upstream ``policy-state-tool-posture.ts``: the global ``tools`` config, then
every agent of ``agents.list`` with the value it effectively runs with (its
own, else the inherited global one, else the runtime default) and where that
value comes from.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from openclaw_policy.collation import locale_sort_key
from openclaw_policy.evidence.common import (
    AgentScope,
    Entry,
    agent_scopes,
    oc_path_segment,
    record,
    sorted_by,
)
from openclaw_policy.jsutil import js_keys, js_trim, read_boolean, read_string, read_string_array
from openclaw_policy.stable_json import js_number

__all__ = ["scan_policy_tool_posture"]

_Reader = Callable[[object], "bool | str | None"]

#: ``(setting path under tools, entry kind, reader, runtime default)``; a ``None``
#: default is derived (exec security follows the exec host and the sandbox).
_LAYERED: Final[tuple[tuple[str, str, _Reader, bool | str | None], ...]] = (
    ("profile", "profile", read_string, "full"),
    ("fs/workspaceOnly", "fsWorkspaceOnly", read_boolean, False),
    ("exec/host", "execHost", read_string, "auto"),
    ("exec/security", "execSecurity", read_string, None),
    ("exec/ask", "execAsk", read_string, "off"),
)


def _at(tools: dict[str, Any], path: str) -> object:
    *sections, key = path.split("/")
    for section in sections:
        tools = record(tools.get(section))
    return tools.get(key)


def _push(
    out: list[Entry],
    scope: AgentScope,
    suffix: str,
    kind: str,
    *,
    inherited: bool,
    **members: object,
) -> None:
    entry = scope.entry(
        f"{scope.pid}-{suffix.replace('/', '-')}",
        kind,
        scope.tools_source(suffix, inherited=inherited),
    )
    entry |= members
    out.append(entry)


def _default_exec_security(scope: AgentScope, host: object) -> str:
    sandbox_mode = read_string(scope.sandbox.get("mode")) or read_string(
        scope.inherited_sandbox.get("mode")
    )
    sandbox_can_apply = sandbox_mode == "all"
    return "deny" if host == "sandbox" or (host == "auto" and sandbox_can_apply) else "full"


def _push_layered(
    entries: list[Entry],
    scope: AgentScope,
    layered: tuple[tuple[str, str, _Reader, bool | str | None], ...],
    values: dict[str, object],
) -> None:
    for path, kind, reader, default in layered:
        own = reader(_at(scope.tools, path))
        inherited = reader(_at(scope.inherited_tools, path))
        if default is None:
            default = _default_exec_security(scope, values["execHost"])
        value = next(v for v in (own, inherited, default) if v is not None)
        values[kind] = value
        _push(
            entries,
            scope,
            path,
            kind,
            inherited=own is None and inherited is not None,
            value=value,
            explicit=own is not None or inherited is not None,
        )


def _push_merged_list(entries: list[Entry], scope: AgentScope, key: str) -> None:
    """``tools.allow`` / ``tools.deny``: an agent's list adds to the global one."""
    own = read_string_array(scope.tools.get(key))
    inherited = read_string_array(scope.inherited_tools.get(key))
    _push(
        entries,
        scope,
        key,
        key,
        inherited=not own and bool(inherited),
        entries=[*inherited, *own],
        explicit=bool(own) or bool(inherited),
    )


def _push_also_allow(entries: list[Entry], scope: AgentScope) -> None:
    """``tools.alsoAllow``: an agent's list, even an empty one, replaces the global one."""
    own = scope.tools.get("alsoAllow")
    inherited = scope.inherited_tools.get("alsoAllow")
    own_configured = isinstance(own, list)
    inherited_configured = isinstance(inherited, list)
    use_inherited = not own_configured and inherited_configured
    _push(
        entries,
        scope,
        "alsoAllow",
        "alsoAllow",
        inherited=use_inherited,
        entries=read_string_array(inherited if use_inherited else own),
        explicit=own_configured or inherited_configured,
    )


def _read_string_or_number_array(value: object) -> list[str]:
    if not isinstance(value, list):
        return []
    out: list[str] = []
    for entry in value:
        if isinstance(entry, str) and js_trim(entry) != "":
            out.append(js_trim(entry))
        elif isinstance(entry, int | float) and not isinstance(entry, bool):
            text = js_number(entry)
            if text != "null":
                out.append(text)
    return out


def _push_elevated(entries: list[Entry], scope: AgentScope) -> None:
    own_elevated = record(scope.tools.get("elevated"))
    inherited_elevated = record(scope.inherited_tools.get("elevated"))
    own = read_boolean(own_elevated.get("enabled"))
    inherited = read_boolean(inherited_elevated.get("enabled"))
    # a global ``enabled: false`` cannot be re-enabled by an agent
    if inherited is False:
        effective = False
    elif own is not None:
        effective = own
    elif inherited is not None:
        effective = inherited
    else:
        effective = True
    _push(
        entries,
        scope,
        "elevated/enabled",
        "elevatedEnabled",
        inherited=(inherited is False and own is not False)
        or (own is None and inherited is not None),
        value=effective,
        explicit=own is not None or inherited is not None,
    )
    own_from = record(own_elevated.get("allowFrom"))
    inherited_from = record(inherited_elevated.get("allowFrom"))
    providers = list(dict.fromkeys([*js_keys(inherited_from), *js_keys(own_from)]))
    providers.sort(key=locale_sort_key)
    for provider in providers:
        own_entries = _read_string_or_number_array(own_from.get(provider))
        inherited_entries = _read_string_or_number_array(inherited_from.get(provider))
        segment = oc_path_segment(provider)
        entry = scope.entry(
            f"{scope.pid}-elevated-allow-from-{segment}",
            "elevatedAllowFrom",
            scope.tools_source(
                f"elevated/allowFrom/{segment}",
                inherited=not own_entries and bool(inherited_entries),
            ),
        )
        entry["entries"] = own_entries if own_entries else inherited_entries
        entry["explicit"] = bool(own_entries) or bool(inherited_entries)
        entries.append(entry)


def scan_policy_tool_posture(cfg: dict[str, Any]) -> list[Entry]:
    entries: list[Entry] = []
    for scope in agent_scopes(cfg, defaults_id="tools", defaults_scope="global"):
        values: dict[str, object] = {}
        _push_layered(entries, scope, _LAYERED[:1], values)
        _push_merged_list(entries, scope, "allow")
        _push_also_allow(entries, scope)
        _push_merged_list(entries, scope, "deny")
        _push_layered(entries, scope, _LAYERED[1:], values)
        _push_elevated(entries, scope)
    return sorted_by(entries, "source", "id")
