"""``wpc diff``: what two WPCs allow differently, judged by the authorize rule itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from claw_ledger.cli import cli
from ledger.authorize import Action, action_verdict
from ledger.errors import PolicyError
from ledger.wpc import validate_wpc
from ledger.wpc_diff import diff_wpcs

OLD: dict[str, Any] = {
    "wpc_version": "1",
    "tools": {"allow": ["read", "exec", "browser"], "deny": ["shell"]},
    "model_calls": {"allowed_providers": ["openai", "anthropic"]},
    "token_binding": {"cst_scope_hash_required": True},
    "approvals": {"required_for": [{"action": "deploy"}]},
}
NEW: dict[str, Any] = {
    "wpc_version": "1",
    "tools": {"allow": ["read", "browser", "write"], "deny": ["shell", "exec"]},
    "model_calls": {"allowed_providers": ["anthropic"]},
    "token_binding": {"cst_scope_hash_required": True, "cst_policy_hash_pinning": "required"},
    "approvals": {"required_for": [{"action": "deploy"}]},
}


def _changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[bool, bool]]:
    result = diff_wpcs(old, new)
    return {f"{c.kind}:{c.name}": (c.old, c.new) for c in (*result.actions, *result.defaults)}


def test_tools_and_providers_that_change_are_reported_both_ways() -> None:
    assert _changes(OLD, NEW) == {
        "tool:exec": (True, False),
        "tool:write": (False, True),
        "model:openai": (True, False),
    }
    result = diff_wpcs(OLD, NEW)
    assert {c.name for c in result.newly_denied} == {"exec", "openai"}
    assert {c.name for c in result.newly_allowed} == {"write"}
    assert [(f.section, f.name) for f in result.fields] == [
        ("token_binding", "cst_policy_hash_pinning")
    ]


def test_every_reported_verdict_is_what_enforcement_decides() -> None:
    old, new = validate_wpc(OLD), validate_wpc(NEW)
    for change in diff_wpcs(OLD, NEW).actions:
        action = (
            Action.for_tool(change.name)
            if change.kind == "tool"
            else Action.for_model(change.name, "any-model")
        )
        assert action_verdict(old, action)[0] is change.old
        assert action_verdict(new, action)[0] is change.new


def test_a_default_change_is_reported_for_names_neither_mentions() -> None:
    closed = {"wpc_version": "1", "tools": {"default": "deny", "allow": ["read"]}}
    opened = {"wpc_version": "1", "tools": {"default": "allow", "deny": ["shell"]}}
    result = diff_wpcs(closed, opened)
    assert [(c.name, c.old, c.new) for c in result.defaults if c.kind == "tool"] == [
        ("any other tool", False, True)
    ]
    assert ("shell", False, False) not in [(c.name, c.old, c.new) for c in result.actions]


def test_a_halt_mode_wpc_denies_everything_the_other_allowed() -> None:
    halt = {"wpc_version": "1", "mode": "halt", "tools": {"default": "deny"}}
    result = diff_wpcs(OLD, halt)
    assert {c.name for c in result.newly_denied} >= {"read", "exec", "browser", "openai"}
    assert not result.newly_allowed
    assert ("mode", "halt", False, True) in [
        (f.section, f.name, f.old, f.new) for f in result.fields
    ]


def test_the_same_document_has_no_difference() -> None:
    result = diff_wpcs(OLD, json.loads(json.dumps(OLD)))
    assert result.identical and not (result.actions or result.defaults or result.fields)


def test_an_invalid_wpc_is_refused_with_its_code() -> None:
    with pytest.raises(PolicyError) as raised:
        diff_wpcs(OLD, {"wpc_version": "2"})
    assert raised.value.code.value == "WPC_INVALID"


def test_cli_exit_codes_and_json(tmp_path: Path) -> None:
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps(OLD))
    new.write_text(json.dumps(NEW))
    runner = CliRunner()
    same = runner.invoke(cli, ["wpc", "diff", str(old), str(old)])
    assert same.exit_code == 0, same.output
    assert "no difference" in same.output
    differs = runner.invoke(cli, ["wpc", "diff", str(old), str(new)])
    assert differs.exit_code == 1
    assert "now DENIED   tool exec" in differs.output
    assert "2 newly denied, 1 newly allowed, 1 settings changed" in differs.output
    as_json = runner.invoke(cli, ["wpc", "diff", str(old), str(new), "--json"])
    assert as_json.exit_code == 1
    document = json.loads(as_json.output)
    assert document["newly_denied"] == 2 and document["newly_allowed"] == 1
    bad = tmp_path / "bad.json"
    bad.write_text('{"wpc_version": "1", "tools": {"allow": ["x"], "deny": ["x"]}}')
    refused = runner.invoke(cli, ["wpc", "diff", str(old), str(bad)])
    assert refused.exit_code not in (0, 1), refused.output
    assert "WPC_INVALID" in refused.output
