"""Sealed bundles end to end: runs through the real processor, sealed by the bundler,
exported, verified offline; a halted run; Trust Pulse records.

Each command is its own ``python -m claw_ledger`` process on the session's
Kafka broker, Postgres server and verifying processor (``running_ledger``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shlex
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from ledger.crypto import load_key
from ledger.encoding import b64u_encode
from ledger.roles import Role
from ledger.types import REGISTRY

from ._cli_support import Cli, _issue, _urm, _wpc

pytestmark = pytest.mark.integration

#: proofs from a tree the bundler keeps itself (the shared ledger's checkpointer may be
#: stopped); the checkpointer's own log is the last test's
MEMORY = ("--proofs", "memory")


@pytest.fixture
def cli(cli_env: dict[str, str], running_ledger: Any, tmp_path: Path) -> Iterator[Cli]:
    yield Cli(cli_env, tmp_path, running_ledger.settings.database_url)


def _fetch(url: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(url)
        try:
            return [dict(r) for r in await conn.fetch(sql, *args)]
        finally:
            await conn.close()

    return asyncio.run(go())


def _started_job(cli: Cli, tmp_path: Path, label: str) -> tuple[str, str]:
    """A WPC, a pinned token, an approved URM and a started run with one receipt."""
    job = f"job-{label}-{uuid.uuid4().hex[:8]}"
    wpc_file, wpc = _wpc(tmp_path, label)
    cli("wpc", "publish", str(wpc_file), "--key", "policy-admin")
    token, scope_hash = _issue(cli, job, wpc)
    urm = _urm(tmp_path / f"{label}.urm.json", job, wpc, scope_hash, [])
    approval = tmp_path / f"{label}.approval.json"
    cli("urm", "approve", str(urm), "--key", "approver", "-o", str(approval))
    cli("urm", "submit", str(urm), "--approval", str(approval), "--key", "runtime")
    cli("run", "start", "--job", job, "--token", "-", "--key", "runtime", stdin=token)
    request, response = tmp_path / f"{label}.req", tmp_path / f"{label}.resp"
    request.write_bytes(b'{"model":"claude-sonnet-4","messages":[]}')
    response.write_bytes(b'{"content":[]}')
    cli(
        *("receipt", "record", "--job", job),
        *("--request", str(request), "--response", str(response)),
        *shlex.split("--provider anthropic --model claude-sonnet-4 --key gateway"),
        *shlex.split("--tokens-input 12 --tokens-output 3 --latency-ms 456"),
    )
    return job, wpc


def test_the_bundler_refuses_a_key_whose_seals_the_ledger_would_quarantine(cli: Cli) -> None:
    """As the checkpointer does: a bundle.sealed signed by a key without the ledger role
    would be quarantined, so the bundler does not start with it (exit 2)."""
    cli("keys", "new", "not-the-ledger")
    unknown = cli("bundler", "run", "--key", "not-the-ledger", "--once", *MEMORY, ok=False)
    assert unknown.returncode == 2, unknown.stderr
    assert "is not registered on this ledger" in unknown.stderr
    assert "--role ledger" in unknown.stderr
    wrong_role = cli("bundler", "run", "--key", "gateway", "--once", *MEMORY, ok=False)
    assert wrong_role.returncode == 2, wrong_role.stderr
    assert "does not hold the ledger role" in wrong_role.stderr


def test_a_completed_run_is_sealed_once_exported_and_verified(
    cli: Cli, running_ledger: Any, tmp_path: Path
) -> None:
    url = running_ledger.settings.database_url
    ledger_did = running_ledger.keys[Role.LEDGER].did
    job, wpc = _started_job(cli, tmp_path, "sealed")
    cli("run", "complete", "--job", job, "--key", "runtime")
    sealed = cli("bundler", "run", "--key", "ledger", "--once", *MEMORY)
    assert f"job {job} (completed): sealed [completed]" in sealed.stdout, sealed.stderr
    # a second round (a restarted bundler) seals nothing again
    again = cli("bundler", "run", "--key", "ledger", "--once", *MEMORY)
    assert job not in again.stdout
    rows = _fetch(url, "SELECT * FROM bundles WHERE job_id = $1", job)
    assert len(rows) == 1 and rows[0]["trigger"] == "completed"
    assert rows[0]["sealed_by"] == ledger_did and rows[0]["receipt_count"] == 1
    events = _fetch(
        url,
        "SELECT count(*) AS n FROM events WHERE event_type = 'bundle.sealed' AND stream = $1",
        f"job:{job}",
    )
    assert events[0]["n"] == 1
    # export: the exact bytes whose SHA-256 is the recorded hash
    out = tmp_path / "sealed.json"
    cli("bundle", "export", job, "-o", str(out))
    raw = out.read_bytes()
    assert b64u_encode(hashlib.sha256(raw).digest()) == rows[0]["bundle_hash_b64u"]
    verified = cli("verify", str(out), "--ledger-key", ledger_did, "--json", ok=False)
    document = json.loads(verified.stdout)
    assert verified.returncode == 0, document
    assert document["valid"] and document["facts"]["job_id"] == job
    assert document["facts"]["policy_hash_b64u"] == wpc
    assert document["facts"]["counts"]["receipts"] == 1
    # the same file fails closed without the ledger key, and for another key
    unpinned = cli("verify", str(out), "--json", ok=False)
    assert unpinned.returncode == 1
    assert json.loads(unpinned.stdout)["reason_code"] == "CHECKPOINT_KEY_UNKNOWN"
    runtime_did = running_ledger.keys[Role.RUNTIME].did
    other = cli("verify", str(out), "--ledger-key", runtime_did, "--json", ok=False)
    assert json.loads(other.stdout)["reason_code"] == "CHECKPOINT_KEY_UNKNOWN"
    shown = json.loads(cli("bundle", "show", job, "--json").stdout)
    assert shown["verification"]["valid"] and shown["run"]["status"] == "completed"
    # Trust Pulse: content-addressed, published once
    published = json.loads(cli("pulse", "publish", job, "--key", "ledger", "--json").stdout)
    pulse_id = published["pulse_id"]
    assert published["record"]["verdict"] == "valid"
    assert published["record"]["policy_hash_b64u"] == wpc
    assert published["record"]["checkpoint"]["size"] == rows[0]["checkpoint_size"]
    again_published = json.loads(cli("pulse", "publish", job, "--key", "ledger", "--json").stdout)
    assert again_published["pulse_id"] == pulse_id
    assert len(_fetch(url, "SELECT * FROM pulse_records WHERE job_id = $1", job)) == 1
    record = json.loads(cli("pulse", "show", pulse_id, "--json").stdout)
    assert record["record"] == published["record"]
    assert record["published_by"] == ledger_did
    text = cli("pulse", "show", pulse_id).stdout
    assert f"run:        {job}  (completed)" in text and "verdict:    valid  (OK)" in text
    missing = cli("pulse", "show", "A" * 43, ok=False)
    assert missing.returncode == 1
    # the new projections rebuild from the events like every other one
    audit = cli("audit", "--no-signatures", "--json", ok=False)
    assert audit.returncode == 0, audit.stdout[-2000:]


def test_bundle_rows_cannot_be_rewritten(running_ledger: Any) -> None:
    """Even the owner's UPDATE is refused by the append-only trigger."""
    url = running_ledger.settings.database_url

    async def go() -> None:
        conn = await asyncpg.connect(url)
        try:
            for table in ("bundles", "bundle_documents", "pulse_records"):
                with pytest.raises(asyncpg.PostgresError, match="append-only"):
                    await conn.execute(f"UPDATE {table} SET job_id = 'x'")
                with pytest.raises(asyncpg.PostgresError, match="append-only"):
                    await conn.execute(f"DELETE FROM {table}")
            grants = await conn.fetch(
                "SELECT table_name, writer_privileges FROM role_grants"
                " WHERE table_name IN ('bundles', 'bundle_documents', 'pulse_records')"
            )
            assert {g["writer_privileges"] for g in grants} == {"SELECT, INSERT"}
            assert len(grants) == 3
            # content addressing is checked by the table itself
            with pytest.raises(asyncpg.CheckViolationError):
                await conn.execute(
                    "INSERT INTO bundle_documents (bundle_hash_b64u, job_id, bundle)"
                    " VALUES ($1, 'j', 'not these bytes')",
                    "A" * 43,
                )
        finally:
            await conn.close()

    asyncio.run(go())


