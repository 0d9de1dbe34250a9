"""Upstream parity (cases from OpenClaw's own policy suite and docs, helpers in
``_openclaw_parity``): the example findings and evidence entries of the docs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from openclaw_policy.evidence import EvidenceOptions, collect_policy_evidence

from ._openclaw_parity import check, contains


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
