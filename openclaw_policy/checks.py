"""Policy rules → findings: a port of OpenClaw's ``extensions/policy/src/doctor``.

:func:`evaluate_policy` follows upstream ``evaluatePolicyUncached`` step by
step: policy missing → invalid → hash mismatch → evidence (only the sections
the policy has rules for) → findings per rule family in upstream order →
attestation-mismatch gate. Messages, ``oc://`` paths, fix hints and the order
of findings are upstream's, since all of them are hashed.

A check runs only when its rule is present in the policy: every family below
returns nothing when its rule is absent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from openclaw_policy import findings as ids
from openclaw_policy.evidence import (
    AGENT_WORKSPACE_POLICY_TOOLS,
    Entry,
    EvidenceOptions,
    collect_policy_evidence,
    expand_policy_tool_requirement,
    normalize_provider_id,
    tool_list_covers_tool,
)
from openclaw_policy.findings import Finding
from openclaw_policy.jsutil import UNDEFINED, is_record, js_lower, js_trim
from openclaw_policy.loader import parse_json5

__all__ = ["PolicyEvaluation", "PolicySettings", "evaluate_policy", "policy_settings_from_config"]

KNOWN_RISK_LEVELS: Final = ("low", "medium", "high", "critical")
KNOWN_SENSITIVITY_LEVELS: Final = ("public", "internal", "confidential", "restricted")
SUPPORTED_TOOL_METADATA: Final = ("risk", "sensitivity", "owner")
SUPPORTED_AUTH_PROFILE_METADATA: Final = ("provider", "mode")
SUPPORTED_AUTH_PROFILE_MODES: Final = ("api_key", "aws-sdk", "oauth", "token")
SUPPORTED_GATEWAY_HTTP_ENDPOINTS: Final = ("chatCompletions", "responses")
SUPPORTED_AGENT_WORKSPACE_DENY_TOOLS: Final = AGENT_WORKSPACE_POLICY_TOOLS
SUPPORTED_TOOL_PROFILES: Final = ("minimal", "coding", "messaging", "full")
SUPPORTED_TOOL_EXEC_SECURITY: Final = ("deny", "allowlist", "full")
SUPPORTED_TOOL_EXEC_ASK: Final = ("off", "on-miss", "always")
SUPPORTED_TOOL_EXEC_HOST: Final = ("auto", "sandbox", "gateway", "node")

CONFIG_PATH_LABEL: Final = "openclaw config"
_CHANNEL_DENY_HINT: Final = (
    "Disable this channel, remove it from config, or update the policy deny rule."
)


# --- settings and the evaluation record ----------------------------------------------------


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


# --- reading policy values -----------------------------------------------------------------


def _get_path(value: Any, path: tuple[str, ...]) -> Any:
    current = value
    for part in path:
        if not is_record(current):
            return UNDEFINED
        current = current.get(part, UNDEFINED)
    return current


def _read_policy_string_array(
    policy: Any, path: tuple[str, ...], *, lowercase: bool = True
) -> list[str] | None:
    current = _get_path(policy, path)
    if not isinstance(current, list) or not all(isinstance(e, str) for e in current):
        return None
    out = []
    for entry in current:
        trimmed = js_trim(entry)
        value = js_lower(trimmed) if lowercase else trimmed
        if value:
            out.append(value)
    return out


def _read_string_list(policy: Any, path: tuple[str, ...], *, lowercase: bool = True) -> list[str]:
    return _read_policy_string_array(policy, path, lowercase=lowercase) or []


def _read_policy_boolean(policy: Any, path: tuple[str, ...]) -> bool | None:
    current = _get_path(policy, path)
    return current if isinstance(current, bool) else None


def _sub(record: Any, key: str) -> dict[str, Any]:
    value = record.get(key) if is_record(record) else None
    return value if is_record(value) else {}


# --- policy shape ----------------------------------------------------------------------------


def _shape(policy_path: str, target: str, message: str, fix_hint: str) -> Finding:
    return Finding(
        check_id=ids.POLICY_JSONC_INVALID,
        severity="error",
        message=message,
        path=policy_path,
        target=target,
        fix_hint=fix_hint,
    )


def _string_array_shape(
    value: Any, *, property_name: str, doc: str, policy_path: str, target: str, value_name: str
) -> Finding | None:
    """``policyStringArrayShapeFinding``: an ``{allow, deny}`` object of non-empty strings."""
    if value is UNDEFINED:
        return None
    if not is_record(value):
        return _shape(
            policy_path,
            f"oc://{doc}/{target}",
            f"{policy_path} {property_name} must be an object.",
            f"Fix {policy_path} so {property_name} is an object.",
        )
    for key in ("allow", "deny"):
        if key not in value:
            continue
        entries = value[key]
        key_target = f"oc://{doc}/{target}/{key}"
        if not isinstance(entries, list):
            return _shape(
                policy_path,
                key_target,
                f"{policy_path} {property_name}.{key} must be an array.",
                f"Fix {policy_path} so {property_name}.{key} is an array of {value_name}s.",
            )
        for index, entry in enumerate(entries):
            if not isinstance(entry, str) or js_trim(entry) == "":
                return _shape(
                    policy_path,
                    f"{key_target}/#{index}",
                    f"{policy_path} {property_name}.{key}[{index}] must be a non-empty string.",
                    f"Fix {policy_path} so each {property_name}.{key} entry is a {value_name}.",
                )
    return None


def _string_array_property_shape(
    value: Any,
    *,
    allowed: tuple[str, ...] | None = None,
    property_name: str,
    doc: str,
    policy_path: str,
    target: str,
    value_name: str,
) -> Finding | None:
    """``policyStringArrayPropertyShapeFinding``: a list of non-empty (allowed) strings."""
    if value is UNDEFINED:
        return None
    if not isinstance(value, list):
        return _shape(
            policy_path,
            f"oc://{doc}/{target}",
            f"{policy_path} {property_name} must be an array.",
            f"Fix {policy_path} so {property_name} is an array of {value_name}s.",
        )
    for index, entry in enumerate(value):
        invalid = not isinstance(entry, str) or js_trim(entry) == ""
        if not invalid and allowed is not None:
            assert isinstance(entry, str)
            invalid = js_trim(entry) not in allowed
        if invalid:
            hint = "" if allowed is None else f" Supported values: {', '.join(allowed)}."
            return _shape(
                policy_path,
                f"oc://{doc}/{target}/#{index}",
                f"{policy_path} {property_name}[{index}] must be a supported {value_name}.",
                f"Use non-empty {value_name} entries.{hint}",
            )
    return None


def _tool_posture_shape(tools: dict[str, Any], doc: str, policy_path: str) -> Finding | None:
    for section in ("profiles", "fs", "exec", "elevated", "alsoAllow"):
        if section in tools and not is_record(tools[section]):
            return _shape(
                policy_path,
                f"oc://{doc}/tools/{section}",
                f"{policy_path} tools.{section} must be an object.",
                f"Fix {policy_path} so tools.{section} is an object.",
            )
    finding = _string_array_property_shape(
        _sub(tools, "profiles").get("allow", UNDEFINED),
        allowed=SUPPORTED_TOOL_PROFILES,
        property_name="tools.profiles.allow",
        doc=doc,
        policy_path=policy_path,
        target="tools/profiles/allow",
        value_name="tool profile id",
    )
    if finding is not None:
        return finding
    fs = _sub(tools, "fs")
    if "requireWorkspaceOnly" in fs and not isinstance(fs["requireWorkspaceOnly"], bool):
        return _shape(
            policy_path,
            f"oc://{doc}/tools/fs/requireWorkspaceOnly",
            f"{policy_path} tools.fs.requireWorkspaceOnly must be a boolean.",
            "Set tools.fs.requireWorkspaceOnly to true or false.",
        )
    exec_policy = _sub(tools, "exec")
    for key, supported, value_name in (
        ("allowSecurity", SUPPORTED_TOOL_EXEC_SECURITY, "exec security mode"),
        ("requireAsk", SUPPORTED_TOOL_EXEC_ASK, "exec ask mode"),
        ("allowHosts", SUPPORTED_TOOL_EXEC_HOST, "exec host"),
    ):
        finding = _string_array_property_shape(
            exec_policy.get(key, UNDEFINED),
            allowed=supported,
            property_name=f"tools.exec.{key}",
            doc=doc,
            policy_path=policy_path,
            target=f"tools/exec/{key}",
            value_name=value_name,
        )
        if finding is not None:
            return finding
    elevated = _sub(tools, "elevated")
    if "allow" in elevated and not isinstance(elevated["allow"], bool):
        return _shape(
            policy_path,
            f"oc://{doc}/tools/elevated/allow",
            f"{policy_path} tools.elevated.allow must be a boolean.",
            "Set tools.elevated.allow to true or false.",
        )
    finding = _string_array_property_shape(
        _sub(tools, "alsoAllow").get("expected", UNDEFINED),
        property_name="tools.alsoAllow.expected",
        doc=doc,
        policy_path=policy_path,
        target="tools/alsoAllow/expected",
        value_name="tool id",
    )
    if finding is not None:
        return finding
    return _string_array_property_shape(
        tools.get("denyTools", UNDEFINED),
        property_name="tools.denyTools",
        doc=doc,
        policy_path=policy_path,
        target="tools/denyTools",
        value_name="tool id or group",
    )


def _gateway_shape(value: Any, doc: str, policy_path: str) -> Finding | None:
    if value is UNDEFINED:
        return None
    if not is_record(value):
        return _shape(
            policy_path,
            f"oc://{doc}/gateway",
            f"{policy_path} gateway must be an object.",
            f"Fix {policy_path} so gateway is an object.",
        )
    for section in ("exposure", "auth", "controlUi", "remote", "http"):
        if section in value and not is_record(value[section]):
            return _shape(
                policy_path,
                f"oc://{doc}/gateway/{section}",
                f"{policy_path} gateway.{section} must be an object.",
                f"Fix {policy_path} so gateway.{section} is an object.",
            )
    for section, key in (
        ("exposure", "allowNonLoopbackBind"),
        ("exposure", "allowTailscaleFunnel"),
        ("auth", "requireAuth"),
        ("auth", "requireExplicitRateLimit"),
        ("controlUi", "allowInsecure"),
        ("remote", "allow"),
        ("http", "requireUrlAllowlists"),
    ):
        record = _sub(value, section)
        if key in record and not isinstance(record[key], bool):
            prop = f"gateway.{section}.{key}"
            return _shape(
                policy_path,
                f"oc://{doc}/gateway/{section}/{key}",
                f"{policy_path} {prop} must be a boolean.",
                f"Fix {policy_path} so {prop} is true or false.",
            )
    http = _sub(value, "http")
    if "denyEndpoints" in http:
        deny = http["denyEndpoints"]
        if not isinstance(deny, list):
            return _shape(
                policy_path,
                f"oc://{doc}/gateway/http/denyEndpoints",
                f"{policy_path} gateway.http.denyEndpoints must be an array.",
                'Use an array of endpoint ids such as ["responses"] or remove '
                "gateway.http.denyEndpoints.",
            )
        for index, entry in enumerate(deny):
            if not isinstance(entry, str) or js_trim(entry) not in SUPPORTED_GATEWAY_HTTP_ENDPOINTS:
                return _shape(
                    policy_path,
                    f"oc://{doc}/gateway/http/denyEndpoints/#{index}",
                    f"{policy_path} gateway.http.denyEndpoints[{index}] must be a supported "
                    "endpoint id.",
                    f"Use supported endpoint ids: {', '.join(SUPPORTED_GATEWAY_HTTP_ENDPOINTS)}.",
                )
    return None


def _agents_shape(value: Any, doc: str, policy_path: str) -> Finding | None:
    if value is UNDEFINED:
        return None
    if not is_record(value):
        return _shape(
            policy_path,
            f"oc://{doc}/agents",
            f"{policy_path} agents must be an object.",
            f"Fix {policy_path} so agents is an object.",
        )
    if "workspace" not in value:
        return None
    workspace = value["workspace"]
    if not is_record(workspace):
        return _shape(
            policy_path,
            f"oc://{doc}/agents/workspace",
            f"{policy_path} agents.workspace must be an object.",
            f"Fix {policy_path} so agents.workspace is an object.",
        )
    access_hint = 'Use workspace access values such as ["none", "ro"].'
    if "allowedAccess" in workspace:
        allowed = workspace["allowedAccess"]
        if not isinstance(allowed, list):
            return _shape(
                policy_path,
                f"oc://{doc}/agents/workspace/allowedAccess",
                f"{policy_path} agents.workspace.allowedAccess must be an array.",
                access_hint,
            )
        for index, entry in enumerate(allowed):
            if not isinstance(entry, str) or entry not in ("none", "ro", "rw"):
                return _shape(
                    policy_path,
                    f"oc://{doc}/agents/workspace/allowedAccess/#{index}",
                    f"{policy_path} agents.workspace.allowedAccess[{index}] must be none, ro, "
                    "or rw.",
                    access_hint,
                )
    if "denyTools" in workspace:
        deny = workspace["denyTools"]
        if not isinstance(deny, list):
            return _shape(
                policy_path,
                f"oc://{doc}/agents/workspace/denyTools",
                f"{policy_path} agents.workspace.denyTools must be an array.",
                'Use tool ids such as ["exec", "process", "write", "edit", "apply_patch"].',
            )
        for index, entry in enumerate(deny):
            if (
                not isinstance(entry, str)
                or js_trim(entry) not in SUPPORTED_AGENT_WORKSPACE_DENY_TOOLS
            ):
                return _shape(
                    policy_path,
                    f"oc://{doc}/agents/workspace/denyTools/#{index}",
                    f"{policy_path} agents.workspace.denyTools[{index}] must be a supported "
                    "agent workspace tool id.",
                    f"Use supported tool ids: {', '.join(SUPPORTED_AGENT_WORKSPACE_DENY_TOOLS)}.",
                )
    return None


def policy_container_shape_findings(policy: Any, policy_path: str, doc: str) -> list[Finding]:
    """The first structural problem of the policy document, if any."""
    if not is_record(policy):
        return [
            _shape(
                policy_path,
                f"oc://{doc}",
                f"{policy_path} must contain a policy object.",
                f"Fix {policy_path} so the top-level policy is an object.",
            )
        ]
    if "tools" in policy and not is_record(policy["tools"]):
        return [_object_shape(policy_path, doc, "tools")]
    tools = _sub(policy, "tools")
    if "settings" in tools and not is_record(tools["settings"]):
        return [_object_shape(policy_path, doc, "tools.settings")]
    if "entries" in tools and not isinstance(tools["entries"], list):
        return [
            _shape(
                policy_path,
                f"oc://{doc}/tools/entries",
                f"{policy_path} tools.entries must be an array.",
                f"Fix {policy_path} so tools.entries is an array.",
            )
        ]
    if is_record(policy.get("tools")):
        posture = _tool_posture_shape(tools, doc, policy_path)
        if posture is not None:
            return [posture]
    if "channels" in policy and not is_record(policy["channels"]):
        return [_object_shape(policy_path, doc, "channels")]
    if "mcp" in policy and not is_record(policy["mcp"]):
        return [_object_shape(policy_path, doc, "mcp")]
    if is_record(policy.get("mcp")):
        finding = _string_array_shape(
            policy["mcp"].get("servers", UNDEFINED),
            property_name="mcp.servers",
            doc=doc,
            policy_path=policy_path,
            target="mcp/servers",
            value_name="MCP server id",
        )
        if finding is not None:
            return [finding]
    if "models" in policy and not is_record(policy["models"]):
        return [_object_shape(policy_path, doc, "models")]
    if is_record(policy.get("models")):
        finding = _string_array_shape(
            policy["models"].get("providers", UNDEFINED),
            property_name="models.providers",
            doc=doc,
            policy_path=policy_path,
            target="models/providers",
            value_name="model provider id",
        )
        if finding is not None:
            return [finding]
    if "network" in policy and not is_record(policy["network"]):
        return [_object_shape(policy_path, doc, "network")]
    network = _sub(policy, "network")
    if "privateNetwork" in network and not is_record(network["privateNetwork"]):
        return [_object_shape(policy_path, doc, "network.privateNetwork")]
    private = _sub(network, "privateNetwork")
    if "allow" in private and not isinstance(private["allow"], bool):
        return [
            _shape(
                policy_path,
                f"oc://{doc}/network/privateNetwork/allow",
                f"{policy_path} network.privateNetwork.allow must be a boolean.",
                f"Fix {policy_path} so network.privateNetwork.allow is true or false.",
            )
        ]
    if "secrets" in policy and not is_record(policy["secrets"]):
        return [_object_shape(policy_path, doc, "secrets")]
    if "auth" in policy and not is_record(policy["auth"]):
        return [_object_shape(policy_path, doc, "auth")]
    auth = _sub(policy, "auth")
    if "profiles" in auth and not is_record(auth["profiles"]):
        return [_object_shape(policy_path, doc, "auth.profiles")]
    for finding in (
        _gateway_shape(policy.get("gateway", UNDEFINED), doc, policy_path),
        _agents_shape(policy.get("agents", UNDEFINED), doc, policy_path),
    ):
        if finding is not None:
            return [finding]
    return []


def _object_shape(policy_path: str, doc: str, dotted: str) -> Finding:
    return _shape(
        policy_path,
        f"oc://{doc}/{dotted.replace('.', '/')}",
        f"{policy_path} {dotted} must be an object.",
        f"Fix {policy_path} so {dotted} is an object.",
    )


def _tool_metadata_requirement_findings(policy: Any, policy_path: str, doc: str) -> list[Finding]:
    tools = _sub(policy, "tools")
    if (
        not is_record(policy)
        or not is_record(policy.get("tools"))
        or "requireMetadata" not in tools
    ):
        return []
    required = tools["requireMetadata"]
    hint = f"Use supported metadata keys: {', '.join(SUPPORTED_TOOL_METADATA)}."
    if not isinstance(required, list):
        return [
            _shape(
                policy_path,
                f"oc://{doc}/tools/requireMetadata",
                f"{policy_path} tools.requireMetadata must be an array of metadata keys.",
                hint,
            )
        ]
    for index, entry in enumerate(required):
        if not isinstance(entry, str) or js_lower(js_trim(entry)) not in SUPPORTED_TOOL_METADATA:
            return [
                _shape(
                    policy_path,
                    f"oc://{doc}/tools/requireMetadata/#{index}",
                    f"{policy_path} tools.requireMetadata[{index}] must be a supported "
                    "metadata key.",
                    hint,
                )
            ]
    return []


def _auth_metadata_requirement_findings(policy: Any, policy_path: str, doc: str) -> list[Finding]:
    profiles = _sub(_sub(policy, "auth"), "profiles")
    if "requireMetadata" not in profiles:
        return []
    required = profiles["requireMetadata"]
    hint = f"Use supported metadata keys: {', '.join(SUPPORTED_AUTH_PROFILE_METADATA)}."
    if not isinstance(required, list):
        return [
            _shape(
                policy_path,
                f"oc://{doc}/auth/profiles/requireMetadata",
                f"{policy_path} auth.profiles.requireMetadata must be an array of metadata keys.",
                hint,
            )
        ]
    for index, entry in enumerate(required):
        if (
            not isinstance(entry, str)
            or js_lower(js_trim(entry)) not in SUPPORTED_AUTH_PROFILE_METADATA
        ):
            return [
                _shape(
                    policy_path,
                    f"oc://{doc}/auth/profiles/requireMetadata/#{index}",
                    f"{policy_path} auth.profiles.requireMetadata[{index}] must be a supported "
                    "metadata key.",
                    hint,
                )
            ]
    return []


# --- findings per rule family ----------------------------------------------------------------


def _config_finding(
    check_id: str, message: str, source: str, requirement: str, fix_hint: str
) -> Finding:
    return Finding(
        check_id=check_id,
        severity="error",
        message=message,
        path=CONFIG_PATH_LABEL,
        oc_path=source,
        target=source,
        requirement=requirement,
        fix_hint=fix_hint,
    )


def _is_channel_deny_rule(value: Any) -> bool:
    return (
        is_record(value)
        and ("id" not in value or isinstance(value["id"], str))
        and ("reason" not in value or isinstance(value["reason"], str))
        and is_record(value.get("when"))
        and isinstance(value["when"].get("provider"), str)
    )


def _channel_findings(
    policy: Any, policy_path: str, doc: str, evidence: dict[str, Any]
) -> list[Finding]:
    channels_policy = _sub(policy, "channels")
    if not is_record(policy) or "denyRules" not in channels_policy:
        return []
    rules = channels_policy["denyRules"]
    if not isinstance(rules, list):
        return [
            _shape(
                policy_path,
                f"oc://{doc}/channels/denyRules",
                f"{policy_path} channels.denyRules must be an array.",
                f"Fix {policy_path} so channel deny rules are an array.",
            )
        ]
    for index, rule in enumerate(rules):
        if not _is_channel_deny_rule(rule):
            return [
                _shape(
                    policy_path,
                    f"oc://{doc}/channels/denyRules/#{index}",
                    f"{policy_path} channels.denyRules[{index}] must define when.provider as a "
                    "string.",
                    f"Fix {policy_path} so each channel deny rule has a provider match.",
                )
            ]
    out: list[Finding] = []
    for channel in evidence["channels"]:
        if channel.get("enabled") is False:
            continue
        match = next(
            (
                (index, rule)
                for index, rule in enumerate(rules)
                if rule["when"]["provider"] == channel["provider"]
            ),
            None,
        )
        if match is None:
            continue
        index, rule = match
        out.append(
            _config_finding(
                ids.CHANNELS_DENIED_PROVIDER,
                f"Channel '{channel['id']}' uses denied provider '{channel['provider']}'.",
                channel["source"],
                f"oc://{doc}/channels/denyRules/#{index}",
                rule.get("reason", _CHANNEL_DENY_HINT),
            )
        )
    return out


def _mcp_findings(policy: Any, doc: str, evidence: dict[str, Any]) -> list[Finding]:
    denied = set(_read_string_list(policy, ("mcp", "servers", "deny"), lowercase=False))
    allowed = set(_read_string_list(policy, ("mcp", "servers", "allow"), lowercase=False))
    out: list[Finding] = []
    for server in evidence["mcpServers"]:
        sid = server["id"]
        if sid in denied:
            out.append(
                _config_finding(
                    ids.MCP_DENIED_SERVER,
                    f"MCP server '{sid}' is denied by policy.",
                    server["source"],
                    f"oc://{doc}/mcp/servers/deny",
                    "Remove this configured MCP server or update the policy after review.",
                )
            )
            continue
        if allowed and sid not in allowed:
            out.append(
                _config_finding(
                    ids.MCP_UNAPPROVED_SERVER,
                    f"MCP server '{sid}' is not in the policy allowlist.",
                    server["source"],
                    f"oc://{doc}/mcp/servers/allow",
                    "Use an approved MCP server or update the policy after review.",
                )
            )
    return out


def _model_findings(policy: Any, doc: str, evidence: dict[str, Any]) -> list[Finding]:
    denied = {
        normalize_provider_id(p) for p in _read_string_list(policy, ("models", "providers", "deny"))
    }
    allowed = {
        normalize_provider_id(p)
        for p in _read_string_list(policy, ("models", "providers", "allow"))
    }
    deny_req = f"oc://{doc}/models/providers/deny"
    allow_req = f"oc://{doc}/models/providers/allow"
    out: list[Finding] = []
    for provider in evidence["modelProviders"]:
        pid = provider["id"]
        if pid in denied:
            out.append(
                _config_finding(
                    ids.MODELS_DENIED_PROVIDER,
                    f"Model provider '{pid}' is denied by policy.",
                    provider["source"],
                    deny_req,
                    "Remove this configured provider or update the policy after review.",
                )
            )
        elif allowed and pid not in allowed:
            out.append(
                _config_finding(
                    ids.MODELS_UNAPPROVED_PROVIDER,
                    f"Model provider '{pid}' is not in the policy allowlist.",
                    provider["source"],
                    allow_req,
                    "Use an approved model provider or update the policy after review.",
                )
            )
    for ref in evidence["modelRefs"]:
        provider_id = ref["provider"]
        if provider_id in denied:
            out.append(
                _config_finding(
                    ids.MODELS_DENIED_PROVIDER,
                    f"Model ref '{ref['ref']}' uses denied provider '{provider_id}'.",
                    ref["source"],
                    deny_req,
                    "Select an approved model provider or update the policy after review.",
                )
            )
        elif allowed and provider_id not in allowed:
            out.append(
                _config_finding(
                    ids.MODELS_UNAPPROVED_PROVIDER,
                    f"Model ref '{ref['ref']}' uses unapproved provider '{provider_id}'.",
                    ref["source"],
                    allow_req,
                    "Select an approved model provider or update the policy after review.",
                )
            )
    return out


def _network_findings(policy: Any, doc: str, evidence: dict[str, Any]) -> list[Finding]:
    if _read_policy_boolean(policy, ("network", "privateNetwork", "allow")) is not False:
        return []
    return [
        _config_finding(
            ids.NETWORK_PRIVATE_ACCESS_ENABLED,
            f"Network setting '{setting['id']}' allows private-network access.",
            setting["source"],
            f"oc://{doc}/network/privateNetwork/allow",
            "Disable this private-network access setting or update policy after review.",
        )
        for setting in evidence["network"]
        if setting["value"]
    ]


def _gateway_findings(policy: Any, doc: str, evidence: dict[str, Any]) -> list[Finding]:
    entries: list[Entry] = evidence.get("gatewayExposure", [])
    out: list[Finding] = []

    def add(check_id: str, message: str, entry: Entry, rule: str, hint: str) -> None:
        out.append(_config_finding(check_id, message, entry["source"], f"oc://{doc}/{rule}", hint))

    if _read_policy_boolean(policy, ("gateway", "exposure", "allowNonLoopbackBind")) is False:
        for entry in entries:
            if entry["kind"] == "bind" and entry.get("nonLoopback") is True:
                message = (
                    "Gateway bind is omitted while the runtime default can permit non-loopback "
                    "exposure."
                    if entry.get("explicit") is False
                    else f"Gateway bind setting '{entry['id']}' permits non-loopback exposure."
                )
                add(
                    ids.GATEWAY_NON_LOOPBACK_BIND,
                    message,
                    entry,
                    "gateway/exposure/allowNonLoopbackBind",
                    "Use gateway.bind=loopback or update policy after review.",
                )
    if _read_policy_boolean(policy, ("gateway", "auth", "requireAuth")) is True:
        for entry in entries:
            if entry["kind"] == "auth" and entry.get("value") == "none":
                add(
                    ids.GATEWAY_AUTH_DISABLED,
                    "Gateway authentication is disabled.",
                    entry,
                    "gateway/auth/requireAuth",
                    "Set gateway.auth.mode to token, password, or trusted-proxy.",
                )
    if _read_policy_boolean(policy, ("gateway", "auth", "requireExplicitRateLimit")) is True:
        for entry in entries:
            if entry["kind"] == "authRateLimit" and entry.get("explicit") is not True:
                add(
                    ids.GATEWAY_RATE_LIMIT_MISSING,
                    "Gateway authentication rate-limit posture is not explicit.",
                    entry,
                    "gateway/auth/requireExplicitRateLimit",
                    "Configure gateway.auth.rateLimit or update policy after review.",
                )
    if _read_policy_boolean(policy, ("gateway", "controlUi", "allowInsecure")) is False:
        insecure_ids = (
            "gateway-control-ui-insecure-auth",
            "gateway-control-ui-device-auth-disabled",
            "gateway-control-ui-host-origin-fallback",
        )
        for entry in entries:
            if (
                entry["kind"] == "controlUi"
                and entry.get("value") is True
                and entry["id"] in insecure_ids
            ):
                add(
                    ids.GATEWAY_CONTROL_UI_INSECURE,
                    f"Gateway Control UI insecure toggle '{entry['id']}' is enabled.",
                    entry,
                    "gateway/controlUi/allowInsecure",
                    "Disable the insecure Control UI toggle or update policy after review.",
                )
    if _read_policy_boolean(policy, ("gateway", "exposure", "allowTailscaleFunnel")) is False:
        for entry in entries:
            if entry["kind"] == "tailscale" and entry.get("value") == "funnel":
                add(
                    ids.GATEWAY_TAILSCALE_FUNNEL,
                    "Gateway Tailscale Funnel exposure is enabled.",
                    entry,
                    "gateway/exposure/allowTailscaleFunnel",
                    "Use tailscale serve/off or update policy after review.",
                )
    if _read_policy_boolean(policy, ("gateway", "remote", "allow")) is False:
        for entry in entries:
            if entry["kind"] == "remote":
                add(
                    ids.GATEWAY_REMOTE_ENABLED,
                    f"Gateway remote posture '{entry['id']}' is enabled.",
                    entry,
                    "gateway/remote/allow",
                    "Disable remote gateway mode/config or update policy after review.",
                )
    denied = {js_lower(e) for e in _read_string_list(policy, ("gateway", "http", "denyEndpoints"))}
    if denied:
        for entry in entries:
            if entry["kind"] == "httpEndpoint" and js_lower(entry["endpoint"]) in denied:
                add(
                    ids.GATEWAY_HTTP_ENDPOINT_ENABLED,
                    f"Gateway HTTP endpoint '{entry['endpoint']}' is denied by policy.",
                    entry,
                    "gateway/http/denyEndpoints",
                    "Disable the HTTP endpoint or update policy after review.",
                )
    if _read_policy_boolean(policy, ("gateway", "http", "requireUrlAllowlists")) is True:
        for entry in entries:
            if entry["kind"] == "httpUrlFetch" and entry.get("hasAllowlist") is not True:
                add(
                    ids.GATEWAY_HTTP_URL_FETCH_UNRESTRICTED,
                    f"Gateway HTTP URL-fetch input '{entry['id']}' has no URL allowlist.",
                    entry,
                    "gateway/http/requireUrlAllowlists",
                    "Add a urlAllowlist for this URL-fetch input or update policy after review.",
                )
    return out


def _agent_label(entry: Entry) -> str:
    return "agents.defaults" if "agentId" not in entry else f"agent '{entry['agentId']}'"


def _agent_workspace_findings(
    policy: Any, policy_path: str, doc: str, evidence: dict[str, Any]
) -> list[Finding]:
    agents_value = policy.get("agents", UNDEFINED) if is_record(policy) else UNDEFINED
    if _agents_shape(agents_value, doc, policy_path) is not None:
        return []
    entries: list[Entry] = evidence.get("agentWorkspace", [])
    out: list[Finding] = []
    allowed = set(_read_string_list(policy, ("agents", "workspace", "allowedAccess")))
    if allowed:
        for entry in entries:
            if entry["kind"] != "workspaceAccess":
                continue
            sandbox_disabled = entry.get("sandboxEnabled") is not True
            if not sandbox_disabled and entry["value"] in allowed:
                continue
            observed = (
                f"sandbox mode '{entry.get('sandboxMode', 'off')}'"
                if sandbox_disabled
                else f"sandbox workspaceAccess '{entry['value']}'"
            )
            oc_path: str = (
                entry["sandboxModeSource"]
                if sandbox_disabled and "sandboxModeSource" in entry
                else entry["source"]
            )
            out.append(
                _config_finding(
                    ids.AGENTS_WORKSPACE_ACCESS_DENIED,
                    f"{_agent_label(entry)} {observed} is not allowed by policy.",
                    oc_path,
                    f"oc://{doc}/agents/workspace/allowedAccess",
                    "Enable sandbox mode with workspaceAccess none/ro or update policy "
                    "after review.",
                )
            )
    required = set(_read_string_list(policy, ("agents", "workspace", "denyTools")))
    if required:
        for entry in entries:
            if (
                entry["kind"] == "toolDeny"
                and entry["tool"] in required
                and entry["denied"] is not True
            ):
                out.append(
                    _config_finding(
                        ids.AGENTS_TOOL_NOT_DENIED,
                        f"{_agent_label(entry)} does not deny required tool '{entry['tool']}'.",
                        entry["source"],
                        f"oc://{doc}/agents/workspace/denyTools",
                        "Add the tool to tools.deny or agents.list[].tools.deny, or update policy "
                        "after review.",
                    )
                )
    return out


def _tool_posture_findings(
    policy: Any, policy_path: str, doc: str, evidence: dict[str, Any]
) -> list[Finding]:
    if not is_record(policy) or not is_record(policy.get("tools")):
        return []
    tools_policy: dict[str, Any] = policy["tools"]
    if _tool_posture_shape(tools_policy, doc, policy_path) is not None:
        return []
    entries: list[Entry] = evidence.get("toolPosture", [])

    def of_kind(kind: str) -> list[Entry]:
        return [entry for entry in entries if entry["kind"] == kind]

    def label(entry: Entry) -> str:
        return "global tools config" if "agentId" not in entry else f"agent '{entry['agentId']}'"

    def finding(entry: Entry, check_id: str, message: str, rule: str, hint: str) -> Finding:
        return _config_finding(check_id, message, entry["source"], f"oc://{doc}/tools/{rule}", hint)

    out: list[Finding] = []
    profiles = set(_read_string_list(tools_policy, ("profiles", "allow")))
    if profiles:
        for entry in of_kind("profile"):
            value = entry.get("value")
            if isinstance(value, str) and js_lower(value) not in profiles:
                out.append(
                    finding(
                        entry,
                        ids.TOOLS_PROFILE_UNAPPROVED,
                        f"{label(entry)} uses unapproved tool profile '{value}'.",
                        "profiles/allow",
                        "Use an approved tools.profile value or update policy after review.",
                    )
                )
    if _read_policy_boolean(tools_policy, ("fs", "requireWorkspaceOnly")) is True:
        for entry in of_kind("fsWorkspaceOnly"):
            if entry.get("value") is not True:
                out.append(
                    finding(
                        entry,
                        ids.TOOLS_FS_WORKSPACE_ONLY_REQUIRED,
                        f"{label(entry)} does not require workspace-only filesystem tools.",
                        "fs/requireWorkspaceOnly",
                        "Set tools.fs.workspaceOnly=true or update policy after review.",
                    )
                )
    for check_id, kind, rule, setting in (
        (ids.TOOLS_EXEC_SECURITY_UNAPPROVED, "execSecurity", "allowSecurity", "exec security"),
        (ids.TOOLS_EXEC_ASK_UNAPPROVED, "execAsk", "requireAsk", "exec ask"),
        (ids.TOOLS_EXEC_HOST_UNAPPROVED, "execHost", "allowHosts", "exec host"),
    ):
        allowed = set(_read_string_list(tools_policy, ("exec", rule)))
        if not allowed:
            continue
        for entry in of_kind(kind):
            value = entry.get("value")
            if isinstance(value, str) and js_lower(value) not in allowed:
                out.append(
                    finding(
                        entry,
                        check_id,
                        f"{label(entry)} uses unapproved {setting} '{value}'.",
                        f"exec/{rule}",
                        "Adjust the configured tool posture or update policy after review.",
                    )
                )
    if _read_policy_boolean(tools_policy, ("elevated", "allow")) is False:
        for entry in of_kind("elevatedEnabled"):
            if entry.get("value") is not False:
                out.append(
                    finding(
                        entry,
                        ids.TOOLS_ELEVATED_ENABLED,
                        f"{label(entry)} permits elevated tool mode.",
                        "elevated/allow",
                        "Set tools.elevated.enabled=false or update policy after review.",
                    )
                )
    required = _read_string_list(tools_policy, ("denyTools",))
    if required:
        required_tools = list(
            dict.fromkeys(
                tool for value in required for tool in expand_policy_tool_requirement(value)
            )
        )
        for entry in of_kind("deny"):
            for tool in required_tools:
                if tool_list_covers_tool(entry.get("entries", []), tool):
                    continue
                out.append(
                    finding(
                        entry,
                        ids.TOOLS_REQUIRED_DENY_MISSING,
                        f"{label(entry)} does not deny required tool '{tool}'.",
                        "denyTools",
                        "Add the tool or group to tools.deny/agents.list[].tools.deny, or update "
                        "policy after review.",
                    )
                )
    return out


def _secret_shape_findings(policy: Any, policy_path: str, doc: str) -> list[Finding]:
    secrets = _sub(policy, "secrets")
    if not is_record(policy) or not is_record(policy.get("secrets")):
        return []
    out: list[Finding] = []
    for key in ("requireManagedProviders", "allowInsecureProviders"):
        if key in secrets and not isinstance(secrets[key], bool):
            out.append(
                _shape(
                    policy_path,
                    f"oc://{doc}/secrets/{key}",
                    f"{policy_path} secrets.{key} must be a boolean.",
                    f"Set secrets.{key} to true or false.",
                )
            )
    if "denySources" in secrets:
        deny = secrets["denySources"]
        if not isinstance(deny, list):
            out.append(
                _shape(
                    policy_path,
                    f"oc://{doc}/secrets/denySources",
                    f"{policy_path} secrets.denySources must be an array of source names.",
                    'Use an array such as ["exec"] or remove secrets.denySources.',
                )
            )
        else:
            for index, entry in enumerate(deny):
                if not isinstance(entry, str) or js_trim(entry) == "":
                    out.append(
                        _shape(
                            policy_path,
                            f"oc://{doc}/secrets/denySources/#{index}",
                            f"{policy_path} secrets.denySources[{index}] must be a non-empty "
                            "source name.",
                            "Use non-empty source names such as env, file, exec, or openclaw.",
                        )
                    )
                    break
    return out


def _auth_modes_shape_findings(policy: Any, policy_path: str, doc: str) -> list[Finding]:
    profiles = _sub(_sub(policy, "auth"), "profiles")
    if "allowModes" not in profiles:
        return []
    modes = profiles["allowModes"]
    hint = f"Use supported auth modes: {', '.join(SUPPORTED_AUTH_PROFILE_MODES)}."
    if not isinstance(modes, list):
        return [
            _shape(
                policy_path,
                f"oc://{doc}/auth/profiles/allowModes",
                f"{policy_path} auth.profiles.allowModes must be an array of auth modes.",
                hint,
            )
        ]
    for index, entry in enumerate(modes):
        if (
            not isinstance(entry, str)
            or js_lower(js_trim(entry)) not in SUPPORTED_AUTH_PROFILE_MODES
        ):
            return [
                _shape(
                    policy_path,
                    f"oc://{doc}/auth/profiles/allowModes/#{index}",
                    f"{policy_path} auth.profiles.allowModes[{index}] must be a supported "
                    "auth mode.",
                    hint,
                )
            ]
    return []


def _secret_auth_findings(
    policy: Any, policy_path: str, doc: str, evidence: dict[str, Any]
) -> list[Finding]:
    secrets: list[Entry] = evidence.get("secrets", [])
    out = _secret_shape_findings(policy, policy_path, doc)
    if not out:
        if _read_policy_boolean(policy, ("secrets", "requireManagedProviders")) is True:
            providers = {
                f"{s['providerSource']}:{s['id']}"
                for s in secrets
                if s["kind"] == "provider" and "providerSource" in s
            }
            for secret in secrets:
                if (
                    secret["kind"] == "input"
                    and secret.get("provenance") == "secretRef"
                    and f"{secret['refSource']}:{secret['refProvider']}" not in providers
                ):
                    out.append(
                        _config_finding(
                            ids.SECRETS_UNMANAGED_PROVIDER,
                            f"SecretRef uses unmanaged provider '{secret['refProvider']}'.",
                            secret["source"],
                            f"oc://{doc}/secrets/requireManagedProviders",
                            "Declare the referenced provider under secrets.providers or update "
                            "policy after review.",
                        )
                    )
        denied_sources = set(_read_string_list(policy, ("secrets", "denySources")))
        if denied_sources:
            for secret in secrets:
                source = secret.get(
                    "providerSource" if secret["kind"] == "provider" else "refSource"
                )
                if source is not None and source in denied_sources:
                    out.append(
                        _config_finding(
                            ids.SECRETS_DENIED_PROVIDER_SOURCE,
                            f"Secret {secret['kind']} '{secret['id']}' uses denied source "
                            f"'{source}'.",
                            secret["source"],
                            f"oc://{doc}/secrets/denySources",
                            "Move this secret to an approved source or update policy after review.",
                        )
                    )
        if _read_policy_boolean(policy, ("secrets", "allowInsecureProviders")) is False:
            for secret in secrets:
                if secret["kind"] == "provider" and secret.get("insecure"):
                    out.append(
                        _config_finding(
                            ids.SECRETS_INSECURE_PROVIDER,
                            f"Secret provider '{secret['id']}' enables insecure posture: "
                            f"{', '.join(secret['insecure'])}.",
                            secret["source"],
                            f"oc://{doc}/secrets/allowInsecureProviders",
                            "Remove insecure provider overrides or update policy after review.",
                        )
                    )
    auth_shape = _auth_modes_shape_findings(policy, policy_path, doc)
    if auth_shape:
        return out + auth_shape
    profiles: list[Entry] = evidence.get("authProfiles", [])
    required_raw = _read_policy_string_array(policy, ("auth", "profiles", "requireMetadata")) or []
    required = list(dict.fromkeys(e for e in required_raw if e in SUPPORTED_AUTH_PROFILE_METADATA))
    if required:
        for profile in profiles:
            missing = [m for m in required if not _auth_profile_has(profile, m)]
            if missing:
                out.append(
                    _config_finding(
                        ids.AUTH_PROFILE_INVALID_METADATA,
                        f"Auth profile '{profile['id']}' is missing required metadata: "
                        f"{', '.join(missing)}.",
                        profile["source"],
                        f"oc://{doc}/auth/profiles/requireMetadata",
                        "Set auth.profiles.<id>.provider and a supported auth profile mode.",
                    )
                )
    allowed_modes = set(_read_string_list(policy, ("auth", "profiles", "allowModes")))
    if allowed_modes:
        for profile in profiles:
            if "mode" in profile and profile["mode"] not in allowed_modes:
                out.append(
                    _config_finding(
                        ids.AUTH_PROFILE_UNAPPROVED_MODE,
                        f"Auth profile '{profile['id']}' uses mode '{profile['mode']}' outside the "
                        "policy allowlist.",
                        profile["source"],
                        f"oc://{doc}/auth/profiles/allowModes",
                        "Change the auth profile mode or update policy after review.",
                    )
                )
    return out


def _auth_profile_has(profile: Entry, metadata: str) -> bool:
    if metadata == "provider":
        provider = profile.get("provider")
        return isinstance(provider, str) and js_trim(provider) != ""
    return profile.get("mode") in SUPPORTED_AUTH_PROFILE_MODES


def _tool_metadata_findings(
    required: set[str], doc: str, evidence: dict[str, Any]
) -> list[Finding]:
    tools: list[Entry] = evidence.get("tools", [])
    requirement = f"oc://{doc}/tools/requireMetadata"

    def tool_finding(tool: Entry, check_id: str, message: str, hint: str) -> Finding:
        return Finding(
            check_id=check_id,
            severity="error",
            message=message,
            path="TOOLS.md",
            line=tool["line"],
            oc_path=tool["source"],
            target=tool["source"],
            requirement=requirement,
            fix_hint=hint,
        )

    out: list[Finding] = []
    if "risk" in required:
        out += [
            tool_finding(
                tool,
                ids.TOOLS_MISSING_RISK_LEVEL,
                f"TOOLS.md tool '{tool['id']}' has no explicit risk classification.",
                "Declare risk:low, risk:medium, risk:high, risk:critical, or an R0-R5 review "
                "alias.",
            )
            for tool in tools
            if "risk" not in tool
        ]
        out += [
            tool_finding(
                tool,
                ids.TOOLS_UNKNOWN_RISK_LEVEL,
                f"TOOLS.md tool '{tool['id']}' declares unknown risk '{tool['risk']}'.",
                f"Use one of: {', '.join(KNOWN_RISK_LEVELS)}.",
            )
            for tool in tools
            if "risk" in tool and tool["risk"] not in KNOWN_RISK_LEVELS
        ]
    if "sensitivity" in required:
        for tool in tools:
            if "sensitivity" not in tool:
                out.append(
                    tool_finding(
                        tool,
                        ids.TOOLS_MISSING_SENSITIVITY_TOKEN,
                        f"TOOLS.md tool '{tool['id']}' has no declared artifact sensitivity.",
                        f"Declare sensitivity as one of: {', '.join(KNOWN_SENSITIVITY_LEVELS)}.",
                    )
                )
            elif tool["sensitivity"] not in KNOWN_SENSITIVITY_LEVELS:
                out.append(
                    tool_finding(
                        tool,
                        ids.TOOLS_UNKNOWN_SENSITIVITY_TOKEN,
                        f"TOOLS.md tool '{tool['id']}' declares unknown sensitivity "
                        f"'{tool['sensitivity']}'.",
                        f"Use one of: {', '.join(KNOWN_SENSITIVITY_LEVELS)}.",
                    )
                )
    if "owner" in required:
        out += [
            tool_finding(
                tool,
                ids.TOOLS_MISSING_OWNER,
                f"TOOLS.md tool '{tool['id']}' has no declared owner.",
                "Declare owner:<team-or-person> for this tool.",
            )
            for tool in tools
            if "owner" not in tool
        ]
    return out


# --- which evidence sections a policy asks for --------------------------------------------


def _has_gateway_rules(policy: Any) -> bool:
    gateway = _sub(policy, "gateway")
    rules = (
        ("exposure", ("allowNonLoopbackBind", "allowTailscaleFunnel")),
        ("auth", ("requireAuth", "requireExplicitRateLimit")),
        ("controlUi", ("allowInsecure",)),
        ("remote", ("allow",)),
        ("http", ("denyEndpoints", "requireUrlAllowlists")),
    )
    return any(
        is_record(gateway.get(section)) and any(k in gateway[section] for k in keys)
        for section, keys in rules
    )


def _has_agent_workspace_rules(policy: Any) -> bool:
    workspace = _sub(_sub(policy, "agents"), "workspace")
    return "allowedAccess" in workspace or "denyTools" in workspace


def _has_tool_posture_rules(policy: Any) -> bool:
    if not is_record(policy) or not is_record(policy.get("tools")):
        return False
    tools = policy["tools"]
    return (
        "allow" in _sub(tools, "profiles")
        or "requireWorkspaceOnly" in _sub(tools, "fs")
        or any(k in _sub(tools, "exec") for k in ("allowSecurity", "requireAsk", "allowHosts"))
        or "allow" in _sub(tools, "elevated")
        or "expected" in _sub(tools, "alsoAllow")
        or "denyTools" in tools
    )


def _has_secret_rules(policy: Any) -> bool:
    secrets = _sub(policy, "secrets")
    return any(
        k in secrets for k in ("requireManagedProviders", "denySources", "allowInsecureProviders")
    )


def _has_auth_profile_rules(policy: Any) -> bool:
    profiles = _sub(_sub(policy, "auth"), "profiles")
    return "requireMetadata" in profiles or "allowModes" in profiles


# --- the evaluation --------------------------------------------------------------------------


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
        return result(
            [
                Finding(
                    check_id=ids.POLICY_JSONC_MISSING,
                    severity="warning",
                    message=f"{policy_display} is missing for the enabled Policy plugin.",
                    path=policy_display,
                    fix_hint=f"Restore {policy_display} or add the policy artifact for this "
                    "workspace.",
                )
            ]
        )
    parsed = parse_json5(policy_raw)
    if not parsed.ok:
        return result(
            [
                Finding(
                    check_id=ids.POLICY_JSONC_INVALID,
                    severity="error",
                    message=f"{policy_display} could not be parsed: {parsed.message}",
                    path=policy_display,
                    target=f"oc://{doc}",
                    fix_hint=f"Fix {policy_display} so policy conformance checks can run.",
                )
            ]
        )
    from openclaw_policy.attestation import policy_document_hash

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

    metadata_findings = _tool_metadata_requirement_findings(policy, policy_display, doc)
    auth_metadata_findings = _auth_metadata_requirement_findings(policy, policy_display, doc)
    required_metadata = (
        set(_read_policy_string_array(policy, ("tools", "requireMetadata")) or [])
        if not metadata_findings
        else set()
    )
    tools_raw: str | None = None
    if required_metadata:
        tools_raw = read_tools_md() or ""
    evidence = collect_policy_evidence(
        cfg,
        EvidenceOptions(
            gateway_exposure=_has_gateway_rules(policy),
            agent_workspace=_has_agent_workspace_rules(policy),
            tool_posture=_has_tool_posture_rules(policy),
            secrets=_has_secret_rules(policy),
            auth_profiles=_has_auth_profile_rules(policy),
            tools_raw=tools_raw,
        ),
    )
    policy_findings = [
        *policy_container_shape_findings(policy, policy_display, doc),
        *_channel_findings(policy, policy_display, doc, evidence),
        *_mcp_findings(policy, doc, evidence),
        *_model_findings(policy, doc, evidence),
        *_network_findings(policy, doc, evidence),
        *_gateway_findings(policy, doc, evidence),
        *_agent_workspace_findings(policy, policy_display, doc, evidence),
        *_tool_posture_findings(policy, policy_display, doc, evidence),
        *_secret_auth_findings(policy, policy_display, doc, evidence),
        *auth_metadata_findings,
        *metadata_findings,
        *_tool_metadata_findings(required_metadata, doc, evidence),
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
