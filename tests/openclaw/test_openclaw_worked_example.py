"""The OpenClaw worked example of tests/vectors/examples.json, reproduced exactly."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from openclaw_policy import js_stringify, run_policy_check
from openclaw_policy.attestation import create_policy_attestation, policy_document_hash

# docs/formats.md §8; the constants are also checked against the vector file below
POLICY: dict[str, Any] = {"channels": {"denyRules": []}}
POLICY_HASH = "sha256:50280d76187fc37fb6965f90954af352e70c3e6d1ab892dc5ac0bb1c902d7b62"
ATTESTATION_HASH = "sha256:974fc94fd4a943052ee5cece07e8c87994454986e79a63c8c683a91ca7370eea"
EXAMPLES = Path(__file__).resolve().parents[1] / "vectors" / "examples.json"


def _vector() -> dict[str, object]:
    data: dict[str, object] = json.loads(EXAMPLES.read_text(encoding="utf-8"))
    vector = data["openclaw_policy_example"]
    assert isinstance(vector, dict)
    return vector


def test_constants_match_the_vector() -> None:
    vector = _vector()
    assert vector["policy"] == POLICY
    assert vector["openclaw_config"] == {}
    assert vector["policy_hash"] == POLICY_HASH
    assert vector["attestation_hash"] == ATTESTATION_HASH
    assert vector["ok"] is True


def test_pure_functions_reproduce_the_example() -> None:
    assert policy_document_hash(POLICY) == POLICY_HASH
    attestation = create_policy_attestation(
        ok=True,
        checked_at="2026-05-10T20:00:00.000Z",
        policy_path="policy.jsonc",
        policy_hash=POLICY_HASH,
        evidence={
            "channels": [],
            "mcpServers": [],
            "modelProviders": [],
            "modelRefs": [],
            "network": [],
        },
        findings=[],
    )
    assert attestation.attestation_hash == ATTESTATION_HASH


@pytest.mark.parametrize("from_vector", [False, True])
def test_policy_check_reproduces_the_example(tmp_path: Path, from_vector: bool) -> None:
    policy: object = POLICY
    config: object = {}
    policy_hash, attestation_hash, ok = POLICY_HASH, ATTESTATION_HASH, True
    if from_vector:
        vector = _vector()
        policy, config = vector["policy"], vector["openclaw_config"]
        policy_hash = str(vector["policy_hash"])
        attestation_hash = str(vector["attestation_hash"])
        ok = bool(vector["ok"])
    (tmp_path / "policy.jsonc").write_text(json.dumps(policy), encoding="utf-8")
    (tmp_path / "openclaw.json").write_text(json.dumps(config), encoding="utf-8")
    now = datetime(2026, 5, 10, 20, 0, tzinfo=UTC)
    result = run_policy_check(
        tmp_path / "policy.jsonc", tmp_path / "openclaw.json", tmp_path, now=now, env={}
    )
    assert result.ok is ok
    assert result.exit_code == 0
    document = result.to_json()
    assert js_stringify(document["attestation"]) == (
        '{"checkedAt":"2026-05-10T20:00:00.000Z",'
        f'"policy":{{"path":"policy.jsonc","hash":"{policy_hash}"}},'
        '"workspace":{"scope":"policy","hash":'
        '"sha256:9f0c2b4bea8e495d82b29534602041becdc1d65f098cac22fbc696630380691e"},'
        '"findingsHash":"sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",'
        f'"attestationHash":"{attestation_hash}"}}'
    )
    keys = ["ok", "attestation", "evidence", "checksRun", "checksSkipped", "findings"]
    assert list(document) == keys
    assert document["checksRun"] == 37 and document["checksSkipped"] == 0


def test_checked_at_is_outside_the_attestation_hash(tmp_path: Path) -> None:
    (tmp_path / "policy.jsonc").write_text(json.dumps(POLICY), encoding="utf-8")
    (tmp_path / "openclaw.json").write_text("{}", encoding="utf-8")
    hashes = set()
    for year in (2020, 2030):
        result = run_policy_check(
            None, tmp_path / "openclaw.json", tmp_path, now=datetime(year, 1, 1, tzinfo=UTC), env={}
        )
        assert result.attestation is not None
        hashes.add(result.attestation.attestation_hash)
    assert hashes == {ATTESTATION_HASH}
