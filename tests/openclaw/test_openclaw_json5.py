"""JSON5 policy parsing: edge cases, JavaScript-compatible errors, missing and invalid policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from openclaw_policy import PolicyCheckResult, run_policy_check
from openclaw_policy.attestation import policy_document_hash
from openclaw_policy.loader import parse_json5


def _write(directory: Path, policy: str | None, config: str = "{}") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    if policy is not None:
        (directory / "policy.jsonc").write_text(policy, encoding="utf-8")
    (directory / "openclaw.json").write_text(config, encoding="utf-8")
    return directory


def _check(directory: Path, *, severity_min: str = "info") -> PolicyCheckResult:
    return run_policy_check(
        None, directory / "openclaw.json", directory, env={}, severity_min=severity_min
    )


EQUIVALENT_POLICIES = [
    '{"channels":{"denyRules":[]}}',
    "// line comment\n{ channels: { denyRules: [], }, }",
    "/* block\n comment */ {'channels': {'denyRules': [ /* none */ ]}}",
    '\ufeff{\n  "channels": {\n    "denyRules": [],\n  },\n}\n',
    '{"channels":{"denyRules":[1]}, "channels":{"denyRules":[]}}',  # last duplicate wins
]


@pytest.mark.parametrize("text", EQUIVALENT_POLICIES)
def test_json5_forms_hash_like_the_plain_json(text: str) -> None:
    parsed = parse_json5(text)
    assert parsed.ok, parsed.message
    assert policy_document_hash(parsed.value) == (
        "sha256:50280d76187fc37fb6965f90954af352e70c3e6d1ab892dc5ac0bb1c902d7b62"
    )


def test_json5_numbers_and_strings_hash_as_javascript_values() -> None:
    parsed = parse_json5(
        "{a: 0x10, b: +1, c: .5, d: 1.0, e: Infinity, f: NaN, g: 1e21, h: '\\ud83d\\ude00',"
        " i: 'line \\\n continued', j: 12345678901234567890}"
    )
    assert parsed.ok
    assert parsed.value["h"] == "😀"  # an escaped surrogate pair is one character, as in JS
    from openclaw_policy.stable_json import stable_json

    assert stable_json(parsed.value) == (
        '{"a":16,"b":1,"c":0.5,"d":1,"e":null,"f":null,"g":1e+21,"h":"😀",'
        '"i":"line  continued","j":12345678901234567000}'
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{ channels: ", "JSON5: invalid end of input at 1:13"),
        ("{a:x}", "JSON5: invalid character 'x' at 1:4"),
        ("[1,2", "JSON5: invalid end of input at 1:5"),
        ('{"a":1 "b":2}', "JSON5: invalid character '\\\"' at 1:8"),
        ("", "JSON5: invalid end of input at 1:1"),
        ("{\n  a: \x01}", "JSON5: invalid character '\\x01' at 2:6"),
        ("{a:1}}", "JSON5: invalid character '}' at 1:6"),
        ('{a:"x\n"}', "JSON5: invalid character '\\n' at 2:0"),
    ],
)
def test_parse_errors_read_like_the_javascript_library(text: str, message: str) -> None:
    parsed = parse_json5(text)
    assert not parsed.ok
    assert parsed.message == message


def test_missing_policy_is_a_warning_and_attests_without_policy_hash(tmp_path: Path) -> None:
    directory = _write(tmp_path / "ws", None)
    result = _check(directory)
    assert [f.to_json() for f in result.findings] == [
        {
            "checkId": "policy/policy-jsonc-missing",
            "severity": "warning",
            "message": "policy.jsonc is missing for the enabled Policy plugin.",
            "source": "policy",
            "path": "policy.jsonc",
            "fixHint": "Restore policy.jsonc or add the policy artifact for this workspace.",
        }
    ]
    assert result.exit_code == 1
    assert result.attestation is not None
    document = result.to_json()
    assert "policy" not in document["attestation"]
    assert document["evidence"] == {
        "channels": [],
        "mcpServers": [],
        "modelProviders": [],
        "modelRefs": [],
        "network": [],
    }
    # below the threshold: exit 0 and top-level ok, but the attestation still records it
    quiet = _check(directory, severity_min="error")
    assert quiet.exit_code == 0 and quiet.ok and quiet.findings == ()
    assert quiet.attestation is not None and quiet.attestation.ok is False
    assert quiet.attestation.attestation_hash == result.attestation.attestation_hash


def test_missing_policy_attestation_hashes_undefined_policy_hash(tmp_path: Path) -> None:
    from openclaw_policy.attestation import policy_attestation_hash
    from openclaw_policy.stable_json import sha256_tagged

    result = _check(_write(tmp_path / "ws", None))
    assert result.attestation is not None
    findings_hash = result.attestation.findings_hash
    workspace_hash = result.attestation.workspace_hash
    expected = sha256_tagged(
        f'{{"findingsHash":"{findings_hash}","ok":false,'
        f'"policyHash":undefined,"workspaceHash":"{workspace_hash}"}}'
    )
    assert result.attestation.attestation_hash == expected
    assert expected == policy_attestation_hash(
        ok=False,
        policy_hash=None,
        workspace_hash=result.attestation.workspace_hash,
        findings_hash=result.attestation.findings_hash,
    )


def test_invalid_policy_finding(tmp_path: Path) -> None:
    result = _check(_write(tmp_path / "ws", "{ channels: "))
    assert [f.to_json() for f in result.findings] == [
        {
            "checkId": "policy/policy-jsonc-invalid",
            "severity": "error",
            "message": "policy.jsonc could not be parsed: JSON5: invalid end of input at 1:13",
            "source": "policy",
            "path": "policy.jsonc",
            "target": "oc://policy.jsonc",
            "fixHint": "Fix policy.jsonc so policy conformance checks can run.",
        }
    ]
    assert result.to_json()["attestation"].get("policy") is None


@pytest.mark.parametrize(
    ("policy", "target"),
    [
        ("[]", "oc://policy.jsonc"),
        ('{"tools": []}', "oc://policy.jsonc/tools"),
        ('{"tools": {"settings": []}}', "oc://policy.jsonc/tools/settings"),
        ('{"tools": {"entries": {}}}', "oc://policy.jsonc/tools/entries"),
        ('{"tools": {"profiles": []}}', "oc://policy.jsonc/tools/profiles"),
        ('{"tools": {"profiles": {"allow": "coding"}}}', "oc://policy.jsonc/tools/profiles/allow"),
        (
            '{"tools": {"profiles": {"allow": ["mesaging"]}}}',
            "oc://policy.jsonc/tools/profiles/allow/#0",
        ),
        (
            '{"tools": {"exec": {"allowSecurity": ["deny", "sudo"]}}}',
            "oc://policy.jsonc/tools/exec/allowSecurity/#1",
        ),
        (
            '{"tools": {"fs": {"requireWorkspaceOnly": "true"}}}',
            "oc://policy.jsonc/tools/fs/requireWorkspaceOnly",
        ),
        ('{"tools": {"elevated": {"allow": "false"}}}', "oc://policy.jsonc/tools/elevated/allow"),
        ('{"tools": {"denyTools": ["exec", " "]}}', "oc://policy.jsonc/tools/denyTools/#1"),
        ('{"channels": []}', "oc://policy.jsonc/channels"),
        ('{"channels": {"denyRules": [{"when": {}}]}}', "oc://policy.jsonc/channels/denyRules/#0"),
        ('{"mcp": []}', "oc://policy.jsonc/mcp"),
        ('{"mcp": {"servers": []}}', "oc://policy.jsonc/mcp/servers"),
        ('{"mcp": {"servers": {"allow": "docs"}}}', "oc://policy.jsonc/mcp/servers/allow"),
        ('{"mcp": {"servers": {"deny": ["docs", 1]}}}', "oc://policy.jsonc/mcp/servers/deny/#1"),
        ('{"models": []}', "oc://policy.jsonc/models"),
        ('{"models": {"providers": []}}', "oc://policy.jsonc/models/providers"),
        (
            '{"models": {"providers": {"allow": "openai"}}}',
            "oc://policy.jsonc/models/providers/allow",
        ),
        (
            '{"models": {"providers": {"deny": ["openrouter", " "]}}}',
            "oc://policy.jsonc/models/providers/deny/#1",
        ),
        ('{"network": []}', "oc://policy.jsonc/network"),
        ('{"network": {"privateNetwork": false}}', "oc://policy.jsonc/network/privateNetwork"),
        (
            '{"network": {"privateNetwork": {"allow": "false"}}}',
            "oc://policy.jsonc/network/privateNetwork/allow",
        ),
        ('{"gateway": []}', "oc://policy.jsonc/gateway"),
        ('{"gateway": {"auth": []}}', "oc://policy.jsonc/gateway/auth"),
        (
            '{"gateway": {"auth": {"requireAuth": "true"}}}',
            "oc://policy.jsonc/gateway/auth/requireAuth",
        ),
        (
            '{"gateway": {"auth": {"requireExplicitRateLimit": "true"}}}',
            "oc://policy.jsonc/gateway/auth/requireExplicitRateLimit",
        ),
        (
            '{"gateway": {"http": {"denyEndpoints": "responses"}}}',
            "oc://policy.jsonc/gateway/http/denyEndpoints",
        ),
        (
            '{"gateway": {"http": {"denyEndpoints": ["responses", " "]}}}',
            "oc://policy.jsonc/gateway/http/denyEndpoints/#1",
        ),
        (
            '{"gateway": {"http": {"denyEndpoints": ["responses", "completions"]}}}',
            "oc://policy.jsonc/gateway/http/denyEndpoints/#1",
        ),
        (
            '{"gateway": {"http": {"requireUrlAllowlists": "true"}}}',
            "oc://policy.jsonc/gateway/http/requireUrlAllowlists",
        ),
        ('{"agents": []}', "oc://policy.jsonc/agents"),
        ('{"agents": {"workspace": []}}', "oc://policy.jsonc/agents/workspace"),
        (
            '{"agents": {"workspace": {"allowedAccess": "ro"}}}',
            "oc://policy.jsonc/agents/workspace/allowedAccess",
        ),
        (
            '{"agents": {"workspace": {"allowedAccess": ["none", "host"]}}}',
            "oc://policy.jsonc/agents/workspace/allowedAccess/#1",
        ),
        (
            '{"agents": {"workspace": {"denyTools": "exec"}}}',
            "oc://policy.jsonc/agents/workspace/denyTools",
        ),
        (
            '{"agents": {"workspace": {"denyTools": ["exec", "browser"]}}}',
            "oc://policy.jsonc/agents/workspace/denyTools/#1",
        ),
        ('{"secrets": []}', "oc://policy.jsonc/secrets"),
        ('{"auth": []}', "oc://policy.jsonc/auth"),
        ('{"auth": {"profiles": []}}', "oc://policy.jsonc/auth/profiles"),
        (
            '{"tools": {"requireMetadata": ["risk", "unsupported"]}}',
            "oc://policy.jsonc/tools/requireMetadata/#1",
        ),
        (
            '{"tools": {"requireMetadata": ["risk", " "]}}',
            "oc://policy.jsonc/tools/requireMetadata/#1",
        ),
        ('{"secrets": {"denySources": ["exec", " "]}}', "oc://policy.jsonc/secrets/denySources/#1"),
        (
            '{"auth": {"profiles": {"allowModes": "token"}}}',
            "oc://policy.jsonc/auth/profiles/allowModes",
        ),
    ],
)
def test_malformed_policy_shapes(tmp_path: Path, policy: str, target: str) -> None:
    """The upstream suite's malformed-shape table: exactly one invalid finding, at ``target``."""
    result = _check(_write(tmp_path / "ws", policy))
    assert [(f.check_id, f.severity, f.path, f.target) for f in result.findings] == [
        ("policy/policy-jsonc-invalid", "error", "policy.jsonc", target)
    ]


