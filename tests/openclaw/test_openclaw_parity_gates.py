"""Upstream parity (cases from OpenClaw's own policy suite and docs, helpers in
``_openclaw_parity``): the gates, a policy hash mismatch and attestation drift, and
validation errors before them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from openclaw_policy.attestation import policy_document_hash

from ._openclaw_parity import check


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
    policy: dict[str, Any] = {"channels": {"denyRules": []}}
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
