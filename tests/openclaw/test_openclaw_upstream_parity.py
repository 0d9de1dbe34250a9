"""Cases transcribed from OpenClaw's own policy suite and its ``openclaw policy`` docs.

Each case states a policy and an OpenClaw config and checks the findings and
evidence upstream expects: check ids, messages, ``oc://`` paths and
requirements. Together with the fixtures and the worked example they are the
parity evidence for this port.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from openclaw_policy import PolicyCheckResult, run_policy_check
from openclaw_policy.attestation import policy_document_hash
from openclaw_policy.evidence import (
    EvidenceOptions,
    collect_policy_evidence,
    scan_policy_mcp_servers,
    scan_policy_tools,
)

ALL = EvidenceOptions(
    gateway_exposure=True, agent_workspace=True, tool_posture=True, secrets=True, auth_profiles=True
)


def check(
    tmp_path: Path,
    policy: dict[str, Any],
    cfg: dict[str, Any] | None = None,
    *,
    tools_md: str | None = None,
    settings: dict[str, Any] | None = None,
) -> PolicyCheckResult:
    config = dict(cfg or {})
    if settings is not None:
        config["plugins"] = {"entries": {"policy": {"enabled": True, "config": settings}}}
    (tmp_path / "policy.jsonc").write_text(json.dumps(policy), encoding="utf-8")
    (tmp_path / "openclaw.json").write_text(json.dumps(config), encoding="utf-8")
    if tools_md is not None:
        (tmp_path / "TOOLS.md").write_text(tools_md, encoding="utf-8")
    return run_policy_check(None, tmp_path / "openclaw.json", tmp_path, env={})


def summary(result: PolicyCheckResult) -> list[tuple[str, str | None, str | None]]:
    return [(f.check_id, f.oc_path, f.requirement) for f in result.findings]


def contains(result: PolicyCheckResult, expected: dict[str, Any]) -> bool:
    return any(all(f.to_json().get(k) == v for k, v in expected.items()) for f in result.findings)


# --- example findings of the openclaw policy docs -----------------------------------------


def test_seed_channel_finding_exactly(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        {
            "channels": {
                "denyRules": [
                    {
                        "id": "no-telegram",
                        "when": {"provider": "telegram"},
                        "reason": "Telegram is not approved for this workspace.",
                    }
                ]
            }
        },
        {"channels": {"telegram": {"enabled": True}}},
    )
    assert [f.to_json() for f in result.findings] == [
        {
            "checkId": "policy/channels-denied-provider",
            "severity": "error",
            "message": "Channel 'telegram' uses denied provider 'telegram'.",
            "source": "policy",
            "path": "openclaw config",
            "ocPath": "oc://openclaw.config/channels/telegram",
            "target": "oc://openclaw.config/channels/telegram",
            "requirement": "oc://policy.jsonc/channels/denyRules/#0",
            "fixHint": "Telegram is not approved for this workspace.",
        }
    ]


def test_seed_tool_finding(tmp_path: Path) -> None:
    tools_md = "# Workspace tools\n\n" + "\n" * 7 + "## Tools\n\n### deploy\n"
    assert tools_md.splitlines()[11] == "### deploy"
    result = check(tmp_path, {"tools": {"requireMetadata": ["risk"]}}, tools_md=tools_md)
    assert contains(
        result,
        {
            "checkId": "policy/tools-missing-risk-level",
            "severity": "error",
            "message": "TOOLS.md tool 'deploy' has no explicit risk classification.",
            "source": "policy",
            "path": "TOOLS.md",
            "line": 12,
            "ocPath": "oc://TOOLS.md/tools/deploy",
            "target": "oc://TOOLS.md/tools/deploy",
            "requirement": "oc://policy.jsonc/tools/requireMetadata",
        },
    )


@pytest.mark.parametrize(
    ("policy", "cfg", "expected"),
    [
        (
            {"mcp": {"servers": {"allow": ["docs"]}}},
            {"mcp": {"servers": {"docs": {"command": "npx"}, "remote": {"url": "https://x.test"}}}},
            {
                "checkId": "policy/mcp-unapproved-server",
                "message": "MCP server 'remote' is not in the policy allowlist.",
                "path": "openclaw config",
                "ocPath": "oc://openclaw.config/mcp/servers/remote",
                "requirement": "oc://policy.jsonc/mcp/servers/allow",
            },
        ),
        (
            {"models": {"providers": {"allow": ["openai"]}}},
            {
                "agents": {
                    "defaults": {
                        "model": {
                            "primary": "openai/gpt-5.5",
                            "fallbacks": ["anthropic/claude-sonnet-4.7"],
                        }
                    }
                }
            },
            {
                "checkId": "policy/models-unapproved-provider",
                "message": "Model ref 'anthropic/claude-sonnet-4.7' uses unapproved provider "
                "'anthropic'.",
                "ocPath": "oc://openclaw.config/agents/defaults/model/fallbacks/#0",
                "requirement": "oc://policy.jsonc/models/providers/allow",
            },
        ),
        (
            {"network": {"privateNetwork": {"allow": False}}},
            {"browser": {"ssrfPolicy": {"dangerouslyAllowPrivateNetwork": True}}},
            {
                "checkId": "policy/network-private-access-enabled",
                "message": "Network setting 'browser-private-network' allows private-network "
                "access.",
                "ocPath": "oc://openclaw.config/browser/ssrfPolicy/dangerouslyAllowPrivateNetwork",
                "requirement": "oc://policy.jsonc/network/privateNetwork/allow",
            },
        ),
        (
            {"gateway": {"exposure": {"allowNonLoopbackBind": False}}},
            {"gateway": {"bind": "lan"}},
            {
                "checkId": "policy/gateway-non-loopback-bind",
                "message": "Gateway bind setting 'gateway-bind' permits non-loopback exposure.",
                "ocPath": "oc://openclaw.config/gateway/bind",
                "requirement": "oc://policy.jsonc/gateway/exposure/allowNonLoopbackBind",
            },
        ),
        (
            {"agents": {"workspace": {"allowedAccess": ["none", "ro"]}}},
            {"agents": {"defaults": {"sandbox": {"mode": "all", "workspaceAccess": "rw"}}}},
            {
                "checkId": "policy/agents-workspace-access-denied",
                "message": "agents.defaults sandbox workspaceAccess 'rw' is not allowed by policy.",
                "ocPath": "oc://openclaw.config/agents/defaults/sandbox/workspaceAccess",
                "target": "oc://openclaw.config/agents/defaults/sandbox/workspaceAccess",
                "requirement": "oc://policy.jsonc/agents/workspace/allowedAccess",
            },
        ),
    ],
)
def test_seed_example_findings(
    tmp_path: Path, policy: dict[str, Any], cfg: dict[str, Any], expected: dict[str, Any]
) -> None:
    result = check(tmp_path, policy, cfg)
    assert contains(result, {"severity": "error", "source": "policy", **expected})


def test_seed_evidence_example_entries() -> None:
    cfg: dict[str, Any] = {
        "channels": {"telegram": {"enabled": False}},
        "mcp": {"servers": {"docs": {"command": "npx"}}},
        "models": {
            "providers": {"openai": {"apiKey": {"source": "env", "provider": "vault", "id": "K"}}}
        },
        "agents": {
            "defaults": {
                "model": "openai/gpt-5.5",
                "sandbox": {"mode": "all", "workspaceAccess": "ro"},
            }
        },
        "browser": {"ssrfPolicy": {"dangerouslyAllowPrivateNetwork": False}},
        "gateway": {"bind": "loopback"},
        "tools": {"deny": ["exec"]},
        "secrets": {"providers": {"vault": {"source": "env"}}},
        "auth": {"profiles": {"github": {"provider": "github", "mode": "token"}}},
    }
    tools_md = (
        "\n" * 9
        + "## Tools\n\n### deploy risk:critical sensitivity:restricted IRREVERSIBLE_EXTERNAL\n"
    )
    evidence = collect_policy_evidence(
        cfg,
        EvidenceOptions(
            gateway_exposure=True,
            agent_workspace=True,
            secrets=True,
            auth_profiles=True,
            tools_raw=tools_md,
        ),
    )
    # the expected entries are data (seed_evidence.json): every section is pinned
    expected = json.loads((Path(__file__).parent / "seed_evidence.json").read_text("utf-8"))
    assert {*expected["equal"], *expected["contains"]} == set(evidence)
    for section, entries in expected["equal"].items():
        assert evidence[section] == entries, section
    for section, entries in expected["contains"].items():
        for entry in entries:
            assert entry in evidence[section], (section, entry)
    assert "secret" not in json.dumps(evidence).replace("secretRef", "").replace("secrets", "")


# --- gates: hash mismatch, attestation drift, validation first -----------------------------


def test_hash_mismatch_hides_other_findings(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        {"channels": {"denyRules": [{"id": "no-telegram", "when": {"provider": "telegram"}}]}},
        {"channels": {"telegram": {"enabled": True}}},
        settings={"expectedHash": "sha256:not-the-policy"},
    )
    assert [f.check_id for f in result.findings] == ["policy/policy-hash-mismatch"]
    finding = result.findings[0].to_json()
    assert finding["target"] == "oc://policy.jsonc"
    assert (
        finding["requirement"] == "oc://openclaw.config/plugins/entries/policy/config/expectedHash"
    )


def test_accepted_policy_hash_passes(tmp_path: Path) -> None:
    policy = {"channels": {"denyRules": []}}
    result = check(tmp_path, policy, settings={"expectedHash": policy_document_hash(policy)})
    assert result.findings == ()


def test_attestation_drift_replaces_channel_findings(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        {"channels": {"denyRules": [{"id": "no-telegram", "when": {"provider": "telegram"}}]}},
        {"channels": {"telegram": {"enabled": True}}},
        settings={"expectedAttestationHash": "sha256:not-current", "workspaceRepairs": True},
    )
    assert [f.check_id for f in result.findings] == ["policy/attestation-hash-mismatch"]
    finding = result.findings[0].to_json()
    assert finding["path"] == "policy attestation"
    assert finding["target"] == "oc://policy/attestation/current"
    assert result.attestation is not None
    assert result.attested_findings[0].check_id == "policy/channels-denied-provider"
    assert result.attestation.ok is False
    # only the drift finding is visible, so watch reports the accepted attestation as stale
    assert result.watch_status() == "stale"


def test_validation_errors_come_before_attestation_drift(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        {"channels": {"denyRules": [{"when": {}}]}},
        settings={"expectedAttestationHash": "sha256:not-current"},
    )
    assert [(f.check_id, f.target) for f in result.findings] == [
        ("policy/policy-jsonc-invalid", "oc://policy.jsonc/channels/denyRules/#0")
    ]


def test_clean_state_with_stale_accepted_attestation(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        {"channels": {"denyRules": []}},
        settings={"expectedAttestationHash": "sha256:old"},
    )
    assert [f.check_id for f in result.findings] == ["policy/attestation-hash-mismatch"]
    assert result.watch_status() == "stale"
    assert result.watch_exit_code() == 1
    assert result.attestation is not None and result.attestation.ok is True


def test_empty_category_namespaces_run_no_checks(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        {"channels": {}, "mcp": {}, "models": {}, "network": {}, "tools": {}},
        {
            "channels": {"telegram": {"enabled": True}},
            "mcp": {"servers": {"untrusted": {"command": "uvx"}}},
            "models": {"providers": {"openrouter": {}}},
            "browser": {"ssrfPolicy": {"dangerouslyAllowPrivateNetwork": True}},
        },
        tools_md="## Tools\n\n### deploy\n",
    )
    assert result.findings == ()
    assert set(result.evidence) == {
        "channels",
        "mcpServers",
        "modelProviders",
        "modelRefs",
        "network",
    }


# --- models and MCP -----------------------------------------------------------------------


def test_denied_model_provider_and_ref(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        {"models": {"providers": {"deny": ["openrouter", "amazon-bedrock"]}}},
        {
            "models": {"providers": {"aws-bedrock": {}}},
            "agents": {"defaults": {"model": "OpenRouter/openai/gpt-5.5"}},
        },
    )
    assert summary(result) == [
        (
            "policy/models-denied-provider",
            "oc://openclaw.config/models/providers/aws-bedrock",
            "oc://policy.jsonc/models/providers/deny",
        ),
        (
            "policy/models-denied-provider",
            "oc://openclaw.config/agents/defaults/model",
            "oc://policy.jsonc/models/providers/deny",
        ),
    ]


@pytest.mark.parametrize(
    ("cfg", "oc_path"),
    [
        (
            {"agents": {"defaults": {"models": {"openrouter/*": {}}}}},
            'oc://openclaw.config/agents/defaults/models/"openrouter/*"',
        ),
        (
            {"agents": {"list": [{"id": "research", "models": {"openrouter/*": {}}}]}},
            'oc://openclaw.config/agents/list/#0/models/"openrouter/*"',
        ),
        (
            {"models": {"providers": {"anthropic": {}}}},
            "oc://openclaw.config/models/providers/anthropic",
        ),
        (
            {
                "agents": {
                    "defaults": {
                        "imageModel": "openai/gpt-5.5",
                        "subagents": {"model": "anthropic/x"},
                    }
                }
            },
            "oc://openclaw.config/agents/defaults/subagents/model",
        ),
    ],
)
def test_unapproved_model_refs(tmp_path: Path, cfg: dict[str, Any], oc_path: str) -> None:
    result = check(tmp_path, {"models": {"providers": {"allow": ["openai"]}}}, cfg)
    assert summary(result) == [
        ("policy/models-unapproved-provider", oc_path, "oc://policy.jsonc/models/providers/allow")
    ]


def test_mcp_evidence_redacts_urls_and_quotes_ids() -> None:
    servers = scan_policy_mcp_servers(
        {
            "mcp": {
                "servers": {
                    "remote": {
                        "url": "https://user:pass@example.com/mcp?token=secret",
                        "transport": "streamable-http",
                    },
                    "Outlook Graph": {"command": "npx"},
                }
            }
        }
    )
    assert servers == [
        {
            "id": "Outlook Graph",
            "transport": "stdio",
            "source": 'oc://openclaw.config/mcp/servers/"Outlook Graph"',
            "command": "npx",
        },
        {
            "id": "remote",
            "transport": "streamable-http",
            "source": "oc://openclaw.config/mcp/servers/remote",
            "url": "https://example.com",
        },
    ]


def test_mcp_rules_keep_server_casing(tmp_path: Path) -> None:
    cfg = {"mcp": {"servers": {"DocsServer": {"command": "npx"}}}}
    denied = check(tmp_path, {"mcp": {"servers": {"deny": ["DocsServer"]}}}, cfg)
    assert summary(denied) == [
        (
            "policy/mcp-denied-server",
            "oc://openclaw.config/mcp/servers/DocsServer",
            "oc://policy.jsonc/mcp/servers/deny",
        )
    ]
    assert check(tmp_path, {"mcp": {"servers": {"allow": ["DocsServer"]}}}, cfg).findings == ()


# --- gateway ------------------------------------------------------------------------------

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


# --- agent workspace ----------------------------------------------------------------------

WORKSPACE_POLICY = {
    "agents": {
        "workspace": {
            "allowedAccess": ["none", "ro"],
            "denyTools": ["exec", "process", "write", "edit", "apply_patch"],
        }
    }
}


def test_agent_workspace_denied(tmp_path: Path) -> None:
    cfg = {
        "tools": {"deny": ["write", "edit"]},
        "agents": {
            "defaults": {"sandbox": {"mode": "all", "workspaceAccess": "rw"}},
            "list": [
                {
                    "id": "reviewer",
                    "sandbox": {"workspaceAccess": "ro"},
                    "tools": {"deny": ["group:fs", "group:runtime"]},
                }
            ],
        },
    }
    result = check(tmp_path, WORKSPACE_POLICY, cfg)
    pairs = [(f.check_id, f.oc_path) for f in result.findings]
    assert (
        "policy/agents-workspace-access-denied",
        "oc://openclaw.config/agents/defaults/sandbox/workspaceAccess",
    ) in pairs
    assert ("policy/agents-tool-not-denied", "oc://openclaw.config/tools/deny") in pairs
    assert (
        "policy/agents-tool-not-denied",
        "oc://openclaw.config/agents/list/#0/tools/deny",
    ) not in pairs
    evidence = collect_policy_evidence(cfg, ALL)
    assert any(
        e["id"] == "reviewer-tool-apply_patch" and e["denied"] is True
        for e in evidence["agentWorkspace"]
    )


def test_agent_workspace_sandbox_denies(tmp_path: Path) -> None:
    cfg = {
        "tools": {"sandbox": {"tools": {"deny": ["group:runtime", "group:fs"]}}},
        "agents": {
            "defaults": {"sandbox": {"mode": "all", "workspaceAccess": "ro"}},
            "list": [
                {
                    "id": "locked",
                    "sandbox": {"workspaceAccess": "none"},
                    "tools": {"sandbox": {"tools": {"deny": ["group:runtime", "group:fs"]}}},
                }
            ],
        },
    }
    assert check(tmp_path, WORKSPACE_POLICY, cfg).findings == ()
    entries = {e["id"]: e for e in collect_policy_evidence(cfg, ALL)["agentWorkspace"]}
    assert (
        entries["agents-defaults-tool-exec"]["source"]
        == "oc://openclaw.config/tools/sandbox/tools/deny"
    )
    assert entries["locked-tool-apply_patch"]["source"] == (
        "oc://openclaw.config/agents/list/#0/tools/sandbox/tools/deny"
    )


def test_agent_sandbox_override_without_exec(tmp_path: Path) -> None:
    cfg = {
        "tools": {"sandbox": {"tools": {"deny": ["exec"]}}},
        "agents": {
            "defaults": {"sandbox": {"mode": "all", "workspaceAccess": "ro"}},
            "list": [
                {
                    "id": "locked",
                    "sandbox": {"workspaceAccess": "none"},
                    "tools": {"sandbox": {"tools": {"deny": ["group:fs"]}}},
                }
            ],
        },
    }
    result = check(
        tmp_path,
        {"agents": {"workspace": {"allowedAccess": ["none", "ro"], "denyTools": ["exec"]}}},
        cfg,
    )
    assert [(f.message, f.oc_path) for f in result.findings] == [
        (
            "agent 'locked' does not deny required tool 'exec'.",
            "oc://openclaw.config/agents/list/#0/tools/deny",
        )
    ]


def test_agent_workspace_globs_and_sandbox_modes(tmp_path: Path) -> None:
    glob = check(
        tmp_path,
        {"agents": {"workspace": {"allowedAccess": ["ro"], "denyTools": ["exec"]}}},
        {
            "tools": {"deny": ["e*"]},
            "agents": {"defaults": {"sandbox": {"mode": "all", "workspaceAccess": "ro"}}},
        },
    )
    assert glob.findings == ()
    non_main = check(
        tmp_path,
        {"agents": {"workspace": {"allowedAccess": ["ro"], "denyTools": ["exec"]}}},
        {
            "tools": {"sandbox": {"tools": {"deny": ["exec"]}}},
            "agents": {"defaults": {"sandbox": {"mode": "non-main", "workspaceAccess": "ro"}}},
        },
    )
    assert [(f.message, f.oc_path) for f in non_main.findings] == [
        (
            "agents.defaults sandbox mode 'non-main' is not allowed by policy.",
            "oc://openclaw.config/agents/defaults/sandbox/mode",
        ),
        ("agents.defaults does not deny required tool 'exec'.", "oc://openclaw.config/tools/deny"),
    ]
    off = check(
        tmp_path,
        WORKSPACE_POLICY,
        {
            "tools": {"deny": ["group:runtime", "group:fs"]},
            "agents": {"defaults": {"sandbox": {"workspaceAccess": "ro"}}},
        },
    )
    assert [f.message for f in off.findings] == [
        "agents.defaults sandbox mode 'off' is not allowed by policy."
    ]


# --- tool posture ---------------------------------------------------------------------------

POSTURE_POLICY = {
    "tools": {
        "profiles": {"allow": ["messaging", "minimal"]},
        "fs": {"requireWorkspaceOnly": True},
        "exec": {
            "allowSecurity": ["deny", "allowlist"],
            "requireAsk": ["always"],
            "allowHosts": ["sandbox"],
        },
        "elevated": {"allow": False},
        "denyTools": ["exec", "write", "edit", "apply_patch"],
    }
}


#: tool settings that satisfy the tool posture policy of the tests below
_CONFORMING_TOOLS: dict[str, Any] = {
    "profile": "messaging",
    "deny": ["group:runtime", "group:fs"],
    "exec": {"security": "deny", "ask": "always", "host": "sandbox"},
    "fs": {"workspaceOnly": True},
    "elevated": {"enabled": False},
}


def test_tool_posture_denied(tmp_path: Path) -> None:
    cfg = {
        "tools": {
            "profile": "coding",
            "deny": ["write"],
            "exec": {"security": "full", "ask": "off", "host": "gateway"},
            "fs": {"workspaceOnly": False},
            "elevated": {"enabled": True, "allowFrom": {"whatsapp": ["+15550000001", 15550000002]}},
        },
        "agents": {
            "list": [
                {
                    "id": "reviewer",
                    "tools": _CONFORMING_TOOLS,
                }
            ]
        },
    }
    result = check(tmp_path, POSTURE_POLICY, cfg)
    found = summary(result)
    for check_id, path, rule in [
        ("policy/tools-profile-unapproved", "tools/profile", "tools/profiles/allow"),
        (
            "policy/tools-fs-workspace-only-required",
            "tools/fs/workspaceOnly",
            "tools/fs/requireWorkspaceOnly",
        ),
        (
            "policy/tools-exec-security-unapproved",
            "tools/exec/security",
            "tools/exec/allowSecurity",
        ),
        ("policy/tools-exec-ask-unapproved", "tools/exec/ask", "tools/exec/requireAsk"),
        ("policy/tools-exec-host-unapproved", "tools/exec/host", "tools/exec/allowHosts"),
        ("policy/tools-elevated-enabled", "tools/elevated/enabled", "tools/elevated/allow"),
        ("policy/tools-required-deny-missing", "tools/deny", "tools/denyTools"),
    ]:
        assert (check_id, f"oc://openclaw.config/{path}", f"oc://policy.jsonc/{rule}") in found
    assert not any(
        c == "policy/tools-required-deny-missing"
        and p == "oc://openclaw.config/agents/list/#0/tools/deny"
        for c, p, _ in found
    )
    posture = {e["id"]: e for e in collect_policy_evidence(cfg, ALL)["toolPosture"]}
    assert posture["tools-profile"]["value"] == "coding"
    assert (
        posture["reviewer-exec-security"]["source"]
        == "oc://openclaw.config/agents/list/#0/tools/exec/security"
    )
    assert posture["tools-elevated-allow-from-whatsapp"]["entries"] == [
        "+15550000001",
        "15550000002",
    ]
    assert posture["tools-elevated-allow-from-whatsapp"]["source"] == (
        "oc://openclaw.config/tools/elevated/allowFrom/whatsapp"
    )


def test_tool_posture_conforming(tmp_path: Path) -> None:
    cfg = {"tools": _CONFORMING_TOOLS}
    assert check(tmp_path, POSTURE_POLICY, cfg).findings == ()


@pytest.mark.parametrize(
    ("policy", "cfg", "expected"),
    [
        (
            {
                "tools": {
                    "exec": {
                        "allowSecurity": ["deny"],
                        "requireAsk": ["always"],
                        "allowHosts": ["auto"],
                    },
                    "denyTools": ["bash", "apply-patch"],
                }
            },
            {"tools": {"deny": ["exec", "apply_patch"]}},
            ["policy/tools-exec-security-unapproved", "policy/tools-exec-ask-unapproved"],
        ),
        (
            {
                "tools": {
                    "exec": {
                        "allowSecurity": ["full"],
                        "requireAsk": ["off"],
                        "allowHosts": ["auto"],
                    },
                    "denyTools": ["group:runtime", "group:fs"],
                }
            },
            {
                "tools": {
                    "deny": [
                        "exec",
                        "process",
                        "code_execution",
                        "read",
                        "write",
                        "edit",
                        "apply_patch",
                    ]
                }
            },
            [],
        ),
        ({"tools": {"denyTools": ["web_search"]}}, {"tools": {"deny": ["web_*"]}}, []),
        ({"tools": {"denyTools": ["message"]}}, {"tools": {"deny": ["group:openclaw"]}}, []),
        (
            {"tools": {"elevated": {"allow": False}}},
            {
                "tools": {"elevated": {"enabled": False}},
                "agents": {"list": [{"id": "reviewer", "tools": {"elevated": {"enabled": True}}}]},
            },
            [],
        ),
        (
            {"tools": {"profiles": {"allow": ["messaging"]}}},
            {},
            ["policy/tools-profile-unapproved"],
        ),
        (
            {"tools": {"exec": {"allowSecurity": ["deny"], "allowHosts": ["sandbox"]}}},
            {"tools": {"exec": {"host": "sandbox"}}},
            [],
        ),
        (
            {"tools": {"exec": {"allowSecurity": ["deny"], "allowHosts": ["auto"]}}},
            {"agents": {"defaults": {"sandbox": {"mode": "all"}}}},
            [],
        ),
        (
            {"tools": {"exec": {"allowSecurity": ["deny"], "allowHosts": ["auto"]}}},
            {"agents": {"defaults": {"sandbox": {"mode": "non-main"}}}},
            ["policy/tools-exec-security-unapproved"],
        ),
    ],
)
def test_tool_posture_defaults_and_groups(
    tmp_path: Path, policy: dict[str, Any], cfg: dict[str, Any], expected: list[str]
) -> None:
    assert [f.check_id for f in check(tmp_path, policy, cfg).findings] == expected


def test_reviewer_inherits_globally_disabled_elevated_mode() -> None:
    cfg = {
        "tools": {"elevated": {"enabled": False}},
        "agents": {"list": [{"id": "reviewer", "tools": {"elevated": {"enabled": True}}}]},
    }
    posture = {e["id"]: e for e in collect_policy_evidence(cfg, ALL)["toolPosture"]}
    assert posture["reviewer-elevated-enabled"]["value"] is False
    assert (
        posture["reviewer-elevated-enabled"]["source"]
        == "oc://openclaw.config/tools/elevated/enabled"
    )


def test_also_allow_evidence() -> None:
    cfg = {
        "tools": {"profile": "messaging", "alsoAllow": ["exec"]},
        "agents": {
            "list": [{"id": "reviewer", "tools": {"profile": "messaging", "alsoAllow": ["write"]}}]
        },
    }
    posture = {e["id"]: e for e in collect_policy_evidence(cfg, ALL)["toolPosture"]}
    assert posture["tools-alsoAllow"]["entries"] == ["exec"]
    assert (
        posture["reviewer-alsoAllow"]["source"]
        == "oc://openclaw.config/agents/list/#0/tools/alsoAllow"
    )


# --- secrets and auth profiles --------------------------------------------------------------


def test_secret_findings_do_not_leak_values(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        {
            "secrets": {
                "requireManagedProviders": True,
                "denySources": ["exec"],
                "allowInsecureProviders": False,
            }
        },
        {
            "secrets": {
                "providers": {
                    "vault": {"source": "file", "path": ".secrets.json", "allowInsecurePath": True},
                    "command": {
                        "source": "exec",
                        "command": "vault",
                        "args": ["read", "openai/api-key"],
                    },
                }
            },
            "models": {
                "providers": {
                    "anthropic": {
                        "apiKey": {
                            "source": "env",
                            "provider": "missing",
                            "id": "ANTHROPIC_API_KEY",
                        }
                    }
                }
            },
        },
    )
    assert "ANTHROPIC_API_KEY" not in json.dumps(result.to_json())
    assert sorted(summary(result)) == sorted(
        [
            (
                "policy/secrets-unmanaged-provider",
                "oc://openclaw.config/models/providers/anthropic/apiKey",
                "oc://policy.jsonc/secrets/requireManagedProviders",
            ),
            (
                "policy/secrets-denied-provider-source",
                "oc://openclaw.config/secrets/providers/command",
                "oc://policy.jsonc/secrets/denySources",
            ),
            (
                "policy/secrets-insecure-provider",
                "oc://openclaw.config/secrets/providers/vault",
                "oc://policy.jsonc/secrets/allowInsecureProviders",
            ),
        ]
    )


def test_structured_request_secret_refs(tmp_path: Path) -> None:
    rogue = {"source": "exec", "provider": "rogue", "id": "x"}
    cfg = {
        "models": {
            "providers": {
                "openai": {
                    "request": {
                        "auth": {"mode": "authorization-bearer", "token": rogue},
                        "tls": {"passphrase": rogue},
                    }
                },
                "z.ai": {"headers": {"Authorization": rogue}},
            }
        },
        "tools": {
            "media": {
                "models": [{"request": {"auth": {"token": rogue}, "tls": {"key": rogue}}}],
                "audio": {"request": {"auth": {"token": rogue}}},
                "image": {"models": [{"request": {"auth": {"token": rogue}}}]},
            }
        },
        "plugins": {
            "entries": {
                "acpx": {"config": {"mcpServers": {"github": {"env": {"GITHUB_TOKEN": rogue}}}}}
            }
        },
    }
    sources = {e["source"] for e in collect_policy_evidence(cfg, ALL)["secrets"]}
    assert sources == {
        "oc://openclaw.config/models/providers/openai/request/auth/token",
        "oc://openclaw.config/models/providers/openai/request/tls/passphrase",
        'oc://openclaw.config/models/providers/"z.ai"/headers/Authorization',
        "oc://openclaw.config/plugins/entries/acpx/config/mcpServers/github/env/GITHUB_TOKEN",
        "oc://openclaw.config/tools/media/models/#0/request/auth/token",
        "oc://openclaw.config/tools/media/models/#0/request/tls/key",
        "oc://openclaw.config/tools/media/audio/request/auth/token",
        "oc://openclaw.config/tools/media/image/models/#0/request/auth/token",
    }
    result = check(
        tmp_path, {"secrets": {"requireManagedProviders": True, "denySources": ["exec"]}}, cfg
    )
    assert len(result.findings) == 16


def test_secret_defaults_and_sources(tmp_path: Path) -> None:
    policy = {"secrets": {"requireManagedProviders": True}}
    defaults = check(
        tmp_path,
        policy,
        {
            "secrets": {"defaults": {"env": "vault"}, "providers": {"vault": {"source": "env"}}},
            "models": {"providers": {"openai": {"apiKey": "$OPENAI_API_KEY"}}},
        },
    )
    assert defaults.findings == ()
    assert {
        "id": "oc://openclaw.config/models/providers/openai/apiKey",
        "kind": "input",
        "source": "oc://openclaw.config/models/providers/openai/apiKey",
        "provenance": "secretRef",
        "refSource": "env",
        "refProvider": "vault",
    } in defaults.evidence["secrets"]
    wrong_source = check(
        tmp_path,
        policy,
        {
            "secrets": {"providers": {"vault": {"source": "file", "path": ".secrets.json"}}},
            "models": {
                "providers": {
                    "openai": {"apiKey": {"source": "env", "provider": "vault", "id": "K"}}
                }
            },
        },
    )
    assert [f.oc_path for f in wrong_source.findings] == [
        "oc://openclaw.config/models/providers/openai/apiKey"
    ]


def test_raw_mcp_env_values_are_not_secret_refs(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        {"secrets": {"requireManagedProviders": True, "denySources": ["env"]}},
        {
            "mcp": {
                "servers": {
                    "corp.github": {
                        "env": {"APP_ID": "$GITHUB_APP_ID", "GITHUB_TOKEN": "$GITHUB_TOKEN"}
                    }
                }
            }
        },
    )
    assert result.findings == () and result.evidence["secrets"] == []


def test_channel_encrypt_key_secret_ref(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        {"secrets": {"requireManagedProviders": True, "denySources": ["exec"]}},
        {
            "channels": {
                "feishu": {"encryptKey": {"source": "exec", "provider": "rogue", "id": "k"}}
            }
        },
    )
    assert [f.check_id for f in result.findings] == [
        "policy/secrets-unmanaged-provider",
        "policy/secrets-denied-provider-source",
    ]
    assert {f.oc_path for f in result.findings} == {
        "oc://openclaw.config/channels/feishu/encryptKey"
    }


def _auth_profile_rules(require_metadata: list[str], allow_modes: list[str]) -> dict[str, Any]:
    return {"auth": {"profiles": {"requireMetadata": require_metadata, "allowModes": allow_modes}}}


def test_auth_profiles(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        _auth_profile_rules(["provider", "mode"], ["api_key", "token"]),
        {
            "auth": {
                "profiles": {
                    "missingMode": {"provider": "github"},
                    "oauth": {"provider": "github", "mode": "oauth"},
                }
            }
        },
    )
    assert [(f.check_id, f.oc_path, f.message) for f in result.findings] == [
        (
            "policy/auth-profile-invalid-metadata",
            "oc://openclaw.config/auth/profiles/missingMode",
            "Auth profile 'missingMode' is missing required metadata: mode.",
        ),
        (
            "policy/auth-profile-unapproved-mode",
            "oc://openclaw.config/auth/profiles/oauth",
            "Auth profile 'oauth' uses mode 'oauth' outside the policy allowlist.",
        ),
    ]


def test_malformed_secret_and_auth_policies(tmp_path: Path) -> None:
    secrets = check(
        tmp_path,
        {
            "secrets": {
                "requireManagedProviders": "yes",
                "denySources": "exec",
                "allowInsecureProviders": "false",
            }
        },
    )
    assert [f.target for f in secrets.findings] == [
        "oc://policy.jsonc/secrets/requireManagedProviders",
        "oc://policy.jsonc/secrets/allowInsecureProviders",
        "oc://policy.jsonc/secrets/denySources",
    ]
    mixed = check(
        tmp_path,
        {
            "secrets": {"requireManagedProviders": True},
            "auth": {"profiles": {"allowModes": "token"}},
        },
        {
            "models": {
                "providers": {
                    "openai": {"apiKey": {"source": "exec", "provider": "rogue", "id": "k"}}
                }
            }
        },
    )
    assert [(f.check_id, f.target or f.oc_path) for f in mixed.findings] == [
        (
            "policy/secrets-unmanaged-provider",
            "oc://openclaw.config/models/providers/openai/apiKey",
        ),
        ("policy/policy-jsonc-invalid", "oc://policy.jsonc/auth/profiles/allowModes"),
    ]
    auth = check(
        tmp_path,
        _auth_profile_rules(["provider", ""], ["api_key", "unsupported"]),
    )
    assert {f.target for f in auth.findings} == {
        "oc://policy.jsonc/auth/profiles/requireMetadata/#1",
        "oc://policy.jsonc/auth/profiles/allowModes/#1",
    }


# --- TOOLS.md ---------------------------------------------------------------------------------


def test_tools_md_metadata_on_following_lines(tmp_path: Path) -> None:
    tools_md = "\n".join(
        [
            "## Tools",
            "",
            "### deploy",
            "risk: critical",
            "sensitivity: restricted",
            "owner: ops",
            "IRREVERSIBLE_EXTERNAL",
            "",
            "### inspect",
            "risk: low",
            "sensitivity: public",
            "owner: support",
            "",
        ]
    )
    result = check(
        tmp_path,
        {"tools": {"requireMetadata": ["risk", "sensitivity", "owner"]}},
        tools_md=tools_md,
    )
    assert result.findings == ()
    assert scan_policy_tools(tools_md) == [
        {
            "id": "deploy",
            "source": "oc://TOOLS.md/tools/deploy",
            "line": 3,
            "risk": "critical",
            "sensitivity": "restricted",
            "owner": "ops",
            "capabilities": ["IRREVERSIBLE_EXTERNAL"],
        },
        {
            "id": "inspect",
            "source": "oc://TOOLS.md/tools/inspect",
            "line": 9,
            "risk": "low",
            "sensitivity": "public",
            "owner": "support",
        },
    ]


@pytest.mark.parametrize(
    "tools_md", ["## Tools\n\n### deploy\n", "## Tools\n\n- deploy: deploys\n"]
)
def test_tools_md_missing_metadata(tmp_path: Path, tools_md: str) -> None:
    result = check(
        tmp_path,
        {"tools": {"requireMetadata": ["risk", "sensitivity", "owner"]}},
        tools_md=tools_md,
    )
    assert [f.check_id for f in result.findings] == [
        "policy/tools-missing-risk-level",
        "policy/tools-missing-sensitivity-token",
        "policy/tools-missing-owner",
    ]
    assert {f.oc_path for f in result.findings} == {"oc://TOOLS.md/tools/deploy"}


def test_tools_md_unknown_values(tmp_path: Path) -> None:
    risk = check(
        tmp_path,
        {"tools": {"requireMetadata": ["risk"]}},
        tools_md="## Tools\n\n### deploy risk:critcal\n",
    )
    assert [(f.check_id, f.message) for f in risk.findings] == [
        (
            "policy/tools-unknown-risk-level",
            "TOOLS.md tool 'deploy' declares unknown risk 'critcal'.",
        )
    ]
    sensitivity = check(
        tmp_path,
        {"tools": {"requireMetadata": ["sensitivity"]}},
        tools_md="## Tools\n\n### deploy risk:critical sensitivity:secret\n",
    )
    assert [f.check_id for f in sensitivity.findings] == ["policy/tools-unknown-sensitivity-token"]


def test_tools_md_is_not_read_without_metadata_rules(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        {"models": {"providers": {"allow": ["openai"]}}},
        tools_md="## Tools\n\n### deploy\n",
    )
    assert result.findings == () and "tools" not in result.evidence


def test_risk_aliases() -> None:
    tools = scan_policy_tools("## Tools\n\n- a: R0\n- b: R3\n- c: R4\n- d: R5 risk: LOW\n")
    assert [(t["id"], t.get("risk")) for t in tools] == [
        ("a", "low"),
        ("b", "medium"),
        ("c", "high"),
        ("d", "low"),
    ]
