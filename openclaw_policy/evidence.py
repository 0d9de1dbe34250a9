"""Observed OpenClaw state ("evidence") for policy checks.

A port of OpenClaw's ``extensions/policy/src/policy-state*.ts`` scanners. Each
scanner returns plain dicts whose keys, optional members and order match the
upstream objects, because the evidence object is hashed (``workspace.hash``)
and printed verbatim. Secret values are never copied: secrets evidence holds
provider/source metadata and ``oc://`` paths only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from openclaw_policy.collation import locale_compare, locale_sort_key
from openclaw_policy.jsutil import (
    JS_WHITESPACE,
    UNDEFINED,
    is_record,
    js_entries,
    js_keys,
    js_lower,
    js_trim,
    read_boolean,
    read_boolean_path,
    read_string,
    read_string_array,
)

__all__ = [
    "AGENT_WORKSPACE_POLICY_TOOLS",
    "POLICY_TOOL_GROUPS",
    "EvidenceOptions",
    "collect_policy_evidence",
    "expand_policy_tool_requirement",
    "normalize_provider_id",
    "oc_path_segment",
    "scan_policy_tools",
    "tool_list_covers_tool",
]

Entry = dict[str, Any]

RESERVED_CHANNEL_CONFIG_KEYS: Final = frozenset({"defaults", "modelByChannel"})
AGENT_WORKSPACE_POLICY_TOOLS: Final = ("exec", "process", "write", "edit", "apply_patch")

#: Canonical OpenClaw tool groups (``tool-policy-conformance.ts``).
POLICY_TOOL_GROUPS: Final[dict[str, tuple[str, ...]]] = {
    "group:openclaw": (
        "code_execution",
        "web_search",
        "web_fetch",
        "x_search",
        "memory_search",
        "memory_get",
        "sessions_list",
        "sessions_history",
        "sessions_send",
        "sessions_spawn",
        "sessions_yield",
        "subagents",
        "session_status",
        "browser",
        "message",
        "heartbeat_respond",
        "cron",
        "gateway",
        "nodes",
        "agents_list",
        "get_goal",
        "create_goal",
        "update_goal",
        "update_plan",
        "skill_workshop",
        "image",
        "image_generate",
        "music_generate",
        "video_generate",
        "tts",
    ),
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
    if options.gateway_exposure:
        evidence["gatewayExposure"] = scan_policy_gateway_exposure(cfg)
    if options.agent_workspace:
        evidence["agentWorkspace"] = scan_policy_agent_workspace(cfg)
    if options.tool_posture:
        evidence["toolPosture"] = scan_policy_tool_posture(cfg)
    if options.secrets:
        evidence["secrets"] = scan_policy_secrets(cfg)
    if options.auth_profiles:
        evidence["authProfiles"] = scan_policy_auth_profiles(cfg)
    if options.tools_raw is not None:
        evidence["tools"] = scan_policy_tools(options.tools_raw)
    return evidence


# --- helpers -------------------------------------------------------------------------------


def _record(value: object) -> dict[str, Any]:
    return value if is_record(value) else {}


def _sorted_by(items: Iterable[Entry], *fields: str) -> list[Entry]:
    """``toSorted`` comparing ``fields`` in turn with ``localeCompare`` (stable)."""

    def compare(a: Entry, b: Entry) -> int:
        for field in fields:
            result = locale_compare(a[field], b[field])
            if result:
                return result
        return 0

    from functools import cmp_to_key

    return sorted(items, key=cmp_to_key(compare))


def oc_path_segment(value: str) -> str:
    if _OC_PLAIN_SEGMENT.match(value):
        return value
    if '"' in value or "\\" in value:
        return value
    return f'"{value}"'


def normalize_provider_id(provider: str) -> str:
    normalized = js_lower(js_trim(provider))
    return _PROVIDER_ALIASES.get(normalized, normalized)


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


# --- channels, MCP, models, network ----------------------------------------------------


def scan_policy_channels(cfg: dict[str, Any]) -> list[Entry]:
    channels = [
        (cid, value)
        for cid, value in js_entries(_record(cfg.get("channels")))
        if cid not in RESERVED_CHANNEL_CONFIG_KEYS
    ]
    channels.sort(key=lambda item: locale_sort_key(item[0]))
    out: list[Entry] = []
    for cid, value in channels:
        entry: Entry = {
            "id": cid,
            "provider": cid,
            "source": f"oc://openclaw.config/channels/{cid}",
        }
        if is_record(value) and isinstance(value.get("enabled"), bool):
            entry["enabled"] = value["enabled"]
        out.append(entry)
    return out


def _mcp_transport(value: object) -> str:
    if not is_record(value):
        return "unknown"
    if isinstance(value.get("command"), str):
        return "stdio"
    if value.get("transport") in ("sse", "streamable-http"):
        return str(value["transport"])
    if isinstance(value.get("url"), str):
        return "streamable-http"
    return "unknown"


_SPECIAL_SCHEME_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21}
_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")


def _redact_mcp_url(raw: str) -> str:
    """``${url.protocol}//${url.host}`` of a WHATWG URL, ``[redacted-url]`` if it does not parse.

    An approximation of Node's URL parser: scheme and host are lowercased for
    special schemes and their default ports dropped; userinfo, path, query and
    fragment never reach the evidence.
    """
    text = raw.strip("\t\n\f\r \x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0e\x0f")
    match = _URL_SCHEME.match(text)
    if match is None:
        return "[redacted-url]"
    scheme = match.group(0)[:-1].lower()
    try:
        parts = urlsplit(text)
        hostname = parts.hostname
        port = parts.port
    except ValueError:
        return "[redacted-url]"
    if scheme in _SPECIAL_SCHEME_PORTS or scheme == "file":
        if scheme != "file" and not hostname:
            return "[redacted-url]"
        host = hostname or ""
        if not host.isascii():
            try:
                host = host.encode("idna").decode("ascii")
            except UnicodeError:
                return "[redacted-url]"
        if ":" in host:
            host = f"[{host}]"
        if port is not None and port != _SPECIAL_SCHEME_PORTS.get(scheme):
            host = f"{host}:{port}"
        return f"{scheme}://{host}"
    netloc = parts.netloc.rsplit("@", 1)[-1] if text[len(scheme) + 1 :].startswith("//") else ""
    return f"{scheme}://{netloc}"


def scan_policy_mcp_servers(cfg: dict[str, Any]) -> list[Entry]:
    servers = list(js_entries(_record(_record(cfg.get("mcp")).get("servers"))))
    servers.sort(key=lambda item: locale_sort_key(item[0]))
    out: list[Entry] = []
    for sid, value in servers:
        entry: Entry = {
            "id": sid,
            "transport": _mcp_transport(value),
            "source": f"oc://openclaw.config/mcp/servers/{oc_path_segment(sid)}",
        }
        if is_record(value):
            if isinstance(value.get("command"), str):
                entry["command"] = value["command"]
            if isinstance(value.get("url"), str):
                entry["url"] = _redact_mcp_url(value["url"])
        out.append(entry)
    return out


def scan_policy_model_providers(cfg: dict[str, Any]) -> list[Entry]:
    providers = js_keys(_record(_record(cfg.get("models")).get("providers")))
    providers.sort(key=locale_sort_key)
    return [
        {"id": normalize_provider_id(pid), "source": f"oc://openclaw.config/models/providers/{pid}"}
        for pid in providers
    ]


def _parse_model_ref(ref: str) -> tuple[str, str] | None:
    trimmed = js_trim(ref)
    slash = trimmed.find("/")
    if slash <= 0 or slash >= len(trimmed) - 1:
        return None
    return normalize_provider_id(trimmed[:slash]), trimmed[slash + 1 :]


def _push_model_ref(refs: list[Entry], ref: str, source: str) -> None:
    parsed = _parse_model_ref(ref)
    if parsed is None:
        return
    refs.append({"ref": ref, "provider": parsed[0], "model": parsed[1], "source": source})


def _collect_model_refs_from_value(refs: list[Entry], value: object, source: str) -> None:
    if isinstance(value, str):
        _push_model_ref(refs, value, source)
        return
    if not is_record(value):
        return
    if isinstance(value.get("primary"), str):
        _push_model_ref(refs, value["primary"], f"{source}/primary")
    fallbacks = value.get("fallbacks")
    if isinstance(fallbacks, list):
        for index, fallback in enumerate(fallbacks):
            if isinstance(fallback, str):
                _push_model_ref(refs, fallback, f"{source}/fallbacks/#{index}")


def _is_model_setting_key(key: str) -> bool:
    return key == "model" or key.endswith("Model")


def _collect_model_refs_from_record(refs: list[Entry], value: dict[str, Any], source: str) -> None:
    for key, child in js_entries(value):
        child_path = f"{source}/{key}"
        if _is_model_setting_key(key):
            _collect_model_refs_from_value(refs, child, child_path)
            continue
        if isinstance(child, list):
            for index, item in enumerate(child):
                if is_record(item):
                    _collect_model_refs_from_record(refs, item, f"{child_path}/#{index}")
            continue
        if is_record(child):
            _collect_model_refs_from_record(refs, child, child_path)


def _collect_model_refs_from_map(refs: list[Entry], models: dict[str, Any], source: str) -> None:
    for ref in js_keys(models):
        _push_model_ref(refs, ref, f"{source}/{oc_path_segment(ref)}")


def scan_policy_model_refs(cfg: dict[str, Any]) -> list[Entry]:
    refs: list[Entry] = []
    agents = cfg.get("agents")
    if is_record(agents):
        _collect_model_refs_from_record(refs, agents, "oc://openclaw.config/agents")
        defaults = agents.get("defaults")
        if is_record(defaults) and is_record(defaults.get("models")):
            _collect_model_refs_from_map(
                refs, defaults["models"], "oc://openclaw.config/agents/defaults/models"
            )
        agent_list = agents.get("list")
        if isinstance(agent_list, list):
            for index, agent in enumerate(agent_list):
                if is_record(agent) and is_record(agent.get("models")):
                    _collect_model_refs_from_map(
                        refs, agent["models"], f"oc://openclaw.config/agents/list/#{index}/models"
                    )
    return _sorted_by(refs, "provider", "model")


_NETWORK_FLAGS: Final = (
    ("browser-private-network", ("browser", "ssrfPolicy", "dangerouslyAllowPrivateNetwork")),
    ("browser-private-network-legacy", ("browser", "ssrfPolicy", "allowPrivateNetwork")),
    (
        "web-fetch-private-network",
        ("tools", "web", "fetch", "ssrfPolicy", "dangerouslyAllowPrivateNetwork"),
    ),
    (
        "web-fetch-private-network-legacy",
        ("tools", "web", "fetch", "ssrfPolicy", "allowPrivateNetwork"),
    ),
    (
        "web-fetch-rfc2544-benchmark-range",
        ("tools", "web", "fetch", "ssrfPolicy", "allowRfc2544BenchmarkRange"),
    ),
    (
        "web-fetch-ipv6-unique-local-range",
        ("tools", "web", "fetch", "ssrfPolicy", "allowIpv6UniqueLocalRange"),
    ),
)


def scan_policy_network(cfg: dict[str, Any]) -> list[Entry]:
    out: list[Entry] = []
    for nid, path in _NETWORK_FLAGS:
        value = read_boolean_path(cfg, path)
        if value is not None:
            out.append(
                {"id": nid, "source": "oc://openclaw.config/" + "/".join(path), "value": value}
            )
    return out


# --- gateway exposure ----------------------------------------------------------------------

_IPV4 = re.compile(
    r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
    r"(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}\Z"
)


def _is_gateway_non_loopback_bind(value: str) -> bool:
    return value in ("auto", "lan", "custom", "tailnet")


def _is_runtime_non_loopback_custom_bind_host(value: str) -> bool:
    normalized = js_lower(js_trim(value))
    return bool(_IPV4.match(normalized)) and not normalized.startswith("127.")


def _push_gateway_boolean(
    entries: list[Entry], gid: str, kind: str, value: object, source: str
) -> None:
    if isinstance(value, bool):
        entries.append({"id": gid, "kind": kind, "source": source, "value": value})


def _is_effective_url_allowlist_entry(value: object) -> bool:
    if not isinstance(value, str):
        return False
    normalized = js_lower(js_trim(value))
    return normalized not in ("", "*", "*.")


def _push_gateway_url_fetch(
    entries: list[Entry], endpoint_source: str, endpoint: str, path: tuple[str, ...], value: object
) -> None:
    allow_url = value.get("allowUrl", UNDEFINED) if is_record(value) else UNDEFINED
    if allow_url is False or (allow_url is not True and endpoint != "responses"):
        return
    allowlist = value.get("urlAllowlist") if is_record(value) else None
    has_allowlist = isinstance(allowlist, list) and any(
        _is_effective_url_allowlist_entry(entry) for entry in allowlist
    )
    entries.append(
        {
            "id": f"gateway-http-{endpoint}-{'-'.join(path)}-url-fetch",
            "kind": "httpUrlFetch",
            "source": f"{endpoint_source}/{'/'.join(oc_path_segment(p) for p in path)}/allowUrl",
            "value": True,
            "endpoint": endpoint,
            "explicit": allow_url is True,
            "hasAllowlist": has_allowlist,
        }
    )


def _push_gateway_http_endpoint(
    entries: list[Entry], endpoints: dict[str, Any], endpoint: str
) -> None:
    config = endpoints.get(endpoint)
    if not is_record(config):
        return
    source = f"oc://openclaw.config/gateway/http/endpoints/{endpoint}"
    if config.get("enabled") is not True:
        return
    entries.append(
        {
            "id": f"gateway-http-{endpoint}",
            "kind": "httpEndpoint",
            "source": f"{source}/enabled",
            "value": True,
            "endpoint": endpoint,
        }
    )
    if endpoint == "chatCompletions":
        _push_gateway_url_fetch(entries, source, endpoint, ("images",), config.get("images"))
        return
    _push_gateway_url_fetch(entries, source, endpoint, ("files",), config.get("files"))
    _push_gateway_url_fetch(entries, source, endpoint, ("images",), config.get("images"))


def scan_policy_gateway_exposure(cfg: dict[str, Any]) -> list[Entry]:
    gateway = _record(cfg.get("gateway"))
    entries: list[Entry] = []
    bind = gateway["bind"] if isinstance(gateway.get("bind"), str) else None
    custom_host = (
        gateway["customBindHost"] if isinstance(gateway.get("customBindHost"), str) else None
    )
    has_custom_host = custom_host is not None and js_trim(custom_host) != ""
    tailscale = _record(gateway.get("tailscale"))
    tailscale_mode = tailscale.get("mode")
    forces_loopback = tailscale_mode in ("serve", "funnel")
    if bind is None:
        non_loopback = not forces_loopback
    elif bind == "custom":
        non_loopback = False
    else:
        non_loopback = _is_gateway_non_loopback_bind(bind)
    entries.append(
        {
            "id": "gateway-bind-default" if bind is None else "gateway-bind",
            "kind": "bind",
            "source": "oc://openclaw.config/gateway/bind",
            "value": bind
            if bind is not None
            else ("loopback" if forces_loopback else "runtime-default"),
            "nonLoopback": non_loopback,
            "explicit": bind is not None,
        }
    )
    if bind == "custom" and has_custom_host and custom_host is not None:
        entries.append(
            {
                "id": "gateway-custom-bind-host",
                "kind": "bind",
                "source": "oc://openclaw.config/gateway/customBindHost",
                "value": custom_host,
                "nonLoopback": _is_runtime_non_loopback_custom_bind_host(custom_host),
            }
        )
    auth = _record(gateway.get("auth"))
    auth_mode = auth.get("mode")
    entries.append(
        {
            "id": "gateway-auth-mode",
            "kind": "auth",
            "source": "oc://openclaw.config/gateway/auth/mode",
            "value": auth_mode if isinstance(auth_mode, str) else "token",
            "explicit": isinstance(auth_mode, str),
        }
    )
    rate_limit = is_record(auth.get("rateLimit"))
    entries.append(
        {
            "id": "gateway-auth-rate-limit",
            "kind": "authRateLimit",
            "source": "oc://openclaw.config/gateway/auth/rateLimit",
            "value": rate_limit,
            "explicit": rate_limit,
        }
    )
    control_ui = _record(gateway.get("controlUi"))
    base = "oc://openclaw.config/gateway/controlUi"
    for gid, key in (
        ("gateway-control-ui-enabled", "enabled"),
        ("gateway-control-ui-insecure-auth", "allowInsecureAuth"),
        ("gateway-control-ui-device-auth-disabled", "dangerouslyDisableDeviceAuth"),
        ("gateway-control-ui-host-origin-fallback", "dangerouslyAllowHostHeaderOriginFallback"),
    ):
        _push_gateway_boolean(entries, gid, "controlUi", control_ui.get(key), f"{base}/{key}")
    if isinstance(tailscale_mode, str):
        entries.append(
            {
                "id": "gateway-tailscale-mode",
                "kind": "tailscale",
                "source": "oc://openclaw.config/gateway/tailscale/mode",
                "value": tailscale_mode,
            }
        )
    if tailscale_mode == "serve" and tailscale.get("preserveFunnel") is True:
        entries.append(
            {
                "id": "gateway-tailscale-preserve-funnel",
                "kind": "tailscale",
                "source": "oc://openclaw.config/gateway/tailscale/preserveFunnel",
                "value": "funnel",
            }
        )
    remote = _record(gateway.get("remote"))
    if gateway.get("mode") == "remote":
        entries.append(
            {
                "id": "gateway-mode-remote",
                "kind": "remote",
                "source": "oc://openclaw.config/gateway/mode",
                "value": "remote",
            }
        )
        url = remote.get("url")
        if isinstance(url, str) and js_trim(url) != "":
            entries.append(
                {
                    "id": "gateway-remote-url",
                    "kind": "remote",
                    "source": "oc://openclaw.config/gateway/remote/url",
                    "value": True,
                }
            )
    endpoints = _record(_record(gateway.get("http")).get("endpoints"))
    _push_gateway_http_endpoint(entries, endpoints, "chatCompletions")
    _push_gateway_http_endpoint(entries, endpoints, "responses")
    return _sorted_by(entries, "source")


# --- agent workspace -----------------------------------------------------------------------


def _sandbox_tool_deny_entries(tools: dict[str, Any]) -> list[str] | None:
    sandbox_tools = _record(_record(tools.get("sandbox")).get("tools"))
    deny = sandbox_tools.get("deny")
    return read_string_array(deny) if isinstance(deny, list) else None


def _agent_workspace_tool_deny(
    tools: dict[str, Any],
    inherited_tools: dict[str, Any],
    tools_base: str,
    inherited_tools_base: str,
    tool: str,
    sandbox_covers_main: bool,
) -> tuple[bool, str]:
    sources: list[tuple[list[str], str]] = [
        (read_string_array(tools.get("deny")), f"{tools_base}/deny"),
        (read_string_array(inherited_tools.get("deny")), f"{inherited_tools_base}/deny"),
    ]
    if sandbox_covers_main:
        local = _sandbox_tool_deny_entries(tools)
        if local is not None:
            sources.append((local, f"{tools_base}/sandbox/tools/deny"))
        else:
            inherited = _sandbox_tool_deny_entries(inherited_tools)
            sources.append((inherited or [], f"{inherited_tools_base}/sandbox/tools/deny"))
    for entries, source in sources:
        if tool_list_covers_tool(entries, tool):
            return True, source
    return False, f"{tools_base}/deny"


def _push_agent_workspace(
    entries: list[Entry],
    *,
    eid: str,
    scope: str,
    agent_id: str | None,
    sandbox: dict[str, Any],
    inherited_sandbox: dict[str, Any],
    tools: dict[str, Any],
    inherited_tools: dict[str, Any],
    workspace_base: str,
    inherited_workspace_base: str,
    tools_base: str,
    inherited_tools_base: str,
) -> None:
    explicit_mode = read_string(sandbox.get("mode"))
    inherited_mode = read_string(inherited_sandbox.get("mode"))
    sandbox_mode = explicit_mode or inherited_mode or "off"
    covers_main = sandbox_mode == "all"
    if explicit_mode is not None:
        mode_source = f"{workspace_base}/sandbox/mode"
    elif inherited_mode is not None:
        mode_source = f"{inherited_workspace_base}/sandbox/mode"
    else:
        mode_source = "oc://openclaw.config/agents/defaults/sandbox/mode"
    explicit_access = read_string(sandbox.get("workspaceAccess"))
    inherited_access = read_string(inherited_sandbox.get("workspaceAccess"))
    if explicit_access is not None:
        access_source = f"{workspace_base}/sandbox/workspaceAccess"
    elif inherited_access is not None:
        access_source = f"{inherited_workspace_base}/sandbox/workspaceAccess"
    else:
        access_source = "oc://openclaw.config/agents/defaults/sandbox/workspaceAccess"
    entry: Entry = {
        "id": f"{eid}-workspace-access",
        "kind": "workspaceAccess",
        "source": access_source,
        "scope": scope,
    }
    if agent_id is not None:
        entry["agentId"] = agent_id
    entry |= {
        "value": explicit_access or inherited_access or "none",
        "sandboxMode": sandbox_mode,
        "sandboxModeSource": mode_source,
        "sandboxEnabled": covers_main,
        "explicit": explicit_access is not None,
    }
    entries.append(entry)
    for tool in AGENT_WORKSPACE_POLICY_TOOLS:
        denied, source = _agent_workspace_tool_deny(
            tools, inherited_tools, tools_base, inherited_tools_base, tool, covers_main
        )
        tool_entry: Entry = {
            "id": f"{eid}-tool-{tool}",
            "kind": "toolDeny",
            "source": source,
            "scope": scope,
        }
        if agent_id is not None:
            tool_entry["agentId"] = agent_id
        tool_entry |= {"tool": tool, "denied": denied, "explicit": denied}
        entries.append(tool_entry)


def _agent_id(agent: dict[str, Any]) -> str | None:
    raw = agent.get("id")
    if isinstance(raw, str) and js_trim(raw) != "":
        return js_trim(raw)
    return None


def scan_policy_agent_workspace(cfg: dict[str, Any]) -> list[Entry]:
    agents = _record(cfg.get("agents"))
    default_sandbox = _record(_record(agents.get("defaults")).get("sandbox"))
    default_tools = _record(cfg.get("tools"))
    entries: list[Entry] = []
    _push_agent_workspace(
        entries,
        eid="agents-defaults",
        scope="defaults",
        agent_id=None,
        sandbox=default_sandbox,
        inherited_sandbox={},
        tools=default_tools,
        inherited_tools={},
        workspace_base="oc://openclaw.config/agents/defaults",
        inherited_workspace_base="oc://openclaw.config/agents/defaults",
        tools_base="oc://openclaw.config/tools",
        inherited_tools_base="oc://openclaw.config/tools",
    )
    agent_list = agents.get("list")
    for index, agent in enumerate(agent_list if isinstance(agent_list, list) else []):
        if not is_record(agent):
            continue
        agent_id = _agent_id(agent)
        _push_agent_workspace(
            entries,
            eid=agent_id if agent_id is not None else f"agent-{index}",
            scope="agent",
            agent_id=agent_id,
            sandbox=_record(agent.get("sandbox")),
            inherited_sandbox=default_sandbox,
            tools=_record(agent.get("tools")),
            inherited_tools=default_tools,
            workspace_base=f"oc://openclaw.config/agents/list/#{index}",
            inherited_workspace_base="oc://openclaw.config/agents/defaults",
            tools_base=f"oc://openclaw.config/agents/list/#{index}/tools",
            inherited_tools_base="oc://openclaw.config/tools",
        )
    return _sorted_by(entries, "source", "id")


# --- tool posture --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _PostureParams:
    pid: str
    scope: str
    agent_id: str | None
    tools: dict[str, Any]
    inherited_tools: dict[str, Any]
    sandbox: dict[str, Any]
    inherited_sandbox: dict[str, Any]
    source_base: str
    inherited_source_base: str

    def head(self, eid: str, kind: str, source: str) -> Entry:
        entry: Entry = {"id": eid, "kind": kind, "source": source, "scope": self.scope}
        if self.agent_id is not None:
            entry["agentId"] = self.agent_id
        return entry


def _push_posture_value(
    entries: list[Entry],
    params: _PostureParams,
    *,
    suffix: str,
    kind: str,
    value: bool | str,
    explicit: bool,
    inherited: bool,
) -> None:
    base = params.inherited_source_base if inherited else params.source_base
    entry = params.head(f"{params.pid}-{suffix.replace('/', '-')}", kind, f"{base}/{suffix}")
    entry["value"] = value
    entry["explicit"] = explicit
    entries.append(entry)


def _push_posture_list(entries: list[Entry], params: _PostureParams, key: str) -> None:
    local = read_string_array(params.tools.get(key))
    inherited = read_string_array(params.inherited_tools.get(key))
    use_inherited = not local and bool(inherited)
    base = params.inherited_source_base if use_inherited else params.source_base
    entry = params.head(f"{params.pid}-{key}", key, f"{base}/{key}")
    entry["entries"] = [*inherited, *local]
    entry["explicit"] = bool(local) or bool(inherited)
    entries.append(entry)


def _push_also_allow(entries: list[Entry], params: _PostureParams) -> None:
    local_value = params.tools.get("alsoAllow")
    inherited_value = params.inherited_tools.get("alsoAllow")
    local_configured = isinstance(local_value, list)
    inherited_configured = isinstance(inherited_value, list)
    use_inherited = not local_configured and inherited_configured
    base = params.inherited_source_base if use_inherited else params.source_base
    entry = params.head(f"{params.pid}-alsoAllow", "alsoAllow", f"{base}/alsoAllow")
    entry["entries"] = (
        read_string_array(inherited_value) if use_inherited else read_string_array(local_value)
    )
    entry["explicit"] = local_configured or inherited_configured
    entries.append(entry)


def _read_string_or_number_array(value: object) -> list[str]:
    from openclaw_policy.stable_json import js_number

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


def _push_tool_posture(entries: list[Entry], params: _PostureParams) -> None:
    tools, inherited_tools = params.tools, params.inherited_tools
    local_profile = read_string(tools.get("profile"))
    inherited_profile = read_string(inherited_tools.get("profile"))
    _push_posture_value(
        entries,
        params,
        suffix="profile",
        kind="profile",
        value=local_profile or inherited_profile or "full",
        explicit=local_profile is not None or inherited_profile is not None,
        inherited=local_profile is None and inherited_profile is not None,
    )
    _push_posture_list(entries, params, "allow")
    _push_also_allow(entries, params)
    _push_posture_list(entries, params, "deny")

    local_fs, inherited_fs = _record(tools.get("fs")), _record(inherited_tools.get("fs"))
    local_wo = read_boolean(local_fs.get("workspaceOnly"))
    inherited_wo = read_boolean(inherited_fs.get("workspaceOnly"))
    _push_posture_value(
        entries,
        params,
        suffix="fs/workspaceOnly",
        kind="fsWorkspaceOnly",
        value=local_wo
        if local_wo is not None
        else (inherited_wo if inherited_wo is not None else False),
        explicit=local_wo is not None or inherited_wo is not None,
        inherited=local_wo is None and inherited_wo is not None,
    )

    local_exec, inherited_exec = _record(tools.get("exec")), _record(inherited_tools.get("exec"))
    local_host = read_string(local_exec.get("host"))
    inherited_host = read_string(inherited_exec.get("host"))
    host = local_host or inherited_host or "auto"
    _push_posture_value(
        entries,
        params,
        suffix="exec/host",
        kind="execHost",
        value=host,
        explicit=local_host is not None or inherited_host is not None,
        inherited=local_host is None and inherited_host is not None,
    )
    local_security = read_string(local_exec.get("security"))
    inherited_security = read_string(inherited_exec.get("security"))
    sandbox_mode = read_string(params.sandbox.get("mode")) or read_string(
        params.inherited_sandbox.get("mode")
    )
    sandbox_can_apply = sandbox_mode == "all"
    default_security = (
        "deny" if host == "sandbox" or (host == "auto" and sandbox_can_apply) else "full"
    )
    _push_posture_value(
        entries,
        params,
        suffix="exec/security",
        kind="execSecurity",
        value=local_security or inherited_security or default_security,
        explicit=local_security is not None or inherited_security is not None,
        inherited=local_security is None and inherited_security is not None,
    )
    local_ask = read_string(local_exec.get("ask"))
    inherited_ask = read_string(inherited_exec.get("ask"))
    _push_posture_value(
        entries,
        params,
        suffix="exec/ask",
        kind="execAsk",
        value=local_ask or inherited_ask or "off",
        explicit=local_ask is not None or inherited_ask is not None,
        inherited=local_ask is None and inherited_ask is not None,
    )

    local_elevated = _record(tools.get("elevated"))
    inherited_elevated = _record(inherited_tools.get("elevated"))
    local_enabled = read_boolean(local_elevated.get("enabled"))
    inherited_enabled = read_boolean(inherited_elevated.get("enabled"))
    if inherited_enabled is False:
        effective = False
    elif local_enabled is not None:
        effective = local_enabled
    elif inherited_enabled is not None:
        effective = inherited_enabled
    else:
        effective = True
    _push_posture_value(
        entries,
        params,
        suffix="elevated/enabled",
        kind="elevatedEnabled",
        value=effective,
        explicit=local_enabled is not None or inherited_enabled is not None,
        inherited=(inherited_enabled is False and local_enabled is not False)
        or (local_enabled is None and inherited_enabled is not None),
    )
    local_from = _record(local_elevated.get("allowFrom"))
    inherited_from = _record(inherited_elevated.get("allowFrom"))
    providers = list(dict.fromkeys([*js_keys(inherited_from), *js_keys(local_from)]))
    providers.sort(key=locale_sort_key)
    for provider in providers:
        local_entries = _read_string_or_number_array(local_from.get(provider))
        inherited_entries = _read_string_or_number_array(inherited_from.get(provider))
        use_inherited = not local_entries and bool(inherited_entries)
        base = params.inherited_source_base if use_inherited else params.source_base
        segment = oc_path_segment(provider)
        entry = params.head(
            f"{params.pid}-elevated-allow-from-{segment}",
            "elevatedAllowFrom",
            f"{base}/elevated/allowFrom/{segment}",
        )
        entry["entries"] = local_entries if local_entries else inherited_entries
        entry["explicit"] = bool(local_entries) or bool(inherited_entries)
        entries.append(entry)


def scan_policy_tool_posture(cfg: dict[str, Any]) -> list[Entry]:
    global_tools = _record(cfg.get("tools"))
    agents = _record(cfg.get("agents"))
    default_sandbox = _record(_record(agents.get("defaults")).get("sandbox"))
    entries: list[Entry] = []
    _push_tool_posture(
        entries,
        _PostureParams(
            pid="tools",
            scope="global",
            agent_id=None,
            tools=global_tools,
            inherited_tools={},
            sandbox=default_sandbox,
            inherited_sandbox={},
            source_base="oc://openclaw.config/tools",
            inherited_source_base="oc://openclaw.config/tools",
        ),
    )
    agent_list = agents.get("list")
    for index, agent in enumerate(agent_list if isinstance(agent_list, list) else []):
        if not is_record(agent):
            continue
        agent_id = _agent_id(agent)
        _push_tool_posture(
            entries,
            _PostureParams(
                pid=agent_id if agent_id is not None else f"agent-{index}",
                scope="agent",
                agent_id=agent_id,
                tools=_record(agent.get("tools")),
                inherited_tools=global_tools,
                sandbox=_record(agent.get("sandbox")),
                inherited_sandbox=default_sandbox,
                source_base=f"oc://openclaw.config/agents/list/#{index}/tools",
                inherited_source_base="oc://openclaw.config/tools",
            ),
        )
    return _sorted_by(entries, "source", "id")


# --- secrets and auth profiles -------------------------------------------------------------

_SECRET_INPUT_KEYS: Final = frozenset(
    {
        "apikey",
        "keyref",
        "token",
        "tokenref",
        "password",
        "secret",
        "encryptkey",
        "webhooksecret",
        "serviceaccount",
        "serviceaccountref",
        "privatekey",
        "certificate",
        "certificatedata",
        "identitydata",
        "knownhosts",
        "knownhostsdata",
    }
)
_ENV_TEMPLATE = re.compile(r"\$\{([A-Z][A-Z0-9_]{0,127})\}\Z")
_ENV_SHORTHAND = re.compile(r"\$([A-Z][A-Z0-9_]{0,127})\Z")
_ENV_ID = re.compile(r"[A-Z][A-Z0-9_]{0,127}\Z")
_LEGACY_ENV_PREFIXES: Final = ("secretref-env:", "__env__:")


def _matches_prefix(path: list[str], prefix: tuple[str, ...]) -> bool:
    if len(path) < len(prefix):
        return False
    for segment, value in zip(prefix, path, strict=False):
        if segment == "*":
            if value == "":
                return False
        elif segment == "#":
            if not value.startswith("#"):
                return False
        elif value != segment:
            return False
    return True


def _matches_path(path: list[str], pattern: tuple[str, ...]) -> bool:
    return len(path) == len(pattern) and _matches_prefix(path, pattern)


def _is_provider_request_secret_path(path: list[str], prefix: tuple[str, ...]) -> bool:
    if len(path) < len(prefix) + 3 or not _matches_prefix(path, prefix):
        return False
    if path[len(prefix)] != "request":
        return False
    suffix = path[len(prefix) + 1 :]
    tls_keys = ("ca", "cert", "key", "passphrase")
    if len(suffix) == 2 and suffix[0] == "headers":
        return True
    if len(suffix) == 2 and suffix[0] == "auth" and suffix[1] in ("token", "value"):
        return True
    if len(suffix) == 2 and suffix[0] == "tls" and suffix[1] in tls_keys:
        return True
    return (
        len(suffix) == 3 and suffix[0] == "proxy" and suffix[1] == "tls" and suffix[2] in tls_keys
    )


_MEDIA_REQUEST_PREFIXES: Final = (
    ("tools", "media", "models", "#"),
    ("tools", "media", "audio"),
    ("tools", "media", "audio", "models", "#"),
    ("tools", "media", "image"),
    ("tools", "media", "image", "models", "#"),
    ("tools", "media", "video"),
    ("tools", "media", "video", "models", "#"),
)


def _is_secret_input_key(key: str) -> bool:
    normalized = js_lower(key)
    return normalized in _SECRET_INPUT_KEYS or normalized.endswith(
        ("apikey", "token", "secret", "password")
    )


def _is_secret_input_path(path: list[str]) -> bool:
    if not path:
        return False
    if _matches_path(path, ("plugins", "entries", "acpx", "config", "mcpServers", "*", "env", "*")):
        return True
    if len(path) >= 2 and path[-2] == "env":
        return False
    if _is_secret_input_key(path[-1]):
        return True
    return (
        _matches_path(path, ("models", "providers", "*", "headers", "*"))
        or _is_provider_request_secret_path(path, ("models", "providers", "*"))
        or any(_is_provider_request_secret_path(path, p) for p in _MEDIA_REQUEST_PREFIXES)
        or _matches_path(path, ("agents", "defaults", "memorySearch", "remote", "headers", "*"))
        or _matches_path(path, ("diagnostics", "otel", "headers", "*"))
    )


def _coerce_secret_ref(value: object, defaults: dict[str, str]) -> tuple[str, str] | None:
    """``coerceSecretRef`` → ``(source, provider)`` or ``None`` (values are never kept)."""
    default_env = defaults.get("env")
    if is_record(value):
        source, provider, ident = value.get("source"), value.get("provider"), value.get("id")
        if (
            len(value) == 3
            and isinstance(source, str)
            and js_trim(source) != ""
            and isinstance(provider, str)
            and js_trim(provider) != ""
            and isinstance(ident, str)
            and js_trim(ident) != ""
        ):
            return source, provider
    if isinstance(value, str):
        trimmed = js_trim(value)
        for prefix in _LEGACY_ENV_PREFIXES:
            if trimmed.startswith(prefix):
                if _ENV_ID.match(trimmed[len(prefix) :]):
                    return "env", _alias(default_env)
                break
    if is_record(value):
        source, ident = value.get("source"), value.get("id")
        if (
            isinstance(source, str)
            and js_trim(source) != ""
            and isinstance(ident, str)
            and js_trim(ident) != ""
            and "provider" not in value
        ):
            if source in ("env", "file", "exec"):
                configured = defaults.get(source)
                return source, configured if configured is not None else "default"
            return source, "default"
    if isinstance(value, str):
        trimmed = js_trim(value)
        if _ENV_TEMPLATE.match(trimmed) or _ENV_SHORTHAND.match(trimmed):
            return "env", _alias(default_env)
    return None


def _alias(provider: str | None) -> str:
    if provider is None:
        return "default"
    trimmed = js_trim(provider)
    return trimmed if trimmed else "default"


def _secret_defaults(value: object) -> dict[str, str]:
    if not is_record(value):
        return {}
    return {k: value[k] for k in ("env", "file", "exec") if isinstance(value.get(k), str)}


def _config_path_source(path: list[str]) -> str:
    return "oc://openclaw.config/" + "/".join(oc_path_segment(p) for p in path)


def _collect_secret_inputs(
    entries: list[Entry], value: object, path: list[str], defaults: dict[str, str]
) -> None:
    if isinstance(value, list):
        for index, item in enumerate(value):
            _collect_secret_inputs(entries, item, [*path, f"#{index}"], defaults)
        return
    if not is_record(value):
        return
    for key, child in js_entries(value):
        child_path = [*path, key]
        source = _config_path_source(child_path)
        ref = _coerce_secret_ref(child, defaults) if _is_secret_input_path(child_path) else None
        if ref is not None:
            entries.append(
                {
                    "id": source,
                    "kind": "input",
                    "source": source,
                    "provenance": "secretRef",
                    "refSource": ref[0],
                    "refProvider": ref[1],
                }
            )
            continue
        _collect_secret_inputs(entries, child, child_path, defaults)


def _secret_provider_insecure_flags(value: object) -> list[str]:
    if not is_record(value):
        return []
    flags = []
    if value.get("allowInsecurePath") is True:
        flags.append("allowInsecurePath")
    if value.get("allowSymlinkCommand") is True:
        flags.append("allowSymlinkCommand")
    return flags


def scan_policy_secrets(cfg: dict[str, Any]) -> list[Entry]:
    secrets = _record(cfg.get("secrets"))
    entries: list[Entry] = []
    for pid, value in js_entries(_record(secrets.get("providers"))):
        entry: Entry = {
            "id": pid,
            "kind": "provider",
            "source": f"oc://openclaw.config/secrets/providers/{oc_path_segment(pid)}",
        }
        if is_record(value) and isinstance(value.get("source"), str):
            entry["providerSource"] = value["source"]
        insecure = _secret_provider_insecure_flags(value)
        if insecure:
            entry["insecure"] = insecure
        entries.append(entry)
    _collect_secret_inputs(entries, cfg, [], _secret_defaults(secrets.get("defaults")))
    return _sorted_by(entries, "source")


_AUTH_PROFILE_MODES: Final = ("api_key", "aws-sdk", "oauth", "token")


def _is_valid_auth_profile(value: object) -> bool:
    if not is_record(value):
        return False
    provider = value.get("provider")
    return (
        isinstance(provider, str)
        and js_trim(provider) != ""
        and value.get("mode") in _AUTH_PROFILE_MODES
        and isinstance(value.get("mode"), str)
    )


def scan_policy_auth_profiles(cfg: dict[str, Any]) -> list[Entry]:
    profiles = list(js_entries(_record(_record(cfg.get("auth")).get("profiles"))))
    profiles.sort(key=lambda item: locale_sort_key(item[0]))
    out: list[Entry] = []
    for pid, value in profiles:
        entry: Entry = {
            "id": pid,
            "source": f"oc://openclaw.config/auth/profiles/{oc_path_segment(pid)}",
            "validMetadata": _is_valid_auth_profile(value),
        }
        if is_record(value):
            if isinstance(value.get("provider"), str):
                entry["provider"] = value["provider"]
            if isinstance(value.get("mode"), str):
                entry["mode"] = value["mode"]
        out.append(entry)
    return out


# --- TOOLS.md ------------------------------------------------------------------------------

_WS: Final = JS_WHITESPACE
_DOT: Final = "[^\n\r\u2028\u2029]"  # JavaScript "." without the s flag
_HEADING_LINE = re.compile(rf"(#{{1,6}})[{_WS}]+({_DOT}+?)[{_WS}]*#*[{_WS}]*\Z", re.ASCII)
_TOOL_HEADING = re.compile(rf"###[{_WS}]+([^{_WS}#]+)({_DOT}*)\Z", re.ASCII)
_TOOL_BULLET = re.compile(rf"[-*+][{_WS}]+([^:{_WS}][^:]*?)[{_WS}]*:({_DOT}*)\Z", re.ASCII)
_NEXT_HEADING = re.compile(rf"###[{_WS}]+[^{_WS}]", re.ASCII)
_NEXT_BULLET = re.compile(rf"[-*+][{_WS}]+[^:{_WS}][^:]*?[{_WS}]*:", re.ASCII)
_SENSITIVITY = re.compile(
    rf"\bsensitivity[{_WS}]*:[{_WS}]*([a-z0-9_-]+)\b", re.ASCII | re.IGNORECASE
)
_OWNER = re.compile(rf"\bowner[{_WS}]*:[{_WS}]*([^{_WS}#]+)\b", re.ASCII | re.IGNORECASE)
_RISK = re.compile(rf"\brisk[{_WS}]*:[{_WS}]*([a-z0-9_-]+)\b", re.ASCII | re.IGNORECASE)
_RISK_ALIAS = re.compile(r"\bR([0-5])\b", re.ASCII)
_CAPABILITY_TOKEN = re.compile(r"\b[A-Z][A-Z0-9_]{2,}\b", re.ASCII)
_CAPABILITIES_LABEL = re.compile(rf"\bcapabilities[{_WS}]*:", re.ASCII | re.IGNORECASE)
_TOKEN_SEPARATORS = re.compile(rf"[{_WS},;:\[\](){{}}#*_-]*\Z", re.ASCII)
_NON_SLUG = re.compile(r"[^a-z0-9-]+")
_LINE_SPLIT = re.compile(r"\r?\n")
_RISK_ALIASES: Final = {
    "0": "low",
    "1": "low",
    "2": "medium",
    "3": "medium",
    "4": "high",
    "5": "critical",
}


def _slugify(text: str) -> str:
    slug = _NON_SLUG.sub("-", js_lower(text).replace("_", "-"))
    return re.sub(r"-+", "-", slug).strip("-")


def _markdown_section_lines(raw: str, section_slug: str) -> list[tuple[int, str]]:
    lines = _LINE_SPLIT.split(raw)
    depth: int | None = None
    section: list[tuple[int, str]] = []
    for index, line in enumerate(lines):
        heading = _HEADING_LINE.match(line)
        if heading is not None:
            level = len(heading.group(1))
            if depth is not None and level <= depth:
                break
            if depth is not None:
                section.append((index + 1, line))
                continue
            if _slugify(heading.group(2)) == section_slug:
                depth = level
            continue
        if depth is not None:
            section.append((index + 1, line))
    return section


def _risk_from_meta(meta: str) -> str | None:
    named = _RISK.search(meta)
    if named is not None:
        return js_lower(named.group(1))
    alias = _RISK_ALIAS.search(meta)
    return _RISK_ALIASES[alias.group(1)] if alias is not None else None


def _capability_tokens(lines: list[str]) -> list[str]:
    tokens_out: list[str] = []
    for index, line in enumerate(lines):
        trimmed = js_trim(line)
        if not trimmed:
            continue
        tokens = _CAPABILITY_TOKEN.findall(trimmed)
        if index == 0 or _CAPABILITIES_LABEL.search(trimmed):
            tokens_out.extend(tokens)
            continue
        remaining = trimmed
        for token in tokens:
            remaining = remaining.replace(token, "", 1)
        if _TOKEN_SEPARATORS.match(remaining):
            tokens_out.extend(tokens)
    return tokens_out


def scan_policy_tools(raw: str) -> list[Entry]:
    """Governed tool declarations from the ``## Tools`` section of ``TOOLS.md``."""
    section = _markdown_section_lines(raw, "tools")
    tools: list[Entry] = []
    for index, (line_no, line) in enumerate(section):
        match = _TOOL_HEADING.match(line) or _TOOL_BULLET.match(line)
        if match is None or not _slugify(match.group(1)):
            continue
        tid = _slugify(match.group(1))
        entry: Entry = {"id": tid, "source": f"oc://TOOLS.md/tools/{tid}", "line": line_no}
        meta_lines = [match.group(2) or ""]
        for _, meta_line in section[index + 1 :]:
            if _NEXT_HEADING.match(js_trim(meta_line)) or _NEXT_BULLET.match(meta_line):
                break
            meta_lines.append(meta_line)
        meta = "\n".join(meta_lines)
        risk = _risk_from_meta(meta)
        sensitivity = _SENSITIVITY.search(meta)
        owner = _OWNER.search(meta)
        capabilities = _capability_tokens(meta_lines)
        if risk is not None:
            entry["risk"] = risk
        if sensitivity is not None:
            entry["sensitivity"] = js_lower(sensitivity.group(1))
        if owner is not None:
            entry["owner"] = owner.group(1)
        if capabilities:
            entry["capabilities"] = capabilities
        tools.append(entry)
    return tools


#: Filter used by tool posture checks: entries of one kind.
PostureFilter = Callable[[Entry], bool]
