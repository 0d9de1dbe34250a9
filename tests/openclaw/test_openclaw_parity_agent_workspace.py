"""Upstream parity (cases from OpenClaw's own policy suite and docs, helpers in
``_openclaw_parity``): agent workspace access, sandbox modes and the tools agents must
deny."""

from __future__ import annotations

from pathlib import Path

from openclaw_policy.evidence import collect_policy_evidence

from ._openclaw_parity import ALL, check

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
