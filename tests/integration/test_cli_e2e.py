"""The product's own entry points, as a user types them, against a running ledger."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from ledger.roles import Role
from tests.fixtures_ledger import LedgerHarness, start_ledger

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "openclaw" / "fixtures"


def cli(
    env: dict[str, str], *args: str, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "claw_ledger", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=cwd,
    )


def test_keys_publish_and_refusal_through_the_cli(cli_env: dict[str, str]) -> None:
    new = cli(cli_env, "keys", "new", "cli-operator", "--json")
    assert new.returncode == 0, new.stderr
    did = json.loads(new.stdout)["did"]
    registered = cli(
        cli_env,
        "keys",
        "register",
        "cli-operator",
        "--role",
        "operator",
        "--key",
        "admin",
        "--json",
    )
    assert registered.returncode == 0, registered.stderr
    assert json.loads(registered.stdout)["status"] == "committed"

    body = json.dumps({"target": "job:cli-e2e", "reason": "from the cli"})
    halt = ["publish", "--type", "agent.halted", "--stream", "halt:job:cli-e2e", "--body", "-"]
    ok = cli(cli_env, *halt, "--key", "cli-operator", "--json", stdin=body)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["status"] == "committed"

    # the gateway role may not halt agents: refused with its reason code, exit 1
    refused = cli(cli_env, *halt, "--key", "gateway", stdin=body)
    assert refused.returncode == 1
    assert "ROLE_NOT_ALLOWED" in refused.stderr

    bad = cli(
        cli_env,
        "publish",
        "--type",
        "agent.halted",
        "--stream",
        "halt:job:x",
        "--body",
        "-",
        "--key",
        "cli-operator",
        stdin="{not json",
    )
    assert bad.returncode == 2
    assert "not valid JSON" in bad.stderr

    listed = cli(cli_env, "keys", "list", "--json")
    assert any(row["did"] == did for row in json.loads(listed.stdout)["registry"])
    # at 80 columns a DID wraps but is never cut short
    table = cli(cli_env | {"COLUMNS": "80"}, "keys", "list").stdout
    assert max(map(len, table.splitlines())) <= 80
    assert did in "".join(line.split("│")[2].strip() for line in table.splitlines() if "│" in line)


def test_timeline_filters_and_keyset_pages(
    cli_env: dict[str, str], running_ledger: LedgerHarness
) -> None:
    operator = running_ledger.keys[Role.OPERATOR]
    seen: list[str] = []
    cursor: str | None = None
    for n in range(5):
        out = cli(
            cli_env,
            "publish",
            "--type",
            "agent.halted",
            "--stream",
            "halt:job:timeline-pages",
            "--body",
            "-",
            "--key",
            "operator",
            "--json",
            stdin=json.dumps({"target": "job:timeline-pages", "reason": f"page {n}"}),
        )
        assert out.returncode == 0, out.stderr
        seen.append(json.loads(out.stdout)["event_id"])
    pages: list[list[dict[str, Any]]] = []
    while True:
        args = ["timeline", "--stream", "halt:job:timeline-pages", "--limit", "2", "--json"]
        if cursor:
            args += ["--after", cursor]
        page = json.loads(cli(cli_env, *args).stdout)
        pages.append(page["rows"])
        if page["next_cursor"] is None:
            break
        cursor = str(page["next_cursor"])
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [row["event_id"] for p in pages for row in p] == seen
    positions = [row["position"] for p in pages for row in p]
    assert positions == sorted(positions)
    by_type = json.loads(
        cli(cli_env, "timeline", "--type", "key.registered", "--json", "--limit", "500").stdout
    )
    assert by_type["rows"] and {r["event_type"] for r in by_type["rows"]} == {"key.registered"}
    signer = json.loads(
        cli(cli_env, "timeline", "--signer", operator.did, "--json", "--limit", "500").stdout
    )
    assert signer["rows"] and {r["producer"] for r in signer["rows"]} == {operator.did}
    table = cli(cli_env, "timeline", "--stream", "halt:job:timeline-pages")
    assert table.returncode == 0 and "agent.halted" in table.stdout
    # keys shortened in the table (wide enough that no cell folds), whole with --wide
    wide = cli_env | {"COLUMNS": "400"}
    short = cli(wide, "timeline", "--stream", f"key:{operator.did}")
    assert operator.did not in short.stdout, short.stdout
    assert f"key:{operator.did[:14]}…{operator.did[-8:]}" in short.stdout
    assert "--wide shows them whole" in short.stdout
    whole = cli(wide, "timeline", "--stream", f"key:{operator.did}", "--wide")
    assert f"key:{operator.did}" in whole.stdout and "…" + operator.did[-10:] not in whole.stdout
    bad_time = cli(cli_env, "timeline", "--since", "yesterday")
    assert bad_time.returncode == 2
    # no match says so instead of drawing an empty table
    last = str(positions[-1])
    none = cli(cli_env, "timeline", "--stream", "halt:job:timeline-pages", "--after", last)
    assert none.returncode == 0 and none.stdout == "no events match after this cursor\n"


def test_audit_passes_on_a_clean_ledger(cli_env: dict[str, str]) -> None:
    result = cli(cli_env, "audit", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and report["events"] > 0


def test_policy_check_publish_lands_on_the_timeline(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    fixture = FIXTURES / "channels-denied-provider" / "fail"
    result = cli(
        cli_env,
        "policy",
        "check",
        "--policy",
        str(fixture / "policy.jsonc"),
        "--config",
        str(fixture / "openclaw.json"),
        "--workspace",
        str(tmp_path),
        "--json",
        "--publish",
        "--key",
        "runtime",
    )
    assert result.returncode == 1, result.stderr  # the fixture has a finding
    check = json.loads(result.stdout)
    attestation_hash = check["attestation"]["attestationHash"]
    timeline = json.loads(cli(cli_env, "timeline", "--type", "policy.attested", "--json").stdout)
    bodies = [row["body"] for row in timeline["rows"]]
    assert any(b["attestation_hash"] == attestation_hash and b["ok"] is False for b in bodies)


def test_demo_runs_end_to_end(cli_env: dict[str, str]) -> None:
    result = cli(cli_env, "demo", "--json")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads(result.stdout)
    job = summary["job"]
    timeline = json.loads(cli(cli_env, "timeline", "--stream", f"job:{job}", "--json").stdout)
    types = [row["event_type"] for row in timeline["rows"]]
    assert types == [
        "run.manifest_approved",
        "run.started",
        "call.authorized",  # tool read
        "call.denied",  # tool exec: the WPC denies it
        "call.authorized",  # the model call, then its two receipts
        "receipt.recorded",
        "receipt.recorded",
        "call.denied",  # after the halt: the negative proof
        "run.completed",
    ]
    denied = [row["body"] for row in timeline["rows"] if row["event_type"] == "call.denied"]
    assert [d["reason_code"] for d in denied] == ["TOOL_NOT_ALLOWED", "TOKEN_REVOKED"]
    assert denied[1]["halt_target"] == f"job:{job}"
    refused = json.loads(cli(cli_env, "quarantine", "--reason", "AGENT_HALTED", "--json").stdout)
    assert refused["rows"]
    past = str(max(row["id"] for row in refused["rows"]) + 10**9)
    nothing = cli(cli_env, "quarantine", "--reason", "agent_halted", "--after", past)
    assert nothing.stdout == "nothing quarantined matches after this cursor\n", nothing.stderr
    # the demo left the checkpointer running, and its proof was verified offline
    assert any(c["args"][:2] == ["verify", "proof.json"] for c in summary["commands"])
    assert cli(cli_env, "checkpointer", "status").returncode == 0
    latest = json.loads(cli(cli_env, "checkpoint", "latest", "--json").stdout)
    assert latest["tree_size"] >= summary["checkpoint"]["tree_size"] > 0
    # the other tests of this ledger count its events: no checkpoint may arrive later
    assert cli(cli_env, "checkpointer", "stop").returncode == 0
    asyncio.run(_checkpoints_published(cli_env["CLAW_LEDGER_DATABASE_URL"]))


async def _checkpoints_published(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        for _ in range(600):
            missing = await conn.fetchval(
                "SELECT count(*) FROM tlog_checkpoints c WHERE NOT EXISTS"
                " (SELECT 1 FROM events e WHERE e.event_id = c.event_id)"
            )
            if missing == 0:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"{missing} checkpoint(s) not on the ledger")
    finally:
        await conn.close()


def test_demo_on_an_unmigrated_database_says_to_run_migrate(
    empty_database: str, tmp_path: Path
) -> None:
    env = dict(os.environ)
    env |= {
        "CLAW_LEDGER_DATABASE_URL": empty_database,
        "CLAW_LEDGER_KAFKA": "127.0.0.1:1",  # never reached: the schema check comes first
        "CLAW_LEDGER_STATE_DIR": str(tmp_path),
    }
    result = cli(env, "demo", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        "error: the ledger database has no schema yet: run `claw-ledger migrate`"
    ]
    assert result.stdout == ""


@pytest.mark.parametrize(
    "command",
    [
        ("timeline",),
        ("quarantine",),
        ("keys", "list"),
        ("halts",),
        ("audit",),
        ("replay",),
        ("state", "at", "2026-12-01T00:00:00Z"),
        ("init",),
    ],
    ids=lambda command: " ".join(command[:2]),
)
def test_a_database_without_the_ledger_schema_says_to_migrate(
    empty_database: str, tmp_path: Path, command: tuple[str, ...]
) -> None:
    env = dict(os.environ) | {
        "CLAW_LEDGER_DATABASE_URL": empty_database,
        "CLAW_LEDGER_KAFKA": "127.0.0.1:1",
        "CLAW_LEDGER_STATE_DIR": str(tmp_path),
    }
    result = cli(env, *command, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: the database holds no ledger schema, or an older one")
    assert "hint: run `claw-ledger migrate`" in result.stderr


async def test_a_publish_with_no_verdict_in_time_still_prints_its_json(
    ledger_servers: Any, ledger_settings: Any, tmp_path: Path
) -> None:
    """No processor is running: the event is on Kafka and will be decided later. A
    script asked for JSON needs its id and coordinates to ask again; it got nothing
    on stdout, only the error."""
    ledger = await start_ledger(ledger_servers, ledger_settings, tmp_path)
    ledger.processor.stop()
    body = json.dumps({"target": "job:no-verdict", "reason": "drill"})
    result = cli(
        ledger.env,
        *("publish", "--type", "agent.halted", "--stream", "halt:job:no-verdict"),
        *("--body", "-", "--key", "operator", "--timeout", "1", "--json"),
        stdin=body,
    )
    assert result.returncode == 2, result.stderr
    document = json.loads(result.stdout)
    assert document["status"] == "timed_out" and document["timeout"] == 1
    assert document["topic"] == ledger.topics.control and document["offset"] >= 0
    assert f"error: event {document['event_id']} was published but no verdict" in result.stderr
