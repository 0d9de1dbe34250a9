"""What the upstream parity tests (``test_openclaw_parity_*.py``) share: a policy check
of a policy and an OpenClaw config written to a workspace, and ways to read its findings.

Those tests are cases transcribed from OpenClaw's own policy suite and its
``openclaw policy`` docs. Each case states a policy and an OpenClaw config and checks
the findings and evidence upstream expects: check ids, messages, ``oc://`` paths and
requirements. Together with the fixtures and the worked example they are the parity
evidence for this port.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from openclaw_policy import PolicyCheckResult, run_policy_check
from openclaw_policy.evidence import EvidenceOptions

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
