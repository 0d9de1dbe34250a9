"""``policy check`` as a function: inputs in, a :class:`PolicyCheckResult` out.

This is upstream's ``buildPolicyCheckReport`` (``extensions/policy/src/cli.ts``):
the OpenClaw config is read first (an unreadable config yields
``policy/config-invalid`` findings and no attestation), the Policy plugin is
treated as enabled, the policy is evaluated, findings are filtered by
``--severity-min`` for display and exit code, and the attestation is built
from the *unfiltered* attested findings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from openclaw_policy import findings as ids
from openclaw_policy.attestation import PolicyAttestation, create_policy_attestation
from openclaw_policy.evaluation import PolicySettings, evaluate_policy, policy_settings_from_config
from openclaw_policy.findings import (
    POLICY_CHECK_IDS,
    Finding,
    Severity,
    meets_severity,
    parse_severity,
)
from openclaw_policy.loader import (
    load_openclaw_config,
    read_text_file,
    resolve_config_path,
    resolve_workspace_dir,
)

__all__ = [
    "DEFAULT_POLICY_FILE",
    "PolicyCheckResult",
    "WatchStatus",
    "iso_timestamp",
    "run_policy_check",
]

DEFAULT_POLICY_FILE = "policy.jsonc"
WatchStatus = Literal["clean", "findings", "stale"]


def iso_timestamp(moment: datetime) -> str:
    """JavaScript ``Date.prototype.toISOString``: UTC, milliseconds, ``Z``."""
    utc = moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyCheckResult:
    """Everything ``policy check`` reports. :meth:`to_json` is the ``--json`` document."""

    attestation: PolicyAttestation | None = None
    evidence: dict[str, Any]
    checks_run: int
    checks_skipped: int
    #: the findings at or above the severity asked for (``ok`` when there are none)
    findings: tuple[Finding, ...]
    attested_findings: tuple[Finding, ...]
    expected_attestation_hash: str | None = None
    policy_path: str
    policy_file: Path | None = None
    config_path: Path
    workspace_dir: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def exit_code(self) -> int:
        return 1 if self.findings else 0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": self.ok}
        if self.attestation is not None:
            out["attestation"] = self.attestation.to_json()
        out["evidence"] = self.evidence
        out["checksRun"] = self.checks_run
        out["checksSkipped"] = self.checks_skipped
        out["findings"] = [finding.to_json() for finding in self.findings]
        return out

    def watch_status(self) -> WatchStatus:
        """``clean``, ``findings`` or ``stale`` (the accepted attestation hash is out of date)."""
        if not self.ok and any(f.check_id != ids.ATTESTATION_HASH_MISMATCH for f in self.findings):
            return "findings"
        expected = (self.expected_attestation_hash or "").strip()
        if (
            expected
            and self.attestation is not None
            and self.attestation.attestation_hash != expected
        ):
            return "stale"
        return "clean" if self.ok else "findings"

    def watch_exit_code(self) -> int:
        return 1 if self.watch_status() == "stale" else self.exit_code

    def watch_key(self) -> str:
        """Changes exactly when ``policy watch`` reports (and publishes) a new state."""
        current = self.attestation.attestation_hash if self.attestation is not None else ""
        return f"{self.watch_status()}:{current}:{self.exit_code}"

    def watch_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.watch_status(), "ok": self.ok}
        if self.expected_attestation_hash is not None:
            out["expectedAttestationHash"] = self.expected_attestation_hash
        if self.attestation is not None:
            out["attestation"] = self.attestation.to_json()
        out["findings"] = [finding.to_json() for finding in self.findings]
        return out


def _policy_location(
    explicit: str | os.PathLike[str] | None, settings: PolicySettings, workspace: Path
) -> tuple[str, Path]:
    """``(display name, file)``. The display name is what findings and the attestation show."""
    if explicit is not None:
        path = Path(explicit).expanduser().resolve()
        try:
            return path.relative_to(workspace.resolve()).as_posix(), path
        except ValueError:
            return path.name, path
    configured = settings.path or DEFAULT_POLICY_FILE
    if os.path.isabs(configured):
        return os.path.basename(configured), Path(configured)
    return configured, workspace / configured


def run_policy_check(
    policy_path: str | os.PathLike[str] | None = None,
    config_path: str | os.PathLike[str] | None = None,
    workspace_dir: str | os.PathLike[str] | None = None,
    *,
    expected_hash: str | None = None,
    expected_attestation_hash: str | None = None,
    severity_min: str = "info",
    now: datetime | None = None,
    env: Mapping[str, str] | None = None,
) -> PolicyCheckResult:
    """Run ``openclaw policy check`` against files on disk.

    ``policy_path`` defaults to ``plugins.entries.policy.config.path`` (else
    ``policy.jsonc``) inside the workspace; ``config_path`` to the OpenClaw
    config location; ``workspace_dir`` to the default agent's workspace.
    ``expected_hash`` / ``expected_attestation_hash`` override the accepted
    hashes from the config. Raises :class:`ledger.errors.ConfigError` for a bad
    severity or an unreadable (not merely missing) file.
    """
    minimum: Severity = parse_severity(severity_min)
    resolved_config = resolve_config_path(config_path, env)
    snapshot = load_openclaw_config(resolved_config)
    if not snapshot.valid:
        invalid = tuple(
            Finding(
                check_id=ids.CONFIG_INVALID,
                severity="error",
                message=issue.message,
                path=issue.path,
            )
            for issue in snapshot.issues
        )
        visible = tuple(f for f in invalid if meets_severity(f, minimum))
        return PolicyCheckResult(
            evidence={"channels": []},
            checks_run=1,
            checks_skipped=len(POLICY_CHECK_IDS),
            findings=visible,
            attested_findings=invalid,
            policy_path=DEFAULT_POLICY_FILE,
            config_path=resolved_config,
        )
    cfg = snapshot.config
    settings = policy_settings_from_config(cfg)
    if expected_hash is not None:
        settings = replace(settings, expected_hash=expected_hash)
    if expected_attestation_hash is not None:
        settings = replace(settings, expected_attestation_hash=expected_attestation_hash)
    workspace = (
        Path(workspace_dir).expanduser().resolve()
        if workspace_dir is not None
        else resolve_workspace_dir(cfg, env)
    )
    display, policy_file = _policy_location(policy_path, settings, workspace)

    def attestation_hash_of(
        path: str, policy_hash: str, evidence: dict[str, Any], found: tuple[Finding, ...]
    ) -> str:
        return create_policy_attestation(
            ok=not found,
            checked_at=iso_timestamp(datetime.fromtimestamp(0, UTC)),
            policy_path=path,
            policy_hash=policy_hash,
            evidence=evidence,
            findings=found,
        ).attestation_hash

    evaluation = evaluate_policy(
        cfg,
        settings=settings,
        policy_display=display,
        policy_raw=read_text_file(policy_file) if settings.enabled else None,
        read_tools_md=lambda: read_text_file(workspace / "TOOLS.md"),
        attestation_hash_of=attestation_hash_of,
    )
    visible = tuple(f for f in evaluation.findings if meets_severity(f, minimum))
    attestation = create_policy_attestation(
        ok=not evaluation.attested_findings,
        checked_at=iso_timestamp(now or datetime.now(UTC)),
        policy_path=evaluation.policy_path,
        policy_hash=evaluation.policy_hash,
        evidence=evaluation.evidence,
        findings=evaluation.attested_findings,
    )
    return PolicyCheckResult(
        attestation=attestation,
        evidence=evaluation.evidence,
        checks_run=len(POLICY_CHECK_IDS),
        checks_skipped=0,
        findings=visible,
        attested_findings=evaluation.attested_findings,
        expected_attestation_hash=evaluation.expected_attestation_hash,
        policy_path=evaluation.policy_path,
        policy_file=policy_file,
        config_path=resolved_config,
        workspace_dir=workspace,
    )
