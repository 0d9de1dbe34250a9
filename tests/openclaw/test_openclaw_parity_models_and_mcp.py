"""Upstream parity (cases from OpenClaw's own policy suite and docs, helpers in
``_openclaw_parity``): denied and unapproved model providers and refs, and MCP servers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from openclaw_policy.evidence import scan_policy_mcp_servers

from ._openclaw_parity import check, summary


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
