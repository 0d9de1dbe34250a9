"""Secret provider and auth profile rules (upstream ``doctor/scopes/data-auth.ts``).

A malformed ``secrets`` rule suppresses the secrets checks and a malformed
``auth.profiles.allowModes`` the auth profile checks; each reports its shape
findings instead.
"""

from __future__ import annotations

from typing import Any, Final

from openclaw_policy import findings as ids
from openclaw_policy.checks.base import (
    EntryCheck,
    PolicyRule,
    entry_findings,
    has_rule,
    listed,
    read_policy_boolean,
    read_policy_string_array,
    when_false,
)
from openclaw_policy.checks.shapes import (
    AUTH_MODES_SHAPES,
    SECRETS_SHAPES,
    SUPPORTED_AUTH_PROFILE_METADATA,
    SUPPORTED_AUTH_PROFILE_MODES,
    shape_findings,
)
from openclaw_policy.evidence import Entry
from openclaw_policy.findings import Finding
from openclaw_policy.jsutil import js_trim

__all__ = [
    "AUTH_PROFILE_CHECKS",
    "SECRET_CHECKS",
    "has_auth_profile_rules",
    "has_secret_rules",
    "secret_auth_findings",
]


def _managed_providers(policy: Any, secrets: list[Entry]) -> set[str] | None:
    if read_policy_boolean(policy, ("secrets", "requireManagedProviders")) is not True:
        return None
    return {
        f"{s['providerSource']}:{s['id']}"
        for s in secrets
        if s["kind"] == "provider" and "providerSource" in s
    }


def _secret_source(secret: Entry) -> object:
    return secret.get("providerSource" if secret["kind"] == "provider" else "refSource")


SECRET_CHECKS: Final = (
    EntryCheck(
        ids.SECRETS_UNMANAGED_PROVIDER,
        PolicyRule("secrets.requireManagedProviders", _managed_providers),
        lambda s, managed: (
            s["kind"] == "input"
            and s.get("provenance") == "secretRef"
            and f"{s['refSource']}:{s['refProvider']}" not in managed
        ),
        lambda s, _: f"SecretRef uses unmanaged provider '{s['refProvider']}'.",
        "Declare the referenced provider under secrets.providers or update policy after review.",
    ),
    EntryCheck(
        ids.SECRETS_DENIED_PROVIDER_SOURCE,
        listed("secrets.denySources"),
        lambda s, denied: _secret_source(s) is not None and _secret_source(s) in denied,
        lambda s, _: f"Secret {s['kind']} '{s['id']}' uses denied source '{_secret_source(s)}'.",
        "Move this secret to an approved source or update policy after review.",
    ),
    EntryCheck(
        ids.SECRETS_INSECURE_PROVIDER,
        when_false("secrets.allowInsecureProviders"),
        lambda s, _: s["kind"] == "provider" and bool(s.get("insecure")),
        lambda s, _: (
            f"Secret provider '{s['id']}' enables insecure posture: {', '.join(s['insecure'])}."
        ),
        "Remove insecure provider overrides or update policy after review.",
    ),
)


def _required_metadata(policy: Any, _entries: list[Entry]) -> list[str] | None:
    listed = read_policy_string_array(policy, ("auth", "profiles", "requireMetadata")) or []
    supported = [e for e in listed if e in SUPPORTED_AUTH_PROFILE_METADATA]
    return list(dict.fromkeys(supported)) or None


def _has_metadata(profile: Entry, metadata: str) -> bool:
    if metadata == "provider":
        provider = profile.get("provider")
        return isinstance(provider, str) and js_trim(provider) != ""
    return profile.get("mode") in SUPPORTED_AUTH_PROFILE_MODES


def _missing(profile: Entry, required: list[str]) -> list[str]:
    return [m for m in required if not _has_metadata(profile, m)]


AUTH_PROFILE_CHECKS: Final = (
    EntryCheck(
        ids.AUTH_PROFILE_INVALID_METADATA,
        PolicyRule("auth.profiles.requireMetadata", _required_metadata),
        lambda p, required: bool(_missing(p, required)),
        lambda p, required: (
            f"Auth profile '{p['id']}' is missing required metadata: "
            f"{', '.join(_missing(p, required))}."
        ),
        "Set auth.profiles.<id>.provider and a supported auth profile mode.",
    ),
    EntryCheck(
        ids.AUTH_PROFILE_UNAPPROVED_MODE,
        listed("auth.profiles.allowModes"),
        lambda p, allowed: "mode" in p and p["mode"] not in allowed,
        lambda p, _: (
            f"Auth profile '{p['id']}' uses mode '{p['mode']}' outside the policy allowlist."
        ),
        "Change the auth profile mode or update policy after review.",
    ),
)


def has_secret_rules(policy: Any) -> bool:
    return has_rule(
        policy, "secrets", "requireManagedProviders", "denySources", "allowInsecureProviders"
    )


def has_auth_profile_rules(policy: Any) -> bool:
    return has_rule(policy, "auth.profiles", "requireMetadata", "allowModes")


def secret_auth_findings(
    policy: Any, policy_path: str, doc: str, evidence: dict[str, Any]
) -> list[Finding]:
    out = shape_findings(policy, SECRETS_SHAPES, policy_path, doc, first_only=False)
    if not out:
        out = entry_findings(SECRET_CHECKS, policy, doc, evidence.get("secrets", []))
    auth_shape = shape_findings(policy, AUTH_MODES_SHAPES, policy_path, doc)
    if auth_shape:
        return out + auth_shape
    return out + entry_findings(AUTH_PROFILE_CHECKS, policy, doc, evidence.get("authProfiles", []))
