"""The primitive CLI commands that need no server: hashes, approvals, verification."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from claw_ledger.cli import cli
from ledger.crypto import KeyPair, save_key
from ledger.registry import RuleSettings
from ledger.urm import urm_hash_b64u, verify_approval

from ._support import BUNDLE_PASS, EXAMPLES, GOLDEN, RFC8032_SEED, WPC_EXAMPLE, Ledger

WPC_HASH = EXAMPLES["wpc_example"]["policy_hash_b64u"]
SCOPE_HASH = EXAMPLES["scope_example"]["token_scope_hash_b64u"]


def run(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin, prog_name="claw-ledger")


@pytest.fixture
def wpc_file(tmp_path: Path) -> Path:
    path = tmp_path / "wpc.json"
    path.write_text(json.dumps(WPC_EXAMPLE, indent=2))
    return path


def test_wpc_hash_reproduces_the_vector(wpc_file: Path) -> None:
    result = run("wpc", "hash", str(wpc_file))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == WPC_HASH
    result = run("wpc", "hash", "-", "--json", stdin=wpc_file.read_text())
    assert json.loads(result.stdout) == {
        "policy_hash_b64u": WPC_HASH,
        "jcs": EXAMPLES["wpc_example"]["jcs"],
    }


def test_wpc_hash_refuses_bad_documents(tmp_path: Path) -> None:
    cases = {
        "{wpc_version: '1',": "MALFORMED_JSON",
        '{"wpc_version": "1", "tools": {"allow": ["a"], "deny": ["a"]}}': "WPC_INVALID",
        '{"wpc_version": "1", "x": "' + "y" * 300_000 + '"}': "OVERSIZED",
    }
    for text, code in cases.items():
        result = run("wpc", "hash", "-", stdin=text)
        assert result.exit_code == 1
        assert result.stdout == ""
        assert f"error: {code}" in result.stderr


def test_wpc_get_refuses_malformed_hash_before_any_server() -> None:
    result = run("wpc", "get", "b64u:not-a-hash")
    assert result.exit_code == 1
    assert "MALFORMED_POLICY_HASH" in result.stderr


def test_cst_scope_hash_reproduces_the_vector(tmp_path: Path) -> None:
    claims = tmp_path / "claims.json"
    claims.write_text(json.dumps(EXAMPLES["scope_example"]["input"]))
    result = run("cst", "scope-hash", str(claims))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == SCOPE_HASH
    json5_input = (
        "{sub: 'agent:alpha', aud: ['clawproxy'], scope: ['tools:read', 'proxy:call:anthropic',],}"
    )
    assert run("cst", "scope-hash", "-", stdin=json5_input).stdout.strip() == SCOPE_HASH


def test_cst_scope_hash_refuses_empty_scope() -> None:
    result = run("cst", "scope-hash", "-", stdin='{"sub":"a","aud":"b","scope":[]}')
    assert result.exit_code == 1
    assert "TOKEN_EMPTY_SCOPE" in result.stderr


def test_cst_issue_refuses_bad_input_before_publishing() -> None:
    base = ["cst", "issue", "--sub", "agent:alpha", "--aud", "clawproxy", "--key", "/nonexistent"]
    cases = [
        (["--scope", "tools:read", "--ttl", "0s"], "TOKEN_BAD_LIFETIME"),
        (["--scope", "tools:read", "--ttl", "2h", "--max-ttl", "1h"], "TOKEN_TTL_EXCEEDED"),
        (["--scope", " "], "TOKEN_EMPTY_SCOPE"),
        (["--scope", "tools:read", "--policy", "b64u:abc"], "MALFORMED_POLICY_HASH"),
    ]
    for extra, code in cases:
        result = run(*base, *extra)
        assert result.exit_code == 1, (extra, result.output)
        assert code in result.stderr


def test_cst_issue_max_ttl_from_environment() -> None:
    result = CliRunner(env={"CLAW_LEDGER_CST_MAX_TTL": "10m"}).invoke(
        cli,
        shlex.split("cst issue --sub s --aud a --scope x --ttl 15m --key /nonexistent"),
    )
    assert result.exit_code == 1
    assert "TOKEN_TTL_EXCEEDED" in result.stderr


def test_processor_takes_the_same_max_ttl_from_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from consumers.runner import _rule_settings

    monkeypatch.delenv("CLAW_LEDGER_CST_MAX_TTL", raising=False)
    assert _rule_settings() == RuleSettings()
    monkeypatch.setenv("CLAW_LEDGER_CST_MAX_TTL", "10m")
    assert _rule_settings() == RuleSettings(max_token_ttl_seconds=600)
    monkeypatch.setenv("CLAW_LEDGER_CST_MAX_TTL", "31d")  # over the hard limit
    with pytest.raises(ValueError):
        _rule_settings()


def test_cst_inspect_offline_golden_token() -> None:
    token = (GOLDEN / "cst.jwt").read_text().strip()
    did = EXAMPLES["rfc8032_test1"]["did_key"]
    result = run("cst", "inspect", "-", "--offline", "--issuer", did, "--json", stdin=token)
    report = json.loads(result.stdout)
    assert report["signature"] == "valid"
    assert report["claims"]["jti"] == "cst_golden_0001"
    assert report["status"] == "expired"  # its exp lies in February 2026
    assert result.exit_code == 1
    # a token file gives the same report (and keeps the token off the command line)
    from_file = run("cst", "inspect", str(GOLDEN / "cst.jwt"), "--offline", "--issuer", did)
    assert from_file.exit_code == 1 and "cst_golden_0001" in from_file.stdout
    other = KeyPair.from_seed(b"\x05" * 32).did
    result = run("cst", "inspect", token, "--offline", "--issuer", other)
    assert result.exit_code == 1
    assert "TOKEN_SIGNATURE_INVALID" in result.stderr
    result = run("cst", "inspect", "not.a.token", "--offline")
    assert result.exit_code == 1
    assert "TOKEN_MALFORMED" in result.stderr


def test_urm_hash_and_approve(tmp_path: Path) -> None:
    urm = Ledger().urm("job-42", WPC_HASH, SCOPE_HASH)
    urm_file = tmp_path / "job-42.urm.json"
    urm_file.write_text(json.dumps(urm, indent=2))
    result = run("urm", "hash", str(urm_file))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == urm_hash_b64u(urm)
    key_file = tmp_path / "approver.key"
    approver = KeyPair.from_seed(RFC8032_SEED, "approver")
    save_key(approver, key_file)
    out = tmp_path / "approval.json"
    result = run("urm", "approve", str(urm_file), "--key", str(key_file), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert verify_approval(json.loads(out.read_text()), urm_hash_b64u(urm)) == approver.did


def test_urm_submit_refuses_missing_or_self_approval(tmp_path: Path) -> None:
    urm = Ledger().urm("job-42", WPC_HASH, SCOPE_HASH)
    urm_file = tmp_path / "u.json"
    urm_file.write_text(json.dumps(urm))
    key_file = tmp_path / "requester.key"
    save_key(KeyPair.from_seed(RFC8032_SEED), key_file)
    result = run("urm", "submit", str(urm_file), "--key", str(key_file))
    assert result.exit_code == 1
    assert "URM_NO_APPROVALS" in result.stderr
    approval = tmp_path / "self.json"
    assert (
        run("urm", "approve", str(urm_file), "--key", str(key_file), "-o", str(approval)).exit_code
        == 0
    )
    result = run(
        "urm", "submit", str(urm_file), "--approval", str(approval), "--key", str(key_file)
    )
    assert result.exit_code == 1
    assert "URM_SELF_APPROVAL" in result.stderr


def test_urm_hash_refuses_invalid() -> None:
    result = run("urm", "hash", "-", stdin='{"urm_version": "1"}')
    assert result.exit_code == 1
    assert "URM_INVALID" in result.stderr


def test_receipt_verify_golden(tmp_path: Path) -> None:
    path = GOLDEN / "gateway_receipt.json"
    request = tmp_path / "req.json"
    request.write_bytes(b'{"model":"claude-test","messages":[{"role":"user","content":"hi"}]}')
    result = run("receipt", "verify", str(path), "--request", str(request), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "PASS"
    request.write_bytes(b"other bytes")
    result = run("receipt", "verify", str(path), "--request", str(request))
    assert result.exit_code == 1
    assert "HASH_MISMATCH" in result.stderr


def test_run_verify_bundle(tmp_path: Path) -> None:
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(BUNDLE_PASS))
    result = run("run", "verify-bundle", str(path), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["reason_code"] == "OK"
    tampered = json.loads(json.dumps(BUNDLE_PASS))
    tampered["payload"]["event_chain"][0]["event_type"] = "edited"
    path.write_text(json.dumps(tampered))
    result = run("run", "verify-bundle", str(path))
    assert result.exit_code == 1
    assert "HASH_MISMATCH" in result.stderr
    result = run("run", "verify-bundle", str(path), "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["reason_code"] == "HASH_MISMATCH"


def test_usage_errors_exit_2() -> None:
    assert run("cst", "issue").exit_code == 2
    assert run("halt", "everyone", "--reason", "x", "--key", "k").exit_code == 2
    assert run("cst", "revoke", "--reason", "x", "--key", "k").exit_code == 2


@pytest.mark.parametrize(
    "command",
    [
        ["wpc"],
        ["wpc", "hash"],
        ["wpc", "publish"],
        ["wpc", "get"],
        ["wpc", "list"],
        ["wpc", "supersede"],
        ["wpc", "revoke"],
        ["cst"],
        ["cst", "issue"],
        ["cst", "inspect"],
        ["cst", "revoke"],
        ["cst", "scope-hash"],
        ["urm"],
        ["urm", "hash"],
        ["urm", "approve"],
        ["urm", "submit"],
        ["run"],
        ["run", "start"],
        ["run", "complete"],
        ["run", "show"],
        ["run", "bundle"],
        ["run", "verify-bundle"],
        ["receipt"],
        ["receipt", "record"],
        ["receipt", "verify"],
        ["halt"],
        ["resume"],
        ["halts"],
    ],
)
def test_help(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.exit_code == 0
    assert "Usage: claw-ledger" in result.stdout
