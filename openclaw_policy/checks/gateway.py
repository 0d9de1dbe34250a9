"""Gateway exposure rules (upstream ``doctor/scopes/gateway.ts``): one table row per check."""

from __future__ import annotations

from typing import Any, Final

from openclaw_policy import findings as ids
from openclaw_policy.checks.base import (
    EntryCheck,
    entry_findings,
    has_rule,
    listed,
    mirrors,
    when_false,
    when_true,
)
from openclaw_policy.evidence import Entry
from openclaw_policy.findings import Finding
from openclaw_policy.jsutil import js_lower

__all__ = ["GATEWAY_CHECKS", "gateway_findings", "has_gateway_rules"]

_INSECURE_CONTROL_UI: Final = (
    "gateway-control-ui-insecure-auth",
    "gateway-control-ui-device-auth-disabled",
    "gateway-control-ui-host-origin-fallback",
)


def _bind_message(entry: Entry, _rule: object) -> str:
    if entry.get("explicit") is False:
        return "Gateway bind is omitted while the runtime default can permit non-loopback exposure."
    return f"Gateway bind setting '{entry['id']}' permits non-loopback exposure."


GATEWAY_CHECKS: Final = (
    EntryCheck(
        ids.GATEWAY_NON_LOOPBACK_BIND,
        when_false("gateway.exposure.allowNonLoopbackBind"),
        lambda e, _: e["kind"] == "bind" and e.get("nonLoopback") is True,
        _bind_message,
        "Use gateway.bind=loopback or update policy after review.",
    ),
    EntryCheck(
        ids.GATEWAY_AUTH_DISABLED,
        when_true("gateway.auth.requireAuth"),
        lambda e, _: e["kind"] == "auth" and e.get("value") == "none",
        lambda _e, _: "Gateway authentication is disabled.",
        "Set gateway.auth.mode to token, password, or trusted-proxy.",
    ),
    EntryCheck(
        ids.GATEWAY_RATE_LIMIT_MISSING,
        when_true("gateway.auth.requireExplicitRateLimit"),
        mirrors("authRateLimit", "explicit"),
        lambda _e, _: "Gateway authentication rate-limit posture is not explicit.",
        "Configure gateway.auth.rateLimit or update policy after review.",
    ),
    EntryCheck(
        ids.GATEWAY_CONTROL_UI_INSECURE,
        when_false("gateway.controlUi.allowInsecure"),
        lambda e, _: (
            e["kind"] == "controlUi" and e.get("value") is True and e["id"] in _INSECURE_CONTROL_UI
        ),
        lambda e, _: f"Gateway Control UI insecure toggle '{e['id']}' is enabled.",
        "Disable the insecure Control UI toggle or update policy after review.",
    ),
    EntryCheck(
        ids.GATEWAY_TAILSCALE_FUNNEL,
        when_false("gateway.exposure.allowTailscaleFunnel"),
        lambda e, _: e["kind"] == "tailscale" and e.get("value") == "funnel",
        lambda _e, _: "Gateway Tailscale Funnel exposure is enabled.",
        "Use tailscale serve/off or update policy after review.",
    ),
    EntryCheck(
        ids.GATEWAY_REMOTE_ENABLED,
        when_false("gateway.remote.allow"),
        lambda e, _: e["kind"] == "remote",
        lambda e, _: f"Gateway remote posture '{e['id']}' is enabled.",
        "Disable remote gateway mode/config or update policy after review.",
    ),
    EntryCheck(
        ids.GATEWAY_HTTP_ENDPOINT_ENABLED,
        listed("gateway.http.denyEndpoints", normalize=js_lower),
        lambda e, denied: e["kind"] == "httpEndpoint" and js_lower(e["endpoint"]) in denied,
        lambda e, _: f"Gateway HTTP endpoint '{e['endpoint']}' is denied by policy.",
        "Disable the HTTP endpoint or update policy after review.",
    ),
    EntryCheck(
        ids.GATEWAY_HTTP_URL_FETCH_UNRESTRICTED,
        when_true("gateway.http.requireUrlAllowlists"),
        mirrors("httpUrlFetch", "hasAllowlist"),
        lambda e, _: f"Gateway HTTP URL-fetch input '{e['id']}' has no URL allowlist.",
        "Add a urlAllowlist for this URL-fetch input or update policy after review.",
    ),
)

_GATEWAY_RULES: Final = (
    ("exposure", ("allowNonLoopbackBind", "allowTailscaleFunnel")),
    ("auth", ("requireAuth", "requireExplicitRateLimit")),
    ("controlUi", ("allowInsecure",)),
    ("remote", ("allow",)),
    ("http", ("denyEndpoints", "requireUrlAllowlists")),
)


def has_gateway_rules(policy: Any) -> bool:
    return any(has_rule(policy, f"gateway.{section}", *keys) for section, keys in _GATEWAY_RULES)


def gateway_findings(policy: Any, doc: str, evidence: dict[str, Any]) -> list[Finding]:
    return entry_findings(GATEWAY_CHECKS, policy, doc, evidence.get("gatewayExposure", []))
