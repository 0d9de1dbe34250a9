"""Policy check ids, severities and the finding record.

Check ids, their order and the finding fields follow the OpenClaw policy
plugin (``extensions/policy/src/doctor/register.ts``); the order of
:data:`POLICY_CHECK_IDS` is the registration order upstream and its length is
the ``checksRun`` count of a policy check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from ledger.errors import ConfigError

__all__ = [
    "CONFIG_INVALID",
    "POLICY_CHECK_IDS",
    "SEVERITIES",
    "Finding",
    "Severity",
    "meets_severity",
    "parse_severity",
]

Severity = Literal["info", "warning", "error"]
SEVERITIES: Final[tuple[Severity, ...]] = ("info", "warning", "error")
_RANK: Final = {name: index for index, name in enumerate(SEVERITIES)}

POLICY_JSONC_MISSING: Final = "policy/policy-jsonc-missing"
POLICY_JSONC_INVALID: Final = "policy/policy-jsonc-invalid"
POLICY_HASH_MISMATCH: Final = "policy/policy-hash-mismatch"
ATTESTATION_HASH_MISMATCH: Final = "policy/attestation-hash-mismatch"
CHANNELS_DENIED_PROVIDER: Final = "policy/channels-denied-provider"
MCP_DENIED_SERVER: Final = "policy/mcp-denied-server"
MCP_UNAPPROVED_SERVER: Final = "policy/mcp-unapproved-server"
MODELS_DENIED_PROVIDER: Final = "policy/models-denied-provider"
MODELS_UNAPPROVED_PROVIDER: Final = "policy/models-unapproved-provider"
NETWORK_PRIVATE_ACCESS_ENABLED: Final = "policy/network-private-access-enabled"
GATEWAY_NON_LOOPBACK_BIND: Final = "policy/gateway-non-loopback-bind"
GATEWAY_AUTH_DISABLED: Final = "policy/gateway-auth-disabled"
GATEWAY_RATE_LIMIT_MISSING: Final = "policy/gateway-rate-limit-missing"
GATEWAY_CONTROL_UI_INSECURE: Final = "policy/gateway-control-ui-insecure"
GATEWAY_TAILSCALE_FUNNEL: Final = "policy/gateway-tailscale-funnel"
GATEWAY_REMOTE_ENABLED: Final = "policy/gateway-remote-enabled"
GATEWAY_HTTP_ENDPOINT_ENABLED: Final = "policy/gateway-http-endpoint-enabled"
GATEWAY_HTTP_URL_FETCH_UNRESTRICTED: Final = "policy/gateway-http-url-fetch-unrestricted"
AGENTS_WORKSPACE_ACCESS_DENIED: Final = "policy/agents-workspace-access-denied"
AGENTS_TOOL_NOT_DENIED: Final = "policy/agents-tool-not-denied"
TOOLS_PROFILE_UNAPPROVED: Final = "policy/tools-profile-unapproved"
TOOLS_FS_WORKSPACE_ONLY_REQUIRED: Final = "policy/tools-fs-workspace-only-required"
TOOLS_EXEC_SECURITY_UNAPPROVED: Final = "policy/tools-exec-security-unapproved"
TOOLS_EXEC_ASK_UNAPPROVED: Final = "policy/tools-exec-ask-unapproved"
TOOLS_EXEC_HOST_UNAPPROVED: Final = "policy/tools-exec-host-unapproved"
TOOLS_ELEVATED_ENABLED: Final = "policy/tools-elevated-enabled"
TOOLS_REQUIRED_DENY_MISSING: Final = "policy/tools-required-deny-missing"
SECRETS_UNMANAGED_PROVIDER: Final = "policy/secrets-unmanaged-provider"
SECRETS_DENIED_PROVIDER_SOURCE: Final = "policy/secrets-denied-provider-source"
SECRETS_INSECURE_PROVIDER: Final = "policy/secrets-insecure-provider"
AUTH_PROFILE_INVALID_METADATA: Final = "policy/auth-profile-invalid-metadata"
AUTH_PROFILE_UNAPPROVED_MODE: Final = "policy/auth-profile-unapproved-mode"
TOOLS_MISSING_RISK_LEVEL: Final = "policy/tools-missing-risk-level"
TOOLS_UNKNOWN_RISK_LEVEL: Final = "policy/tools-unknown-risk-level"
TOOLS_MISSING_SENSITIVITY_TOKEN: Final = "policy/tools-missing-sensitivity-token"
TOOLS_MISSING_OWNER: Final = "policy/tools-missing-owner"
TOOLS_UNKNOWN_SENSITIVITY_TOKEN: Final = "policy/tools-unknown-sensitivity-token"

#: Emitted by ``policy check`` itself when the OpenClaw config cannot be read.
CONFIG_INVALID: Final = "policy/config-invalid"

POLICY_CHECK_IDS: Final[tuple[str, ...]] = (
    POLICY_JSONC_MISSING,
    POLICY_JSONC_INVALID,
    POLICY_HASH_MISMATCH,
    ATTESTATION_HASH_MISMATCH,
    CHANNELS_DENIED_PROVIDER,
    MCP_DENIED_SERVER,
    MCP_UNAPPROVED_SERVER,
    MODELS_DENIED_PROVIDER,
    MODELS_UNAPPROVED_PROVIDER,
    NETWORK_PRIVATE_ACCESS_ENABLED,
    GATEWAY_NON_LOOPBACK_BIND,
    GATEWAY_AUTH_DISABLED,
    GATEWAY_RATE_LIMIT_MISSING,
    GATEWAY_CONTROL_UI_INSECURE,
    GATEWAY_TAILSCALE_FUNNEL,
    GATEWAY_REMOTE_ENABLED,
    GATEWAY_HTTP_ENDPOINT_ENABLED,
    GATEWAY_HTTP_URL_FETCH_UNRESTRICTED,
    AGENTS_WORKSPACE_ACCESS_DENIED,
    AGENTS_TOOL_NOT_DENIED,
    TOOLS_PROFILE_UNAPPROVED,
    TOOLS_FS_WORKSPACE_ONLY_REQUIRED,
    TOOLS_EXEC_SECURITY_UNAPPROVED,
    TOOLS_EXEC_ASK_UNAPPROVED,
    TOOLS_EXEC_HOST_UNAPPROVED,
    TOOLS_ELEVATED_ENABLED,
    TOOLS_REQUIRED_DENY_MISSING,
    SECRETS_UNMANAGED_PROVIDER,
    SECRETS_DENIED_PROVIDER_SOURCE,
    SECRETS_INSECURE_PROVIDER,
    AUTH_PROFILE_INVALID_METADATA,
    AUTH_PROFILE_UNAPPROVED_MODE,
    TOOLS_MISSING_RISK_LEVEL,
    TOOLS_UNKNOWN_RISK_LEVEL,
    TOOLS_MISSING_SENSITIVITY_TOKEN,
    TOOLS_MISSING_OWNER,
    TOOLS_UNKNOWN_SENSITIVITY_TOKEN,
)


@dataclass(frozen=True, slots=True)
class Finding:
    """One policy finding. ``None`` fields are absent from every JSON form."""

    check_id: str
    severity: Severity
    message: str
    source: str | None = "policy"
    path: str | None = None
    line: int | None = None
    oc_path: str | None = None
    target: str | None = None
    requirement: str | None = None
    fix_hint: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The finding as ``policy check --json`` prints it and as it is hashed.

        The key order is upstream's ``toJsonFinding``; ``findingsHash`` is the
        ``stableJson`` of a list of these.
        """
        out: dict[str, Any] = {
            "checkId": self.check_id,
            "severity": self.severity,
            "message": self.message,
        }
        for key, value in (
            ("source", self.source),
            ("path", self.path),
            ("line", self.line),
            ("ocPath", self.oc_path),
            ("target", self.target),
            ("requirement", self.requirement),
            ("fixHint", self.fix_hint),
        ):
            if value is not None:
                out[key] = value
        return out


def parse_severity(value: str) -> Severity:
    normalized = value.strip().lower()
    for severity in SEVERITIES:
        if severity == normalized:
            return severity
    raise ConfigError(
        "Invalid --severity-min value. Expected one of: info, warning, error.",
    )


def meets_severity(finding: Finding, minimum: Severity) -> bool:
    return _RANK[finding.severity] >= _RANK[minimum]
