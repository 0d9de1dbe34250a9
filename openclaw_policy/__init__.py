"""OpenClaw-compatible policy checks (``openclaw policy check`` / ``policy watch``).

A port of the OpenClaw Policy plugin: the same findings, the same evidence and
byte-identical policy, workspace, findings and attestation hashes
(formats.md §8). Pure domain code: it reads files, never prints, and knows
nothing about Kafka, Postgres or HTTP.

>>> result = run_policy_check("policy.jsonc", "openclaw.json", ".")  # doctest: +SKIP
>>> result.to_json()["attestation"]["attestationHash"]  # doctest: +SKIP
"""

from __future__ import annotations

from openclaw_policy.attestation import (
    PolicyAttestation,
    create_policy_attestation,
    policy_attestation_hash,
    policy_document_hash,
    policy_findings_hash,
    policy_workspace_hash,
)
from openclaw_policy.collation import locale_compare
from openclaw_policy.findings import POLICY_CHECK_IDS, SEVERITIES, Finding, Severity
from openclaw_policy.loader import parse_json5, resolve_config_path
from openclaw_policy.report import PolicyCheckResult, WatchStatus, iso_timestamp, run_policy_check
from openclaw_policy.stable_json import js_stringify, sha256_tagged, stable_json

__all__ = [
    "POLICY_CHECK_IDS",
    "SEVERITIES",
    "Finding",
    "PolicyAttestation",
    "PolicyCheckResult",
    "Severity",
    "WatchStatus",
    "create_policy_attestation",
    "iso_timestamp",
    "js_stringify",
    "locale_compare",
    "parse_json5",
    "policy_attestation_hash",
    "policy_document_hash",
    "policy_findings_hash",
    "policy_workspace_hash",
    "resolve_config_path",
    "run_policy_check",
    "sha256_tagged",
    "stable_json",
]
