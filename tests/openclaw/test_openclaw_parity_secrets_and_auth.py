"""Upstream parity (cases from OpenClaw's own policy suite and docs, helpers in
``_openclaw_parity``): secret refs, secret providers and auth profiles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from openclaw_policy.evidence import collect_policy_evidence

from ._openclaw_parity import ALL, check, summary


def test_secret_findings_do_not_leak_values(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        {
            "secrets": {
                "requireManagedProviders": True,
                "denySources": ["exec"],
                "allowInsecureProviders": False,
            }
        },
        {
            "secrets": {
                "providers": {
                    "vault": {"source": "file", "path": ".secrets.json", "allowInsecurePath": True},
                    "command": {
                        "source": "exec",
                        "command": "vault",
                        "args": ["read", "openai/api-key"],
                    },
                }
            },
            "models": {
                "providers": {
                    "anthropic": {
                        "apiKey": {
                            "source": "env",
                            "provider": "missing",
                            "id": "ANTHROPIC_API_KEY",
                        }
                    }
                }
            },
        },
    )
    assert "ANTHROPIC_API_KEY" not in json.dumps(result.to_json())
    assert sorted(summary(result)) == sorted(
        [
            (
                "policy/secrets-unmanaged-provider",
                "oc://openclaw.config/models/providers/anthropic/apiKey",
                "oc://policy.jsonc/secrets/requireManagedProviders",
            ),
            (
                "policy/secrets-denied-provider-source",
                "oc://openclaw.config/secrets/providers/command",
                "oc://policy.jsonc/secrets/denySources",
            ),
            (
                "policy/secrets-insecure-provider",
                "oc://openclaw.config/secrets/providers/vault",
                "oc://policy.jsonc/secrets/allowInsecureProviders",
            ),
        ]
    )


def test_structured_request_secret_refs(tmp_path: Path) -> None:
    rogue = {"source": "exec", "provider": "rogue", "id": "x"}
    cfg = {
        "models": {
            "providers": {
                "openai": {
                    "request": {
                        "auth": {"mode": "authorization-bearer", "token": rogue},
                        "tls": {"passphrase": rogue},
                    }
                },
                "z.ai": {"headers": {"Authorization": rogue}},
            }
        },
        "tools": {
            "media": {
                "models": [{"request": {"auth": {"token": rogue}, "tls": {"key": rogue}}}],
                "audio": {"request": {"auth": {"token": rogue}}},
                "image": {"models": [{"request": {"auth": {"token": rogue}}}]},
            }
        },
        "plugins": {
            "entries": {
                "acpx": {"config": {"mcpServers": {"github": {"env": {"GITHUB_TOKEN": rogue}}}}}
            }
        },
    }
    sources = {e["source"] for e in collect_policy_evidence(cfg, ALL)["secrets"]}
    assert sources == {
        "oc://openclaw.config/models/providers/openai/request/auth/token",
        "oc://openclaw.config/models/providers/openai/request/tls/passphrase",
        'oc://openclaw.config/models/providers/"z.ai"/headers/Authorization',
        "oc://openclaw.config/plugins/entries/acpx/config/mcpServers/github/env/GITHUB_TOKEN",
        "oc://openclaw.config/tools/media/models/#0/request/auth/token",
        "oc://openclaw.config/tools/media/models/#0/request/tls/key",
        "oc://openclaw.config/tools/media/audio/request/auth/token",
        "oc://openclaw.config/tools/media/image/models/#0/request/auth/token",
    }
    result = check(
        tmp_path, {"secrets": {"requireManagedProviders": True, "denySources": ["exec"]}}, cfg
    )
    assert len(result.findings) == 16


def test_secret_defaults_and_sources(tmp_path: Path) -> None:
    policy = {"secrets": {"requireManagedProviders": True}}
    defaults = check(
        tmp_path,
        policy,
        {
            "secrets": {"defaults": {"env": "vault"}, "providers": {"vault": {"source": "env"}}},
            "models": {"providers": {"openai": {"apiKey": "$OPENAI_API_KEY"}}},
        },
    )
    assert defaults.findings == ()
    assert {
        "id": "oc://openclaw.config/models/providers/openai/apiKey",
        "kind": "input",
        "source": "oc://openclaw.config/models/providers/openai/apiKey",
        "provenance": "secretRef",
        "refSource": "env",
        "refProvider": "vault",
    } in defaults.evidence["secrets"]
    wrong_source = check(
        tmp_path,
        policy,
        {
            "secrets": {"providers": {"vault": {"source": "file", "path": ".secrets.json"}}},
            "models": {
                "providers": {
                    "openai": {"apiKey": {"source": "env", "provider": "vault", "id": "K"}}
                }
            },
        },
    )
    assert [f.oc_path for f in wrong_source.findings] == [
        "oc://openclaw.config/models/providers/openai/apiKey"
    ]


def test_raw_mcp_env_values_are_not_secret_refs(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        {"secrets": {"requireManagedProviders": True, "denySources": ["env"]}},
        {
            "mcp": {
                "servers": {
                    "corp.github": {
                        "env": {"APP_ID": "$GITHUB_APP_ID", "GITHUB_TOKEN": "$GITHUB_TOKEN"}
                    }
                }
            }
        },
    )
    assert result.findings == () and result.evidence["secrets"] == []


def test_channel_encrypt_key_secret_ref(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        {"secrets": {"requireManagedProviders": True, "denySources": ["exec"]}},
        {
            "channels": {
                "feishu": {"encryptKey": {"source": "exec", "provider": "rogue", "id": "k"}}
            }
        },
    )
    assert [f.check_id for f in result.findings] == [
        "policy/secrets-unmanaged-provider",
        "policy/secrets-denied-provider-source",
    ]
    assert {f.oc_path for f in result.findings} == {
        "oc://openclaw.config/channels/feishu/encryptKey"
    }


def _auth_profile_rules(require_metadata: list[str], allow_modes: list[str]) -> dict[str, Any]:
    return {"auth": {"profiles": {"requireMetadata": require_metadata, "allowModes": allow_modes}}}


def test_auth_profiles(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        _auth_profile_rules(["provider", "mode"], ["api_key", "token"]),
        {
            "auth": {
                "profiles": {
                    "missingMode": {"provider": "github"},
                    "oauth": {"provider": "github", "mode": "oauth"},
                }
            }
        },
    )
    assert [(f.check_id, f.oc_path, f.message) for f in result.findings] == [
        (
            "policy/auth-profile-invalid-metadata",
            "oc://openclaw.config/auth/profiles/missingMode",
            "Auth profile 'missingMode' is missing required metadata: mode.",
        ),
        (
            "policy/auth-profile-unapproved-mode",
            "oc://openclaw.config/auth/profiles/oauth",
            "Auth profile 'oauth' uses mode 'oauth' outside the policy allowlist.",
        ),
    ]


def test_malformed_secret_and_auth_policies(tmp_path: Path) -> None:
    secrets = check(
        tmp_path,
        {
            "secrets": {
                "requireManagedProviders": "yes",
                "denySources": "exec",
                "allowInsecureProviders": "false",
            }
        },
    )
    assert [f.target for f in secrets.findings] == [
        "oc://policy.jsonc/secrets/requireManagedProviders",
        "oc://policy.jsonc/secrets/allowInsecureProviders",
        "oc://policy.jsonc/secrets/denySources",
    ]
    mixed = check(
        tmp_path,
        {
            "secrets": {"requireManagedProviders": True},
            "auth": {"profiles": {"allowModes": "token"}},
        },
        {
            "models": {
                "providers": {
                    "openai": {"apiKey": {"source": "exec", "provider": "rogue", "id": "k"}}
                }
            }
        },
    )
    assert [(f.check_id, f.target or f.oc_path) for f in mixed.findings] == [
        (
            "policy/secrets-unmanaged-provider",
            "oc://openclaw.config/models/providers/openai/apiKey",
        ),
        ("policy/policy-jsonc-invalid", "oc://policy.jsonc/auth/profiles/allowModes"),
    ]
    auth = check(
        tmp_path,
        _auth_profile_rules(["provider", ""], ["api_key", "unsupported"]),
    )
    assert {f.target for f in auth.findings} == {
        "oc://policy.jsonc/auth/profiles/requireMetadata/#1",
        "oc://policy.jsonc/auth/profiles/allowModes/#1",
    }
