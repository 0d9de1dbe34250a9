"""Secrets and auth profiles: providers, SecretRef inputs and profile metadata.

Upstream ``policy-state-data.ts``. Secret values are never copied: the
evidence holds provider and source names and ``oc://`` paths only.
"""

from __future__ import annotations

import re
from typing import Any, Final

from openclaw_policy.evidence.common import (
    Entry,
    config_source,
    record,
    sorted_by,
    sorted_members,
    string_members,
)
from openclaw_policy.jsutil import is_record, js_entries, js_lower, js_trim

__all__ = ["scan_policy_auth_profiles", "scan_policy_secrets"]

_SECRET_INPUT_KEYS: Final = frozenset(
    {
        "apikey",
        "keyref",
        "token",
        "tokenref",
        "password",
        "secret",
        "encryptkey",
        "webhooksecret",
        "serviceaccount",
        "serviceaccountref",
        "privatekey",
        "certificate",
        "certificatedata",
        "identitydata",
        "knownhosts",
        "knownhostsdata",
    }
)
#: an environment variable name as SecretRef inputs spell it
_ENV_NAME = "[A-Z][A-Z0-9_]{0,127}"
_ENV_TEMPLATE = re.compile(rf"\$\{{({_ENV_NAME})\}}\Z")
_ENV_SHORTHAND = re.compile(rf"\$({_ENV_NAME})\Z")
_ENV_ID = re.compile(rf"{_ENV_NAME}\Z")
_LEGACY_ENV_PREFIXES: Final = ("secretref-env:", "__env__:")


def _matches_prefix(path: list[str], prefix: tuple[str, ...]) -> bool:
    if len(path) < len(prefix):
        return False
    for segment, value in zip(prefix, path, strict=False):
        if segment == "*":
            if value == "":
                return False
        elif segment == "#":
            if not value.startswith("#"):
                return False
        elif value != segment:
            return False
    return True


def _matches_path(path: list[str], pattern: tuple[str, ...]) -> bool:
    return len(path) == len(pattern) and _matches_prefix(path, pattern)


def _is_provider_request_secret_path(path: list[str], prefix: tuple[str, ...]) -> bool:
    if len(path) < len(prefix) + 3 or not _matches_prefix(path, prefix):
        return False
    if path[len(prefix)] != "request":
        return False
    suffix = path[len(prefix) + 1 :]
    tls_keys = ("ca", "cert", "key", "passphrase")
    if len(suffix) == 2 and suffix[0] == "headers":
        return True
    if len(suffix) == 2 and suffix[0] == "auth" and suffix[1] in ("token", "value"):
        return True
    if len(suffix) == 2 and suffix[0] == "tls" and suffix[1] in tls_keys:
        return True
    return (
        len(suffix) == 3 and suffix[0] == "proxy" and suffix[1] == "tls" and suffix[2] in tls_keys
    )


_MEDIA_REQUEST_PREFIXES: Final = (
    ("tools", "media", "models", "#"),
    ("tools", "media", "audio"),
    ("tools", "media", "audio", "models", "#"),
    ("tools", "media", "image"),
    ("tools", "media", "image", "models", "#"),
    ("tools", "media", "video"),
    ("tools", "media", "video", "models", "#"),
)


def _is_secret_input_key(key: str) -> bool:
    normalized = js_lower(key)
    return normalized in _SECRET_INPUT_KEYS or normalized.endswith(
        ("apikey", "token", "secret", "password")
    )


def _is_secret_input_path(path: list[str]) -> bool:
    if not path:
        return False
    if _matches_path(path, ("plugins", "entries", "acpx", "config", "mcpServers", "*", "env", "*")):
        return True
    if len(path) >= 2 and path[-2] == "env":
        return False
    if _is_secret_input_key(path[-1]):
        return True
    return (
        _matches_path(path, ("models", "providers", "*", "headers", "*"))
        or _is_provider_request_secret_path(path, ("models", "providers", "*"))
        or any(_is_provider_request_secret_path(path, p) for p in _MEDIA_REQUEST_PREFIXES)
        or _matches_path(path, ("agents", "defaults", "memorySearch", "remote", "headers", "*"))
        or _matches_path(path, ("diagnostics", "otel", "headers", "*"))
    )


