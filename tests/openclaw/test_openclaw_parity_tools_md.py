"""Upstream parity (cases from OpenClaw's own policy suite and docs, helpers in
``_openclaw_parity``): TOOLS.md metadata: each tool's risk, sensitivity and owner."""

from __future__ import annotations

from pathlib import Path

import pytest

from openclaw_policy.evidence import scan_policy_tools

from ._openclaw_parity import check


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
