"""End to end through the CLI on the real Kafka broker, Postgres server and
verifying processor (``running_ledger`` from tests/fixtures_ledger.py).

Each command runs as its own ``python -m claw_ledger`` process, as a newcomer
would run it. Every refusal is checked for its reason code and for nothing
having been recorded on the ledger.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shlex
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from ledger.tokens import token_scope_hash_b64u

from ._cli_support import Cli, _issue, _urm, _wpc

pytestmark = pytest.mark.integration


@pytest.fixture
def cli(cli_env: dict[str, str], running_ledger: Any, tmp_path: Path) -> Iterator[Cli]:
    yield Cli(cli_env, tmp_path, running_ledger.settings.database_url)


def test_the_whole_flow_from_the_cli(cli: Cli, tmp_path: Path) -> None:
    job = f"job-{uuid.uuid4().hex[:8]}"
    wpc_file, wpc = _wpc(tmp_path, "flow")
    # WPC: publish, fetch and verify
    cli("wpc", "publish", str(wpc_file), "--key", "policy-admin")
    got = json.loads(cli("wpc", "get", wpc, "--verify", "--json").stdout)
    assert got["verified"] is True and got["status"] == "active"
    assert json.loads(cli("wpc", "get", wpc).stdout) == got["envelope"]
    # what `wpc get` printed reads as the WPC itself: hashed, and diffed with its file
    fetched = tmp_path / "fetched.json"
    fetched.write_text(cli("wpc", "get", wpc).stdout)
    assert cli("wpc", "hash", str(fetched)).stdout.strip() == wpc
    assert cli("wpc", "diff", str(fetched), str(wpc_file)).returncode == 0
    cli.refused("WPC_ALREADY_PUBLISHED", "wpc", "publish", str(wpc_file), "--key", "policy-admin")
    # CST pinned to the WPC and bound to the job
    token, scope_hash = _issue(cli, job, wpc)
    assert scope_hash == token_scope_hash_b64u(
        {
            "sub": "agent:alpha",
            "aud": "clawproxy",
            "scope": ["proxy:call:anthropic", "tools:read"],
            "policy_hash_b64u": wpc,
            "mission_id": job,
        }
    )
    inspected = json.loads(cli("cst", "inspect", "-", "--json", stdin=token).stdout)
    assert inspected["status"] == "active" and inspected["signature"] == "valid"
    # URM: approve, submit
    report = hashlib.sha256(b"%PDF-1.7 report").hexdigest()
    urm = _urm(
        tmp_path / "job.urm.json",
        job,
        wpc,
        scope_hash,
        [
            {"name": "close_report.pdf", "sha256": report},
            {"name": "recon_summary.json", "sha256": None},
        ],
    )
    cli.refused("URM_NO_APPROVALS", "urm", "submit", str(urm), "--key", "runtime")
    approval = tmp_path / "approval.json"
    cli("urm", "approve", str(urm), "--key", "approver", "-o", str(approval))
    submitted = json.loads(
        cli(
            "urm", "submit", str(urm), "--approval", str(approval), "--key", "runtime", "--json"
        ).stdout
    )
    assert submitted["status"] == "committed"
    # run: start, a receipt, complete
    started = json.loads(
        cli(
            "run", "start", "--job", job, "--token", "-", "--key", "runtime", "--json", stdin=token
        ).stdout
    )
    binding = started["binding"]
    assert binding["run_id"] == job and binding["policy_hash"] == wpc
    request, response = tmp_path / "req.json", tmp_path / "resp.json"
    request.write_bytes(b'{"model":"claude-sonnet-4","messages":[]}')
    response.write_bytes(b'{"content":[]}')
    receipt_file = tmp_path / "receipt.json"
    cli(
        *("receipt", "record", "--job", job),
        *("--request", str(request), "--response", str(response)),
        *shlex.split("--provider anthropic --model claude-sonnet-4 --key gateway"),
        *shlex.split("--tokens-input 12 --tokens-output 3 --latency-ms 456"),
        *("-o", str(receipt_file)),
    )
    cli(
        "receipt",
        "verify",
        str(receipt_file),
        "--request",
        str(request),
        "--response",
        str(response),
    )
    outputs = tmp_path / "out"
    outputs.mkdir()
    (outputs / "report.pdf").write_bytes(b"%PDF-1.7 other")
    (outputs / "recon.json").write_bytes(b"{}")
    completed = json.loads(
        cli(
            "run",
            "complete",
            "--job",
            job,
            "--output",
            f"close_report.pdf={outputs / 'report.pdf'}",
            "--output",
            f"recon_summary.json={outputs / 'recon.json'}",
            "--key",
            "runtime",
            "--json",
        ).stdout
    )
    assert [(f["name"], f["flag"]) for f in completed["output_flags"]] == [
        ("close_report.pdf", "hash_mismatch")
    ]
    shown = json.loads(cli("run", "show", job, "--json").stdout)
    assert shown["status"] == "completed" and shown["receipt_count"] == 1
    assert [e["event_type"] for e in shown["event_chain"]] == [
        "run.manifest_approved",
        "run.started",
        "run.completed",
    ]
    # proof bundle from the ledger
    bundle = tmp_path / "bundle.json"
    cli("run", "bundle", job, "--key", "runtime", "-o", str(bundle))
    verified = json.loads(cli("run", "verify-bundle", str(bundle), "--json").stdout)
    assert verified["event_count"] == 3 and verified["receipt_count"] == 1
    # each step is on the timeline
    timeline = json.loads(cli("timeline", "--stream", f"job:{job}", "--json").stdout)
    rows = timeline["rows"] if isinstance(timeline, dict) else timeline
    assert [r["event_type"] for r in rows] == [
        "run.manifest_approved",
        "run.started",
        "receipt.recorded",
        "run.completed",
    ]


def test_pins_to_unknown_or_revoked_wpc_fail(cli: Cli, tmp_path: Path) -> None:
    pinned_issue = shlex.split("cst issue --sub s --aud a --scope x --key issuer --policy")
    _, unknown = _wpc(tmp_path, "never-published")
    cli.refused("WPC_UNKNOWN", *pinned_issue, unknown)
    wpc_file, wpc = _wpc(tmp_path, "to-revoke")
    cli("wpc", "publish", str(wpc_file), "--key", "policy-admin")
    cli("wpc", "revoke", wpc, "--reason", "allows exec on prod", "--key", "policy-admin")
    cli.refused("WPC_REVOKED", "wpc", "get", wpc)
    cli.refused("WPC_REVOKED", *pinned_issue, wpc)
    cli.refused("WPC_UNKNOWN", "wpc", "get", unknown)
    cli.refused("MALFORMED_POLICY_HASH", "wpc", "get", "b64u:nope")


def test_ledger_refusals_from_the_cli(cli: Cli, tmp_path: Path) -> None:
    job, other = f"job-{uuid.uuid4().hex[:8]}", f"job-{uuid.uuid4().hex[:8]}"
    wpc_file, wpc = _wpc(tmp_path, "refusals")
    cli("wpc", "publish", str(wpc_file), "--key", "policy-admin")
    # a subject of its own: its lift binds every later token of that subject to the WPC
    sub = f"agent:{uuid.uuid4().hex[:8]}"
    token, scope_hash = _issue(cli, job, wpc, sub)
    foreign, _ = _issue(cli, other, wpc, sub)
    urm = _urm(tmp_path / "u.json", job, wpc, scope_hash, [{"name": "r.json", "sha256": None}])
    approval = tmp_path / "a.json"
    cli("urm", "approve", str(urm), "--key", "approver", "-o", str(approval))
    # an approver key cannot be the requester; a runtime key cannot approve
    self_approval = tmp_path / "self.json"
    cli("urm", "approve", str(urm), "--key", "runtime", "-o", str(self_approval))
    self_approved = ["urm", "submit", str(urm), "--approval", str(self_approval)]
    cli.refused("URM_SELF_APPROVAL", *self_approved, "--key", "runtime")
    cli.refused("URM_APPROVER_NOT_ALLOWED", *self_approved, "--key", "operator")
    cli.refused("JOB_UNKNOWN", "run", "start", "--job", job, "--token", token, "--key", "runtime")
    cli("urm", "submit", str(urm), "--approval", str(approval), "--key", "runtime")
    cli.refused(
        "JOB_ALREADY_APPROVED",
        "urm",
        "submit",
        str(urm),
        "--approval",
        str(approval),
        "--key",
        "runtime",
    )
    cli.refused(
        "JOB_BINDING_MISMATCH", "run", "start", "--job", job, "--token", foreign, "--key", "runtime"
    )
    cli.refused(
        "ROLE_NOT_ALLOWED", "run", "start", "--job", job, "--token", token, "--key", "gateway"
    )
    # a halt on the job refuses its start and revokes its token; a lift re-authorises
    cli("halt", f"job:{job}", "--reason", "drill", "--key", "operator")
    start = ["run", "start", "--job", job, "--key", "runtime"]
    cli.refused("AGENT_HALTED", *start, "--token", token)
    lift = ["--reason", "drill over", "--key", "operator"]
    cli.refused("RESUME_POLICY_REQUIRED", "resume", f"job:{job}", *lift)
    cli("resume", f"job:{job}", "--policy", wpc, *lift)
    cli.refused("TOKEN_REVOKED", *start, "--token", token)
    token, _ = _issue(cli, job, wpc, sub)
    cli(*start, "--token", token)
    request = tmp_path / "req"
    request.write_bytes(b"req")
    receipt = ["receipt", "record", "--job", job, "--request", str(request)]
    receipt += ["--response", str(request), "--provider", "p", "--model", "m"]
    cli.refused("ROLE_NOT_ALLOWED", *receipt, "--key", "runtime")
    cli.refused("RECEIPT_BINDING_MISMATCH", *receipt, "--event-hash", "B" * 43, "--key", "gateway")
    cli(*receipt, "--key", "gateway")
    cli("halt", f"sub:{sub}", "--reason", "injection suspected", "--key", "operator")
    cli.refused("AGENT_HALTED", *receipt, "--key", "gateway")
    cli("resume", f"sub:{sub}", "--policy", wpc, "--reason", "clear", "--key", "operator")
    # the halt revoked the running job's token: its model calls stay refused
    cli.refused("TOKEN_REVOKED", *receipt, "--key", "gateway")
    cli.refused(
        "OUTPUT_HASH_INVALID",
        "run",
        "complete",
        "--job",
        job,
        "--output-hash",
        "r.json=" + "AB" * 32,
        "--key",
        "runtime",
    )
    cli("run", "complete", "--job", job, "--output-hash", "r.json=" + "ab" * 32, "--key", "runtime")
    cli.refused(
        "RUN_ALREADY_COMPLETED",
        "run",
        "complete",
        "--job",
        job,
        "--output-hash",
        "r.json=" + "ab" * 32,
        "--key",
        "runtime",
    )
    # the halt's revocation: the token inspects as revoked, and --job finds nothing to revoke
    result = cli("cst", "inspect", "-", "--json", stdin=token, ok=False)
    assert result.returncode == 1 and json.loads(result.stdout)["status"] == "revoked"
    cli.refused(
        "TOKEN_UNKNOWN", "cst", "revoke", "--job", job, "--reason", "again", "--key", "issuer"
    )


def test_projection_rows_load_back_equal(fresh_database: str) -> None:
    """What the rules write is what the processor's ``load_state`` reads back."""
    from storage import postgres as store

    from ._rules_support import _receipt_body
    from ._support import Ledger, ts

    ledger = Ledger()
    ledger.started_job()
    ledger.ok(
        ledger.keys.gateway, "receipt.recorded", "job:job-1", _receipt_body(ledger), at=ts(90)
    )
    ledger.ok(ledger.keys.operator, "agent.halted", "halt:*", {"target": "*", "reason": "x"})
    ledger.ok(
        ledger.keys.runtime,
        "run.completed",
        "job:job-1",
        {"job_id": "job-1", "outputs": [{"name": "x", "sha256": "ab" * 32}]},
        at=ts(120),
    )

    async def round_trip() -> Any:
        conn = await asyncpg.connect(fresh_database)
        try:
            await store.init_connection(conn)
            async with conn.transaction():
                await store._upsert(conn, ledger.rows, 1)
            return await store.load_state(conn, None), await conn.fetchval(
                "SELECT count(*) FROM receipts"
            )
        finally:
            await conn.close()

    state, receipts = asyncio.run(round_trip())
    for table in ("policies", "tokens", "jobs", "halts"):
        assert getattr(state, table) == getattr(ledger.state, table), table
    assert receipts == 1
