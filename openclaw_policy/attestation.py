"""Policy, evidence, findings and attestation hashes (docs/formats.md §8).

All four hashes are ``"sha256:" + hex`` of the ``stableJson`` text of:

* ``policy.hash`` — the parsed JSON5 policy value;
* ``workspace.hash`` — the evidence object;
* ``findingsHash`` — the list of attested findings (``Finding.to_json``), taken
  before severity filtering;
* ``attestationHash`` — ``{ok, policyHash, workspaceHash, findingsHash}``, where
  ``ok`` means "no attested findings" and a missing policy hash is JavaScript
  ``undefined``. ``checkedAt`` is deliberately outside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from openclaw_policy.findings import Finding
from openclaw_policy.jsutil import UNDEFINED
from openclaw_policy.stable_json import sha256_tagged, stable_json

__all__ = [
    "PolicyAttestation",
    "create_policy_attestation",
    "policy_attestation_hash",
    "policy_document_hash",
    "policy_findings_hash",
    "policy_workspace_hash",
]


def policy_document_hash(policy: Any) -> str:
    return sha256_tagged(stable_json(policy))


def policy_workspace_hash(evidence: dict[str, Any]) -> str:
    return sha256_tagged(stable_json(evidence))


def policy_findings_hash(findings: Sequence[Finding]) -> str:
    return sha256_tagged(stable_json([finding.to_json() for finding in findings]))


def policy_attestation_hash(
    *, ok: bool, policy_hash: str | None, workspace_hash: str, findings_hash: str
) -> str:
    return sha256_tagged(
        stable_json(
            {
                "ok": ok,
                "policyHash": UNDEFINED if policy_hash is None else policy_hash,
                "workspaceHash": workspace_hash,
                "findingsHash": findings_hash,
            }
        )
    )


@dataclass(frozen=True, slots=True)
class PolicyAttestation:
    checked_at: str
    policy_path: str
    policy_hash: str | None
    workspace_hash: str
    findings_hash: str
    ok: bool

    @property
    def attestation_hash(self) -> str:
        """Of ``ok`` and the three hashes; ``checked_at`` and the path are outside it."""
        return policy_attestation_hash(
            ok=self.ok,
            policy_hash=self.policy_hash,
            workspace_hash=self.workspace_hash,
            findings_hash=self.findings_hash,
        )

    def to_json(self) -> dict[str, Any]:
        """The ``attestation`` member of ``policy check --json``, in upstream key order."""
        out: dict[str, Any] = {"checkedAt": self.checked_at}
        if self.policy_hash is not None:
            out["policy"] = {"path": self.policy_path, "hash": self.policy_hash}
        out["workspace"] = {"scope": "policy", "hash": self.workspace_hash}
        out["findingsHash"] = self.findings_hash
        out["attestationHash"] = self.attestation_hash
        return out


def create_policy_attestation(
    *,
    ok: bool,
    checked_at: str,
    policy_path: str,
    policy_hash: str | None,
    evidence: dict[str, Any],
    findings: Sequence[Finding],
) -> PolicyAttestation:
    workspace_hash = policy_workspace_hash(evidence)
    findings_hash = policy_findings_hash(findings)
    return PolicyAttestation(
        checked_at, policy_path, policy_hash, workspace_hash, findings_hash, ok
    )
