"""Upstream parity (cases from OpenClaw's own policy suite and docs, helpers in
``_openclaw_parity``): tool posture: profiles, exec, fs, elevated mode and denied tools."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from openclaw_policy.evidence import collect_policy_evidence

from ._openclaw_parity import ALL, check, summary

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