def test_a_halted_run_is_sealed_with_its_halt(
    cli: Cli, running_ledger: Any, tmp_path: Path
) -> None:
    job, _ = _started_job(cli, tmp_path, "halted")
    state_dir = Path(running_ledger.env["CLAW_LEDGER_STATE_DIR"])
    ledger_key = load_key(state_dir / "keys" / "ledger.key")
    # on demand, a running run is sealed as it stands
    running = json.loads(cli("bundle", "seal", job, "--key", "ledger", "--json", *MEMORY).stdout)
    assert running["status"] == "sealed" and running["run_status"] == "running"
    assert running["trigger"].startswith("demand:")
    decisions = "call.authorized" in REGISTRY and "call.denied" in REGISTRY
    if decisions:
        authorizer = load_key(state_dir / "keys" / "authorizer.key")
        _decide(running_ledger, authorizer, job, "call.authorized", "OK", None)
    cli("halt", f"job:{job}", "--reason", "kill switch drill", "--key", "operator")
    if decisions:
        _decide(running_ledger, authorizer, job, "call.denied", "AGENT_HALTED", f"job:{job}")
    sealed = json.loads(cli("bundle", "seal", job, "--key", "ledger", "--json", *MEMORY).stdout)
    assert sealed["status"] == "sealed" and sealed["run_status"] == "halted"
    assert sealed["trigger"].startswith("halted:")
    assert sealed["bundle_hash_b64u"] != running["bundle_hash_b64u"]
    # the bundler sees the halted run as sealed already
    assert job not in cli("bundler", "run", "--key", "ledger", "--once", *MEMORY).stdout
    shown = json.loads(cli("bundle", "show", job, "--json").stdout)
    assert shown["verification"]["valid"], shown["verification"]
    assert shown["bundle"]["sealed_by"] == ledger_key.did
    (view,) = shown["halts"]
    assert view["halt"]["target"] == f"job:{job}" and view["halt"]["resumed_at"] is None
    text = cli("bundle", "show", job).stdout
    assert f"halt:       job:{job}" in text and "(still active)" in text
    if not decisions:
        pytest.skip(
            "call.authorized/call.denied are not event types of this registry yet:"
            " the last allowed and blocked calls cannot be published"
        )
    assert view["last_allowed"]["reason_code"] == "OK"
    assert [d["reason_code"] for d in view["blocked_after"]] == ["AGENT_HALTED"]


