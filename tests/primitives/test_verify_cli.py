"""``claw-ledger verify``: the report, --json and the exit codes, with no server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from claw_ledger.cli import cli
from ledger.bundles import build_job_bundle
from ledger.receipts import sign_receipt
from tests.core import _bundles
from tests.core import _tlog_example as tlog
from tests.core._helpers import receipt_payload

from ._support import Ledger

VECTOR = Path(__file__).resolve().parents[1] / "vectors" / "clawsig-proof-bundle-pass.v1.json"
EXAMPLE: dict[str, Any] = json.loads(tlog.EXAMPLE_FILE.read_text(encoding="utf-8"))
LEDGER_DID = tlog.KEY.did


def run(*args: str, stdin: bytes | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin, prog_name="claw-ledger")


def write(tmp_path: Path, name: str, document: Any) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return str(path)


def proof_file(tmp_path: Path, log_index: int = 2) -> str:
    leaf = EXAMPLE["leaves"][2]
    return write(
        tmp_path,
        "proofs.json",
        {
            "checkpoint": EXAMPLE["checkpoints"][1]["note"],
            "inclusion": [
                {
                    "log_index": log_index,
                    "leaf_hash_b64": leaf["leaf_hash_b64"],
                    "proof_b64": EXAMPLE["inclusion"]["proof_b64"],
                }
            ],
            "consistency": {
                "old_checkpoint": EXAMPLE["checkpoints"][0]["note"],
                "proof_b64": EXAMPLE["consistency"]["proof_b64"],
            },
        },
    )


def test_the_vector_passes_with_each_step_shown() -> None:
    result = run("verify", str(VECTOR))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[1] == "  \u2713 1. envelope fields"
    assert "  \u2713 10. model calls have receipts (model calls: 1, each with a receipt)" in lines
    assert lines[-1].startswith("VALID: proof bundle bundle_conformance_001 of run")


def test_json_gives_the_verdict_and_every_step() -> None:
    result = run("verify", str(VECTOR), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["valid"], report["reason_code"], report["kind"]) == (True, "OK", "proof_bundle")
    assert [check["step"] for check in report["checks"]] == list(range(1, 11))
    assert all(check["ok"] for check in report["checks"])


def test_a_tampered_bundle_exits_1_and_says_what_to_do(tmp_path: Path) -> None:
    tampered = json.loads(VECTOR.read_bytes())
    tampered["payload"]["event_chain"][0]["event_type"] = "edited"
    path = write(tmp_path, "tampered.json", tampered)
    result = run("verify", path)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[-2].startswith("  \u2717 4. payload hash: HASH_MISMATCH: payload hashes to")
    assert lines[-1].startswith("INVALID (HASH_MISMATCH): the content was changed after")
    report = json.loads(run("verify", path, "--json").stdout)
    assert (report["valid"], report["reason_code"]) == (False, "HASH_MISMATCH")
    assert report["checks"][-1]["ok"] is False and len(report["checks"]) == 4


@pytest.mark.parametrize(
    ("build", "code"),
    [
        (_bundles.missing_receipt, "RECEIPT_MISSING"),
        (_bundles.receipt_of_another_run, "RECEIPT_BINDING_MISMATCH"),
        (_bundles.broken_link, "HASH_MISMATCH"),
        (_bundles.signed_by_outsider, "PROOF_BUNDLE_AGENT_MISMATCH"),
    ],
)
def test_each_broken_bundle_exits_1_with_its_code(tmp_path: Path, build: Any, code: str) -> None:
    path = write(tmp_path, "bundle.json", build())
    result = run("verify", path, "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["reason_code"] == code
    assert f"INVALID ({code})" in run("verify", path).stdout
    # the alias runs the same verification
    alias = run("run", "verify-bundle", path, "--json")
    assert alias.exit_code == 1
    assert json.loads(alias.stdout)["reason_code"] == code
    assert code in alias.stderr


def test_run_verify_bundle_keeps_its_report(tmp_path: Path) -> None:
    path = write(tmp_path, "bundle.json", _bundles.good_bundle())
    result = run("run", "verify-bundle", path, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "status": "PASS",
        "reason_code": "OK",
        "bundle_id": "bundle-offline-1",
        "agent_did": _bundles.AGENT.did,
        "run_id": _bundles.RUN_ID,
        "event_count": 3,
        "receipt_count": 2,
    }
    assert run("run", "verify-bundle", path, "--agent", _bundles.OUTSIDER.did).exit_code == 1
    assert run("verify", path, "--agent", _bundles.OUTSIDER.did).exit_code == 1


def test_a_checkpoint_needs_the_ledger_key() -> None:
    checkpoint = str(tlog.CHECKPOINT_FILE)
    unpinned = run("verify", checkpoint)
    assert unpinned.exit_code == 1
    assert "\u2717 2. ledger key pinned: CHECKPOINT_KEY_UNKNOWN" in unpinned.stdout
    assert "--ledger-key" in unpinned.stdout.splitlines()[-1]
    pinned = run("verify", checkpoint, "--ledger-key", LEDGER_DID, "--origin", tlog.ORIGIN)
    assert pinned.exit_code == 0, pinned.output
    assert pinned.stdout.splitlines()[-1].startswith(f"VALID: checkpoint of {tlog.ORIGIN}, tree")
    other = run("verify", checkpoint, "--ledger-key", _bundles.OUTSIDER.did)
    assert other.exit_code == 1
    assert "INVALID (CHECKPOINT_KEY_UNKNOWN)" in other.stdout


def test_a_proof_file_is_verified_against_its_checkpoint(tmp_path: Path) -> None:
    result = run("verify", proof_file(tmp_path), "--ledger-key", EXAMPLE["verifier_key"])
    assert result.exit_code == 0, result.output
    assert "  \u2713 5. inclusion proof 1 (leaf 2 is in the tree of size 5)" in result.stdout
    assert "  \u2713 6. consistency proof" in result.stdout
    wrong = run("verify", proof_file(tmp_path, log_index=4), "--ledger-key", LEDGER_DID, "--json")
    assert wrong.exit_code == 1
    assert json.loads(wrong.stdout)["reason_code"] == "INCLUSION_PROOF_INVALID"


def test_stdin_is_read_with_a_dash() -> None:
    result = run("verify", "-", "--json", stdin=tlog.CHECKPOINT_FILE.read_bytes())
    assert json.loads(result.stdout)["kind"] == "checkpoint"
    assert result.exit_code == 1


def test_unreadable_input_exits_2(tmp_path: Path) -> None:
    missing = run("verify", str(tmp_path / "absent.json"))
    assert missing.exit_code == 2
    assert "cannot read" in missing.stderr
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x89PNG\r\n")
    result = run("verify", str(garbage), "--json")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["reason_code"] == "MALFORMED_JSON"
    assert (
        run("verify", str(garbage)).stdout.splitlines()[-1].startswith("INVALID (MALFORMED_JSON)")
    )


def test_run_verify_bundle_of_a_missing_file_exits_2(tmp_path: Path) -> None:
    result = run("run", "verify-bundle", str(tmp_path / "absent.json"))
    assert result.exit_code == 2
    assert "cannot read" in result.stderr


def test_usage_errors_exit_2() -> None:
    assert run("verify").exit_code == 2
    bad_key = run("verify", str(VECTOR), "--ledger-key", "did:web:example.com")
    assert bad_key.exit_code == 2
    assert "--ledger-key" in bad_key.stderr
    assert run("verify", "--help").exit_code == 0


def test_the_installed_command_exits_with_the_verdict(tmp_path: Path) -> None:
    # the real entry point, as a reviewer runs it: exit codes survive the process boundary
    env = {**os.environ, "CLAW_LEDGER_STATE_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "claw_ledger", "verify"]
    ok = subprocess.run([*command, str(VECTOR)], capture_output=True, env=env, check=False)
    assert ok.returncode == 0, ok.stderr
    absent = subprocess.run(
        [*command, str(tmp_path / "absent")], capture_output=True, env=env, check=False
    )
    assert absent.returncode == 2


def test_the_proof_file_example_of_docs_transparency_is_what_the_command_prints() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "transparency.md").read_text("utf-8")
    section = doc[doc.index("## 8. Proof files") :]
    example = section[section.index("```json\n") + 8 :]
    example = example[: example.index("```")]
    console = section[section.index("```console\n$ claw-ledger verify proofs.json") :]
    command, *expected = console.split("```")[1].strip().splitlines()[1:]
    runner = CliRunner()
    with runner.isolated_filesystem():
        Path("proofs.json").write_text(example, encoding="utf-8")
        args = command.removeprefix("$ claw-ledger ").split()
        result = runner.invoke(cli, args, prog_name="claw-ledger")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == expected


def test_the_first_example_of_docs_primitives_is_what_the_command_prints(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = Path(__file__).resolve().parents[2]
    doc = (root / "docs" / "primitives.md").read_text("utf-8")
    section = doc[doc.index("## Verifying offline") :]
    block = section[section.index("```console\n") + 11 :]
    command, *rest = block[: block.index("\n$ ")].splitlines()
    monkeypatch.chdir(root)
    result = run(*command.removeprefix("$ claw-ledger ").split())
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == rest


def test_a_bundle_the_ledger_builds_for_a_job_verifies(tmp_path: Path) -> None:
    ledger = Ledger()
    ledger.started_job()
    job = ledger.state.jobs["job-1"]
    payload = receipt_payload(
        {
            "run_id": job["run_id"],
            "event_hash_b64u": job["event_chain"][-1]["event_hash_b64u"],
            "nonce": "n-1",
        }
    )
    receipt = sign_receipt(payload, ledger.keys.gateway).to_dict()
    bundle = build_job_bundle(job, [receipt], ledger.keys.runtime)
    path = write(tmp_path, "job.bundle.json", bundle.to_dict())
    result = run("verify", path, "--agent", ledger.keys.runtime.did, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["facts"]["event_count"] == 2 and report["facts"]["receipt_count"] == 1
    assert report["checks"][-1]["detail"] == "no model call"
