"""Upstream parity (cases from OpenClaw's own policy suite and docs, helpers in
``_openclaw_parity``): the gateway's exposure: its bind, Tailscale funnel, remote mode
and HTTP endpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ._openclaw_parity import check, summary

GATEWAY_POLICY = {
    "gateway": {
        "exposure": {"allowNonLoopbackBind": False, "allowTailscaleFunnel": False},
        "auth": {"requireAuth": True, "requireExplicitRateLimit": True},
        "controlUi": {"allowInsecure": False},
        "remote": {"allow": False},
        "http": {"denyEndpoints": ["chatCompletions", "responses"], "requireUrlAllowlists": True},
    }
}


def test_gateway_exposure_reports_twelve_findings(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        GATEWAY_POLICY,
        {
            "gateway": {
                "bind": "lan",
                "auth": {"mode": "none"},
                "controlUi": {
                    "allowInsecureAuth": True,
                    "dangerouslyDisableDeviceAuth": True,
                    "dangerouslyAllowHostHeaderOriginFallback": True,
                },
                "tailscale": {"mode": "funnel"},
                "mode": "remote",
                "http": {
                    "endpoints": {
                        "chatCompletions": {"enabled": True, "images": {"allowUrl": True}},
                        "responses": {
                            "enabled": True,
                            "files": {"allowUrl": True},
                            "images": {"allowUrl": True, "urlAllowlist": ["images.example.test"]},
                        },
                    }
                },
            }
        },
    )
    assert len(result.findings) == 12
    for check_id, oc_path, rule in [
        (
            "policy/gateway-non-loopback-bind",
            "gateway/bind",
            "gateway/exposure/allowNonLoopbackBind",
        ),
        ("policy/gateway-auth-disabled", "gateway/auth/mode", "gateway/auth/requireAuth"),
        (
            "policy/gateway-rate-limit-missing",
            "gateway/auth/rateLimit",
            "gateway/auth/requireExplicitRateLimit",
        ),
        (
            "policy/gateway-control-ui-insecure",
            "gateway/controlUi/allowInsecureAuth",
            "gateway/controlUi/allowInsecure",
        ),
        (
            "policy/gateway-tailscale-funnel",
            "gateway/tailscale/mode",
            "gateway/exposure/allowTailscaleFunnel",
        ),
        ("policy/gateway-remote-enabled", "gateway/mode", "gateway/remote/allow"),
        (
            "policy/gateway-http-endpoint-enabled",
            "gateway/http/endpoints/chatCompletions/enabled",
            "gateway/http/denyEndpoints",
        ),
        (
            "policy/gateway-http-url-fetch-unrestricted",
            "gateway/http/endpoints/chatCompletions/images/allowUrl",
            "gateway/http/requireUrlAllowlists",
        ),
    ]:
        assert (
            check_id,
            f"oc://openclaw.config/{oc_path}",
            f"oc://policy.jsonc/{rule}",
        ) in summary(result)


@pytest.mark.parametrize(
    ("gateway", "expected"),
    [
        ({}, ["oc://openclaw.config/gateway/bind"]),
        ({"tailscale": {"mode": "serve"}}, []),
        ({"bind": "loopback", "customBindHost": "0.0.0.0"}, []),
        ({"bind": "custom", "customBindHost": "127.0.0.1"}, []),
        (
            {"bind": "custom", "customBindHost": "192.168.1.20"},
            ["oc://openclaw.config/gateway/customBindHost"],
        ),
        ({"bind": "custom", "customBindHost": "   "}, []),
        ({"bind": "custom", "customBindHost": "localhost"}, []),
        ({"bind": "custom", "customBindHost": "::1"}, []),
        ({"bind": "custom", "customBindHost": "192.168.001.20"}, []),
    ],
)
def test_gateway_bind_posture(tmp_path: Path, gateway: dict[str, Any], expected: list[str]) -> None:
    result = check(
        tmp_path, {"gateway": {"exposure": {"allowNonLoopbackBind": False}}}, {"gateway": gateway}
    )
    assert [f.oc_path for f in result.findings] == expected


def test_omitted_bind_message(tmp_path: Path) -> None:
    result = check(
        tmp_path, {"gateway": {"exposure": {"allowNonLoopbackBind": False}}}, {"gateway": {}}
    )
    assert result.findings[0].message == (
        "Gateway bind is omitted while the runtime default can permit non-loopback exposure."
    )


def test_gateway_tailscale_preserved_funnel(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        {"gateway": {"exposure": {"allowTailscaleFunnel": False}}},
        {"gateway": {"tailscale": {"mode": "serve", "preserveFunnel": True}}},
    )
    assert [f.oc_path for f in result.findings] == [
        "oc://openclaw.config/gateway/tailscale/preserveFunnel"
    ]


def test_gateway_remote(tmp_path: Path) -> None:
    policy = {"gateway": {"remote": {"allow": False}}}
    active = check(
        tmp_path, policy, {"gateway": {"mode": "remote", "remote": {"url": "wss://r.test:18789"}}}
    )
    assert [f.oc_path for f in active.findings] == [
        "oc://openclaw.config/gateway/mode",
        "oc://openclaw.config/gateway/remote/url",
    ]
    inert = check(
        tmp_path, policy, {"gateway": {"remote": {"enabled": True, "url": "wss://r.test"}}}
    )
    assert inert.findings == ()


@pytest.mark.parametrize(
    ("responses", "count"),
    [
        ({"enabled": True}, 2),
        (
            {"enabled": True, "files": {"urlAllowlist": ["*"]}, "images": {"urlAllowlist": ["*."]}},
            2,
        ),
        ({"enabled": True, "files": {"allowUrl": False}, "images": {"allowUrl": False}}, 0),
    ],
)
def test_gateway_responses_url_fetch(tmp_path: Path, responses: dict[str, Any], count: int) -> None:
    result = check(
        tmp_path,
        {"gateway": {"http": {"requireUrlAllowlists": True}}},
        {"gateway": {"http": {"endpoints": {"responses": responses}}}},
    )
    assert len(result.findings) == count
    assert all(f.check_id == "policy/gateway-http-url-fetch-unrestricted" for f in result.findings)


def test_gateway_rate_limit_without_gateway_config(tmp_path: Path) -> None:
    result = check(tmp_path, {"gateway": {"auth": {"requireExplicitRateLimit": True}}})
    assert summary(result) == [
        (
            "policy/gateway-rate-limit-missing",
            "oc://openclaw.config/gateway/auth/rateLimit",
            "oc://policy.jsonc/gateway/auth/requireExplicitRateLimit",
        )
    ]