def _decide(harness: Any, key: Any, job: str, event_type: str, code: str, halt: str | None) -> None:
    decision_id = str(uuid.uuid4())
    body = {
        "decision_id": decision_id,
        "job_id": job,
        "action": {"kind": "model", "provider": "anthropic", "model": "claude-sonnet-4"},
        "token_jti": None,
        "token_scope_hash_b64u": None,
        "policy_hash_b64u": None,
        "halt_target": halt,
        "halt_state": "committed" if halt else None,
        "reason_code": code,
        "decided_at": "2026-11-30T00:00:00.000Z",
    }
    # a decision's event id is its decision id (ledger/types/decisions.py)
    verdict = asyncio.run(
        harness.publish(key, event_type, f"job:{job}", body, event_id=decision_id)
    )
    assert verdict["status"] == "committed", verdict


def test_a_run_is_sealed_against_the_checkpointers_log(
    cli: Cli, running_ledger: Any, tmp_path: Path
) -> None:
    ledger_did = running_ledger.keys[Role.LEDGER].did
    job, _ = _started_job(cli, tmp_path, "logged")
    cli("run", "complete", "--job", job, "--key", "runtime")
    cli("checkpointer", "start", "--key", "ledger", "--every-seconds", "0.2")
    try:
        deadline = time.monotonic() + 120
        while True:
            seal = cli(
                *("bundle", "seal", job, "--key", "ledger", "--proofs", "log", "--json"), ok=False
            )
            if seal.returncode == 0:
                break
            # the run's newest events are not in a signed checkpoint yet: try again
            assert seal.returncode == 2, seal.stdout + seal.stderr
            assert time.monotonic() < deadline, seal.stdout
            time.sleep(0.5)
        out = tmp_path / "logged.json"
        cli("bundle", "export", job, "-o", str(out))
        verified = cli("verify", str(out), "--ledger-key", ledger_did, "--json", ok=False)
        assert verified.returncode == 0, verified.stdout
        # proven against a checkpoint of the ledger's own log, not a tree of the bundler's
        seal_checkpoint = json.loads(out.read_bytes())["payload"]["seal"]["checkpoint"]
        latest = json.loads(cli("checkpoint", "latest", "--json").stdout)
        assert latest["origin"] in json.dumps(seal_checkpoint)
        assert "/bundler" not in json.dumps(seal_checkpoint)
    finally:
        cli("checkpointer", "stop", ok=False)
