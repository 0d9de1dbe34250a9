"""One nonce, two authorize processes at once: exactly one allow; and after a
restart the nonce is still spent."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest

from ledger.authorize import CallRequest
from ledger.errors import ReasonCode
from tests.fixtures_ledger import CLAW_LEDGER, LedgerHarness
from tests.integration import _authorize as authz

pytestmark = pytest.mark.integration


async def _authorize_cli(
    ledger: LedgerHarness, token_file: Path, job_id: str, nonce: str
) -> tuple[int, dict[str, object]]:
    proc = await asyncio.create_subprocess_exec(
        *CLAW_LEDGER,
        *("authorize", "--token", str(token_file), "--job", job_id, "--tool", "read"),
        *("--nonce", nonce, "--key", str(ledger.settings.state_dir / "keys" / "authorizer.key")),
        "--json",
        env=ledger.env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode in (0, 1), err.decode()
    return proc.returncode, json.loads(out)


async def test_a_nonce_is_used_once_across_processes_and_restarts(
    running_ledger: LedgerHarness, tmp_path: Path
) -> None:
    ledger = running_ledger
    job = await authz.running_job(
        ledger, await authz.publish_wpc(ledger, authz.WPC | {"purpose": "nonce"})
    )
    token_file = tmp_path / "cst.txt"
    token_file.write_text(job.token + "\n")
    nonce = uuid.uuid4().hex
    results = await asyncio.gather(
        _authorize_cli(ledger, token_file, job.job_id, nonce),
        _authorize_cli(ledger, token_file, job.job_id, nonce),
    )
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], results
    reasons = sorted(str(answer["reason_code"]) for _, answer in results)
    assert reasons == [ReasonCode.NONCE_REPLAYED, ReasonCode.OK]
    assert all(answer["recorded"] is True for _, answer in results)
    # a service started afterwards (a restart) still refuses the nonce
    authorize = authz.service(ledger)
    await authorize.start()
    try:
        again = await authorize.decide(CallRequest(job.token, job.job_id, authz.READ, nonce))
        fresh = await authorize.decide(authz.request(job))
    finally:
        await authorize.stop()
    assert again.reason_code is ReasonCode.NONCE_REPLAYED and fresh.allowed
    ids = [str(answer["decision_id"]) for _, answer in results] + [again.decision_id]
    rows = await authz.recorded_decisions(ledger, ids)
    assert sorted(r["reason_code"] for r in rows.values()) == [
        "NONCE_REPLAYED",
        "NONCE_REPLAYED",
        "OK",
    ]