def test_configured_policy_path_names_findings(tmp_path: Path) -> None:
    directory = tmp_path / "ws"
    directory.mkdir()
    (directory / "workspace.policy.jsonc").write_text(
        '{"channels": {"denyRules": [{"when": {}}]}}', encoding="utf-8"
    )
    (directory / "openclaw.json").write_text(
        '{plugins: {entries: {policy: {config: {path: "workspace.policy.jsonc"}}}}}',
        encoding="utf-8",
    )
    result = _check(directory)
    assert [(f.path, f.target) for f in result.findings] == [
        ("workspace.policy.jsonc", "oc://workspace.policy.jsonc/channels/denyRules/#0")
    ]


def test_invalid_openclaw_config(tmp_path: Path) -> None:
    directory = _write(tmp_path / "ws", "{}", config="{ gateway: ")
    result = _check(directory)
    document = result.to_json()
    assert "attestation" not in document
    assert document["evidence"] == {"channels": []}
    assert document["checksRun"] == 1 and document["checksSkipped"] == 37
    assert [f["checkId"] for f in document["findings"]] == ["policy/config-invalid"]
    assert result.exit_code == 1


def test_disabled_policy_plugin_reports_nothing(tmp_path: Path) -> None:
    directory = _write(
        tmp_path / "ws",
        None,
        config='{"plugins":{"entries":{"policy":{"config":{"enabled":false}}}}}',
    )
    result = _check(directory)
    assert result.findings == () and result.exit_code == 0
    assert result.attestation is not None and result.attestation.policy_hash is None