def _coerce_secret_ref(value: object, defaults: dict[str, str]) -> tuple[str, str] | None:
    """``coerceSecretRef`` → ``(source, provider)`` or ``None`` (values are never kept)."""
    default_env = defaults.get("env")
    if is_record(value):
        source, provider, ident = value.get("source"), value.get("provider"), value.get("id")
        if (
            len(value) == 3
            and isinstance(source, str)
            and js_trim(source) != ""
            and isinstance(provider, str)
            and js_trim(provider) != ""
            and isinstance(ident, str)
            and js_trim(ident) != ""
        ):
            return source, provider
    if isinstance(value, str):
        trimmed = js_trim(value)
        for prefix in _LEGACY_ENV_PREFIXES:
            if trimmed.startswith(prefix):
                if _ENV_ID.match(trimmed[len(prefix) :]):
                    return "env", _alias(default_env)
                break
    if is_record(value):
        source, ident = value.get("source"), value.get("id")
        if (
            isinstance(source, str)
            and js_trim(source) != ""
            and isinstance(ident, str)
            and js_trim(ident) != ""
            and "provider" not in value
        ):
            if source in ("env", "file", "exec"):
                configured = defaults.get(source)
                return source, configured if configured is not None else "default"
            return source, "default"
    if isinstance(value, str):
        trimmed = js_trim(value)
        if _ENV_TEMPLATE.match(trimmed) or _ENV_SHORTHAND.match(trimmed):
            return "env", _alias(default_env)
    return None


def _alias(provider: str | None) -> str:
    if provider is None:
        return "default"
    trimmed = js_trim(provider)
    return trimmed if trimmed else "default"


def _secret_defaults(value: object) -> dict[str, str]:
    if not is_record(value):
        return {}
    return {k: value[k] for k in ("env", "file", "exec") if isinstance(value.get(k), str)}


def _collect_secret_inputs(
    entries: list[Entry], value: object, path: list[str], defaults: dict[str, str]
) -> None:
    if isinstance(value, list):
        for index, item in enumerate(value):
            _collect_secret_inputs(entries, item, [*path, f"#{index}"], defaults)
        return
    if not is_record(value):
        return
    for key, child in js_entries(value):
        child_path = [*path, key]
        source = config_source(child_path)
        ref = _coerce_secret_ref(child, defaults) if _is_secret_input_path(child_path) else None
        if ref is not None:
            entries.append(
                {
                    "id": source,
                    "kind": "input",
                    "source": source,
                    "provenance": "secretRef",
                    "refSource": ref[0],
                    "refProvider": ref[1],
                }
            )
            continue
        _collect_secret_inputs(entries, child, child_path, defaults)


def _secret_provider_insecure_flags(value: object) -> list[str]:
    if not is_record(value):
        return []
    flags = []
    if value.get("allowInsecurePath") is True:
        flags.append("allowInsecurePath")
    if value.get("allowSymlinkCommand") is True:
        flags.append("allowSymlinkCommand")
    return flags


def scan_policy_secrets(cfg: dict[str, Any]) -> list[Entry]:
    secrets = record(cfg.get("secrets"))
    entries: list[Entry] = []
    for pid, value in js_entries(record(secrets.get("providers"))):
        entry: Entry = {
            "id": pid,
            "kind": "provider",
            "source": config_source(("secrets", "providers", pid)),
        }
        if is_record(value) and isinstance(value.get("source"), str):
            entry["providerSource"] = value["source"]
        insecure = _secret_provider_insecure_flags(value)
        if insecure:
            entry["insecure"] = insecure
        entries.append(entry)
    _collect_secret_inputs(entries, cfg, [], _secret_defaults(secrets.get("defaults")))
    return sorted_by(entries, "source")


_AUTH_PROFILE_MODES: Final = ("api_key", "aws-sdk", "oauth", "token")


def _is_valid_auth_profile(value: object) -> bool:
    if not is_record(value):
        return False
    provider = value.get("provider")
    return (
        isinstance(provider, str)
        and js_trim(provider) != ""
        and value.get("mode") in _AUTH_PROFILE_MODES
        and isinstance(value.get("mode"), str)
    )


def scan_policy_auth_profiles(cfg: dict[str, Any]) -> list[Entry]:
    return [
        {
            "id": pid,
            "source": config_source(("auth", "profiles", pid)),
            "validMetadata": _is_valid_auth_profile(value),
            **string_members(value, "provider", "mode"),
        }
        for pid, value in sorted_members(record(cfg.get("auth")).get("profiles"))
    ]
