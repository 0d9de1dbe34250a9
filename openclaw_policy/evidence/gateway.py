"""Gateway exposure: bind, auth, Control UI, Tailscale, remote mode, HTTP endpoints.

Upstream ``policy-state-gateway.ts``. Every entry has ``id``, ``kind``,
``source`` and ``value`` first, in that order, then kind-specific members.
"""

from __future__ import annotations

import re
from typing import Any, Final

from openclaw_policy.evidence.common import CONFIG_ROOT, Entry, oc_path_segment, record, sorted_by
from openclaw_policy.jsutil import UNDEFINED, is_record, js_lower, js_trim

__all__ = ["scan_policy_gateway_exposure"]

_GATEWAY: Final = f"{CONFIG_ROOT}/gateway"
_CONTROL_UI_TOGGLES: Final = (
    ("gateway-control-ui-enabled", "enabled"),
    ("gateway-control-ui-insecure-auth", "allowInsecureAuth"),
    ("gateway-control-ui-device-auth-disabled", "dangerouslyDisableDeviceAuth"),
    ("gateway-control-ui-host-origin-fallback", "dangerouslyAllowHostHeaderOriginFallback"),
)

_IPV4 = re.compile(
    r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
    r"(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}\Z"
)


def _is_gateway_non_loopback_bind(value: str) -> bool:
    return value in ("auto", "lan", "custom", "tailnet")


def _is_runtime_non_loopback_custom_bind_host(value: str) -> bool:
    normalized = js_lower(js_trim(value))
    return bool(_IPV4.match(normalized)) and not normalized.startswith("127.")


def _entry(gid: str, kind: str, path: str, value: object, **extra: object) -> Entry:
    return {"id": gid, "kind": kind, "source": f"{_GATEWAY}/{path}", "value": value, **extra}


def _is_effective_url_allowlist_entry(value: object) -> bool:
    if not isinstance(value, str):
        return False
    normalized = js_lower(js_trim(value))
    return normalized not in ("", "*", "*.")


def _push_gateway_url_fetch(
    entries: list[Entry], endpoint_path: str, endpoint: str, path: tuple[str, ...], value: object
) -> None:
    allow_url = value.get("allowUrl", UNDEFINED) if is_record(value) else UNDEFINED
    if allow_url is False or (allow_url is not True and endpoint != "responses"):
        return
    allowlist = value.get("urlAllowlist") if is_record(value) else None
    has_allowlist = isinstance(allowlist, list) and any(
        _is_effective_url_allowlist_entry(entry) for entry in allowlist
    )
    entries.append(
        _entry(
            f"gateway-http-{endpoint}-{'-'.join(path)}-url-fetch",
            "httpUrlFetch",
            f"{endpoint_path}/{'/'.join(oc_path_segment(p) for p in path)}/allowUrl",
            True,
            endpoint=endpoint,
            explicit=allow_url is True,
            hasAllowlist=has_allowlist,
        )
    )


def _push_gateway_http_endpoint(
    entries: list[Entry], endpoints: dict[str, Any], endpoint: str
) -> None:
    config = endpoints.get(endpoint)
    if not is_record(config) or config.get("enabled") is not True:
        return
    path = f"http/endpoints/{endpoint}"
    entries.append(
        _entry(
            f"gateway-http-{endpoint}", "httpEndpoint", f"{path}/enabled", True, endpoint=endpoint
        )
    )
    for key in ("images",) if endpoint == "chatCompletions" else ("files", "images"):
        _push_gateway_url_fetch(entries, path, endpoint, (key,), config.get(key))


def scan_policy_gateway_exposure(cfg: dict[str, Any]) -> list[Entry]:
    gateway = record(cfg.get("gateway"))
    entries: list[Entry] = []
    bind = gateway["bind"] if isinstance(gateway.get("bind"), str) else None
    custom_host = (
        gateway["customBindHost"] if isinstance(gateway.get("customBindHost"), str) else None
    )
    has_custom_host = custom_host is not None and js_trim(custom_host) != ""
    tailscale = record(gateway.get("tailscale"))
    tailscale_mode = tailscale.get("mode")
    forces_loopback = tailscale_mode in ("serve", "funnel")
    if bind is None:
        non_loopback = not forces_loopback
    elif bind == "custom":
        non_loopback = False
    else:
        non_loopback = _is_gateway_non_loopback_bind(bind)
    entries.append(
        _entry(
            "gateway-bind-default" if bind is None else "gateway-bind",
            "bind",
            "bind",
            bind if bind is not None else ("loopback" if forces_loopback else "runtime-default"),
            nonLoopback=non_loopback,
            explicit=bind is not None,
        )
    )
    if bind == "custom" and has_custom_host and custom_host is not None:
        entries.append(
            _entry(
                "gateway-custom-bind-host",
                "bind",
                "customBindHost",
                custom_host,
                nonLoopback=_is_runtime_non_loopback_custom_bind_host(custom_host),
            )
        )
    auth = record(gateway.get("auth"))
    auth_mode = auth.get("mode")
    entries.append(
        _entry(
            "gateway-auth-mode",
            "auth",
            "auth/mode",
            auth_mode if isinstance(auth_mode, str) else "token",
            explicit=isinstance(auth_mode, str),
        )
    )
    rate_limit = is_record(auth.get("rateLimit"))
    entries.append(
        _entry(
            "gateway-auth-rate-limit",
            "authRateLimit",
            "auth/rateLimit",
            rate_limit,
            explicit=rate_limit,
        )
    )
    control_ui = record(gateway.get("controlUi"))
    for gid, key in _CONTROL_UI_TOGGLES:
        if isinstance(control_ui.get(key), bool):
            entries.append(_entry(gid, "controlUi", f"controlUi/{key}", control_ui[key]))
    if isinstance(tailscale_mode, str):
        entries.append(
            _entry("gateway-tailscale-mode", "tailscale", "tailscale/mode", tailscale_mode)
        )
    if tailscale_mode == "serve" and tailscale.get("preserveFunnel") is True:
        entries.append(
            _entry(
                "gateway-tailscale-preserve-funnel",
                "tailscale",
                "tailscale/preserveFunnel",
                "funnel",
            )
        )
    if gateway.get("mode") == "remote":
        entries.append(_entry("gateway-mode-remote", "remote", "mode", "remote"))
        url = record(gateway.get("remote")).get("url")
        if isinstance(url, str) and js_trim(url) != "":
            entries.append(_entry("gateway-remote-url", "remote", "remote/url", True))
    endpoints = record(record(gateway.get("http")).get("endpoints"))
    _push_gateway_http_endpoint(entries, endpoints, "chatCompletions")
    _push_gateway_http_endpoint(entries, endpoints, "responses")
    return sorted_by(entries, "source")
