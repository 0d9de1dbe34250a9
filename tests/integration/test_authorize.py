"""The authorize service on the real broker, database and processor: replay,
drift, revocation at decision time, and every answer a signed, recorded event."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ledger.authorize import Action
from ledger.crypto import KeyPair, save_key
from ledger.errors import ReasonCode
from ledger.roles import Role
from tests.fixtures_ledger import LedgerHarness, fetch_until, run_cli
from tests.integration import _authorize as authz

pytestmark = pytest.mark.integration


async def test_replay_drift_and_revocation_are_denied_and_recorded(
    running_ledger: LedgerHarness,
) -> None:
    ledger = running_ledger
    wpc = await authz.publish_wpc(ledger, authz.WPC | {"purpose": "authorize"})
    job_a, job_b = await authz.running_job(ledger, wpc), await authz.running_job(ledger, wpc)
    authorize = authz.service(ledger)
    await authorize.start()
    try:
        allowed = await authorize.decide(authz.request(job_a))
        assert allowed.allowed, allowed
        # a token captured from job A, replayed for job B
        replay = await authorize.decide(authz.request(job_b, token=job_a.token))
        assert replay.reason_code is ReasonCode.JOB_BINDING_MISMATCH
        # policy drift: a token for job A pinned to WPC A2 while the job runs under A
        drifted = await authz.publish_wpc(ledger, authz.WPC | {"purpose": "drifted"})
        drift_token, _, _ = await authz.issue(ledger, job_a.job_id, drifted)
        drift = await authz.decide_until(
            lambda: authorize.decide(authz.request(job_a, token=drift_token)),
            lambda d: d.reason_code is not ReasonCode.TOKEN_UNKNOWN,
        )
        assert drift.reason_code is ReasonCode.POLICY_PIN_MISMATCH
        assert drift.policy_hash_b64u == wpc
        # revoke A's token: A is denied from the next decisions on, B keeps working
        operator = ledger.keys[Role.OPERATOR]
        body = {"jti": job_a.jti, "reason": "leaked"}
        verdict = await ledger.publish(operator, "token.revoked", f"token:{job_a.jti}", body)
        assert verdict["status"] == "committed"
        revoked = await authz.decide_until(
            lambda: authorize.decide(authz.request(job_a)), lambda d: not d.allowed
        )
        assert revoked.reason_code is ReasonCode.TOKEN_REVOKED
        still = await authorize.decide(authz.request(job_b))
        assert still.allowed, still
        # a model call the WPC does not allow
        model = await authorize.decide(authz.request(job_b, Action.for_model("openai", "gpt")))
        assert model.reason_code is ReasonCode.MODEL_NOT_ALLOWED
    finally:
        await authorize.stop()
    counters = authorize.counters
    assert counters.failed == 0 and counters.recorded == counters.made
    decisions = [allowed, replay, drift, revoked, still, model]
    rows = await authz.recorded_decisions(ledger, [d.decision_id for d in decisions])
    assert {i: rows[i]["reason_code"] for i in rows} == {
        d.decision_id: d.reason_code.value for d in decisions
    }
    assert rows[replay.decision_id]["token_jti"] == job_a.jti
    assert rows[allowed.decision_id]["allowed"] is True
    assert rows[still.decision_id]["signer_did"] == ledger.keys[Role.AUTHORIZER].did
    conn = await ledger.connect()
    try:
        types = await conn.fetch(
            "SELECT event_type, stream FROM events WHERE event_id = ANY($1::uuid[])",
            [d.decision_id for d in decisions],
        )
    finally:
        await conn.close()
    assert sorted(t["event_type"] for t in types) == sorted(d.event_type for d in decisions)
    assert {t["stream"] for t in types} == {f"job:{job_a.job_id}", f"job:{job_b.job_id}"}


async def test_a_service_whose_decisions_the_ledger_would_refuse_allows_nothing(
    running_ledger: LedgerHarness, tmp_path: Path
) -> None:
    """An allow signed by a key the ledger does not accept would be quarantined, and
    the call would run without its trace: the service denies with the ledger's code."""
    ledger = running_ledger
    wpc = await authz.publish_wpc(ledger, authz.WPC | {"purpose": "unregistered"})
    job = await authz.running_job(ledger, wpc)
    key = KeyPair.generate("authorize-unregistered")
    authorize = authz.service(ledger, key=key)
    await authorize.start()
    try:
        refused = await authorize.decide(first := authz.request(job))
        assert refused.reason_code is ReasonCode.UNKNOWN_SIGNER, refused
        assert key.did in refused.detail and "--role authorizer" in refused.detail
        assert authorize.status()["recorder"]["reason_code"] == "UNKNOWN_SIGNER"
        # registered with a role that may not record decisions: still nothing allowed
        admin = ledger.admin
        body = {"did": key.did, "name": "authorize-unregistered", "roles": ["operator"]}
        verdict = await ledger.publish(admin, "key.registered", f"key:{key.did}", body)
        assert verdict["status"] == "committed", verdict
        wrong_role = await authz.decide_until(
            lambda: authorize.decide(authz.request(job)),
            lambda d: d.reason_code is not ReasonCode.UNKNOWN_SIGNER,
        )
        assert wrong_role.reason_code is ReasonCode.ROLE_NOT_ALLOWED, wrong_role
        # a key the ledger accepts: the same nonce was never used, and is allowed now
        authorize_b = authz.service(ledger)
        await authorize_b.start()
        try:
            allowed = await authorize_b.decide(first)
        finally:
            await authorize_b.stop()
        assert allowed.allowed, allowed
    finally:
        await authorize.stop()
    conn = await ledger.connect()
    try:
        sql = "SELECT reason_code FROM quarantine WHERE event_id = $1"
        rows = await fetch_until(conn, sql, refused.decision_id, count=1, timeout=60)
    finally:
        await conn.close()
    # by the time the processor reads it, the key may be registered (with its role)
    assert [row["reason_code"] for row in rows] in (["UNKNOWN_SIGNER"], ["ROLE_NOT_ALLOWED"])

    # the command alike: a deny naming the key, and no claim that it is recorded
    token_file = tmp_path / "cst.txt"
    token_file.write_text(job.token)
    stranger = KeyPair.generate("stranger")
    save_key(stranger, tmp_path / "stranger.key")
    result = run_cli(
        ledger.env,
        *("authorize", "--token", str(token_file), "--job", job.job_id, "--tool", "read"),
        *("--nonce", "cli-1", "--key", str(tmp_path / "stranger.key"), "--json"),
    )
    assert result.returncode == 1, result.stdout + result.stderr
    answer = json.loads(result.stdout)
    assert answer["reason_code"] == "UNKNOWN_SIGNER" and answer["recorded"] is False
    assert stranger.did in answer["detail"]
