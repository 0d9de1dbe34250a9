"""``evaluatePolicy``: a policy and a config in, findings and evidence out.

Upstream ``doctor/evaluation.ts``, step by step: policy missing → invalid →
hash mismatch → evidence (only the sections the policy has rules for) →
findings per rule family in upstream order → attestation-mismatch gate. The
file I/O comes in through the arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from openclaw_policy import findings as ids
from openclaw_policy.attestation import policy_document_hash
from openclaw_policy.checks.base import read_policy_string_array
from openclaw_policy.checks.channels import channel_findings
from openclaw_policy.checks.data_auth import (
    has_auth_profile_rules,
    has_secret_rules,
    secret_auth_findings,
)
from openclaw_policy.checks.gateway import gateway_findings, has_gateway_rules
from openclaw_policy.checks.model_network import mcp_findings, model_findings, network_findings
from openclaw_policy.checks.sandbox import agent_workspace_findings, has_agent_workspace_rules
from openclaw_policy.checks.shapes import (
    AUTH_METADATA_SHAPES,
    TOOL_METADATA_SHAPES,
    policy_container_shape_findings,
    shape_findings,
)
from openclaw_policy.checks.tools import (
    has_tool_posture_rules,
    tool_metadata_findings,
    tool_posture_findings,
)
from openclaw_policy.evidence import EvidenceOptions, collect_policy_evidence
from openclaw_policy.findings import Finding
from openclaw_policy.jsutil import UNDEFINED, is_record, js_trim
from openclaw_policy.loader import parse_json5

__all__ = ["PolicyEvaluation", "PolicySettings", "evaluate_policy", "policy_settings_from_config"]


@dataclass(frozen=True, slots=True)
class PolicySettings:
    """``plugins.entries.policy.config`` of the OpenClaw config, plus command-line overrides."""

    enabled: bool = True
    path: str | None = None
    expected_hash: str | None = None
    expected_attestation_hash: str | None = None


def policy_settings_from_config(cfg: dict[str, Any]) -> PolicySettings:
    plugins = cfg.get("plugins")
    entries = plugins.get("entries") if is_record(plugins) else None
    entry = entries.get("policy") if is_record(entries) else None
    config = entry.get("config") if is_record(entry) else None
    if not is_record(config):
        return PolicySettings()
    path = config.get("path")
    expected_hash = config.get("expectedHash")
    expected_attestation = config.get("expectedAttestationHash")
    return PolicySettings(
        enabled=config.get("enabled") is not False,
        path=js_trim(path) if isinstance(path, str) and js_trim(path) else None,
        expected_hash=expected_hash if isinstance(expected_hash, str) else None,
        expected_attestation_hash=(
            expected_attestation if isinstance(expected_attestation, str) else None
        ),
    )


@dataclass(frozen=True, slots=True)
class PolicyEvaluation:
    policy_path: str
    policy_hash: str | None
    policy_value: Any
    evidence: dict[str, Any]
    expected_attestation_hash: str | None
    findings: tuple[Finding, ...]
    attested_findings: tuple[Finding, ...]


def evaluate_policy(
    cfg: dict[str, Any],
    *,
    settings: PolicySettings,
    policy_display: str,
    policy_raw: str | None,
    read_tools_md: Callable[[], str | None],
    attestation_hash_of: Callable[[str, str, dict[str, Any], tuple[Finding, ...]], str],
) -> PolicyEvaluation:
    """Evaluate a policy against the config; I/O comes in through the arguments.

    ``policy_raw`` is the policy file's text (``None`` when missing);
    ``read_tools_md`` is called only when ``tools.requireMetadata`` asks for
    TOOLS.md; ``attestation_hash_of(policy_path, policy_hash, evidence, findings)``
    computes the attestation hash for the ``expectedAttestationHash`` gate.
    """
    doc = policy_display.rsplit("/", 1)[-1]  # Node's POSIX path.basename
    evidence = collect_policy_evidence(cfg, EvidenceOptions())
    expected_attestation = settings.expected_attestation_hash

    def result(
        found: list[Finding],
        attested: list[Finding] | None = None,
        policy_hash: str | None = None,
        value: Any = UNDEFINED,
    ) -> PolicyEvaluation:
        return PolicyEvaluation(
            policy_path=policy_display,
            policy_hash=policy_hash,
            policy_value=value,
            evidence=evidence,
            expected_attestation_hash=expected_attestation,
            findings=tuple(found),
            attested_findings=tuple(found if attested is None else attested),
        )

    if not settings.enabled:
        return result([])
    if policy_raw is None:
        missing = Finding(
            ids.POLICY_JSONC_MISSING,
            "warning",
            f"{policy_display} is missing for the enabled Policy plugin.",
            path=policy_display,
            fix_hint=f"Restore {policy_display} or add the policy artifact for this workspace.",
        )
        return result([missing])
    parsed = parse_json5(policy_raw)
    if not parsed.ok:
        unparsable = Finding(
            ids.POLICY_JSONC_INVALID,
            "error",
            f"{policy_display} could not be parsed: {parsed.message}",
            path=policy_display,
            target=f"oc://{doc}",
            fix_hint=f"Fix {policy_display} so policy conformance checks can run.",
        )
        return result([unparsable])
    policy = parsed.value
    policy_hash = policy_document_hash(policy)
    expected_hash = settings.expected_hash
    if expected_hash is not None and expected_hash.strip() and policy_hash != expected_hash.strip():
        mismatch = Finding(
            check_id=ids.POLICY_HASH_MISMATCH,
            severity="error",
            message=f"{policy_display} does not match the configured policy hash.",
            path=policy_display,
            target=f"oc://{doc}",
            requirement="oc://openclaw.config/plugins/entries/policy/config/expectedHash",
            fix_hint="Restore the approved policy artifact or update "
            "plugins.entries.policy.config.expectedHash after review.",
        )
        return result([mismatch], policy_hash=policy_hash, value=policy)

    metadata_findings = shape_findings(policy, TOOL_METADATA_SHAPES, policy_display, doc)
    auth_metadata_findings = shape_findings(policy, AUTH_METADATA_SHAPES, policy_display, doc)
    required_metadata = (
        set(read_policy_string_array(policy, ("tools", "requireMetadata")) or [])
        if not metadata_findings
        else set()
    )
    tools_raw: str | None = None
    if required_metadata:
        tools_raw = read_tools_md() or ""
    evidence = collect_policy_evidence(
        cfg,
        EvidenceOptions(
            gateway_exposure=has_gateway_rules(policy),
            agent_workspace=has_agent_workspace_rules(policy),
            tool_posture=has_tool_posture_rules(policy),
            secrets=has_secret_rules(policy),
            auth_profiles=has_auth_profile_rules(policy),
            tools_raw=tools_raw,
        ),
    )
    policy_findings = [
        *policy_container_shape_findings(policy, policy_display, doc),
        *channel_findings(policy, policy_display, doc, evidence),
        *mcp_findings(policy, doc, evidence),
        *model_findings(policy, doc, evidence),
        *network_findings(policy, doc, evidence),
        *gateway_findings(policy, doc, evidence),
        *agent_workspace_findings(policy, policy_display, doc, evidence),
        *tool_posture_findings(policy, policy_display, doc, evidence),
        *secret_auth_findings(policy, policy_display, doc, evidence),
        *auth_metadata_findings,
        *metadata_findings,
        *tool_metadata_findings(required_metadata, doc, evidence),
    ]
    visible = policy_findings
    has_invalid = any(f.check_id == ids.POLICY_JSONC_INVALID for f in policy_findings)
    expected = (expected_attestation or "").strip()
    if not has_invalid and expected:
        current = attestation_hash_of(policy_display, policy_hash, evidence, tuple(policy_findings))
        if current != expected:
            visible = [
                Finding(
                    check_id=ids.ATTESTATION_HASH_MISMATCH,
                    severity="error",
                    message="The current policy check no longer matches the accepted policy "
                    "attestation.",
                    path="policy attestation",
                    target="oc://policy/attestation/current",
                    requirement="oc://openclaw.config/plugins/entries/policy/config/"
                    "expectedAttestationHash",
                    fix_hint=f"Run policy check, review attestation {current}, then update "
                    "plugins.entries.policy.config.expectedAttestationHash and the "
                    "supervisor/gateway accepted attestation.",
                )
            ]
    return result(visible, policy_findings, policy_hash=policy_hash, value=policy)
