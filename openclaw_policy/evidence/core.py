"""Channels, MCP servers, model providers and refs, private-network flags.

Upstream ``policy-state-core.ts``: the five evidence sections every policy
check collects, whatever rules the policy has.
"""

from __future__ import annotations

import re
from typing import Any, Final
from urllib.parse import urlsplit

from openclaw_policy.collation import locale_sort_key
from openclaw_policy.evidence.common import (
    CONFIG_ROOT,
    Entry,
    config_source,
    normalize_provider_id,
    oc_path_segment,
    record,
    sorted_by,
    sorted_members,
    string_members,
)
from openclaw_policy.jsutil import is_record, js_entries, js_keys, js_trim, read_boolean_path

__all__ = [
    "scan_policy_channels",
    "scan_policy_mcp_servers",
    "scan_policy_model_providers",
    "scan_policy_model_refs",
    "scan_policy_network",
]

RESERVED_CHANNEL_CONFIG_KEYS: Final = frozenset({"defaults", "modelByChannel"})


def scan_policy_channels(cfg: dict[str, Any]) -> list[Entry]:
    out: list[Entry] = []
    for cid, value in sorted_members(cfg.get("channels")):
        if cid in RESERVED_CHANNEL_CONFIG_KEYS:
            continue
        # the channel id is not quoted in this path (upstream writes it verbatim)
        entry: Entry = {"id": cid, "provider": cid, "source": f"{CONFIG_ROOT}/channels/{cid}"}
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
    out: list[Entry] = []
    for sid, value in sorted_members(record(cfg.get("mcp")).get("servers")):
        entry: Entry = {
            "id": sid,
            "transport": _mcp_transport(value),
            "source": config_source(("mcp", "servers", sid)),
            **string_members(value, "command"),
        }
        if is_record(value) and isinstance(value.get("url"), str):
            entry["url"] = _redact_mcp_url(value["url"])
        out.append(entry)
    return out


def scan_policy_model_providers(cfg: dict[str, Any]) -> list[Entry]:
    providers = js_keys(record(record(cfg.get("models")).get("providers")))
    providers.sort(key=locale_sort_key)
    return [
        {"id": normalize_provider_id(pid), "source": f"{CONFIG_ROOT}/models/providers/{pid}"}
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
        _collect_model_refs_from_record(refs, agents, f"{CONFIG_ROOT}/agents")
        defaults = agents.get("defaults")
        if is_record(defaults) and is_record(defaults.get("models")):
            _collect_model_refs_from_map(
                refs, defaults["models"], f"{CONFIG_ROOT}/agents/defaults/models"
            )
        agent_list = agents.get("list")
        if isinstance(agent_list, list):
            for index, agent in enumerate(agent_list):
                if is_record(agent) and is_record(agent.get("models")):
                    _collect_model_refs_from_map(
                        refs, agent["models"], f"{CONFIG_ROOT}/agents/list/#{index}/models"
                    )
    return sorted_by(refs, "provider", "model")


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
            out.append({"id": nid, "source": config_source(path), "value": value})
    return out
