"""Helpers of the authorize integration tests: a running job on a real ledger,
and an authorize service on it."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bench.workload import WPC as WPC
from claw_ledger.authorizing import AuthorizeConfig, AuthorizeService
from ledger.authorize import Action, AuthorizeSettings, CallRequest, Decision
from ledger.crypto import KeyPair
from ledger.roles import Role
from ledger.tokens import build_claims, issue_token
from ledger.urm import sign_approval, urm_hash_b64u
from ledger.wpc import policy_hash_b64u, sign_wpc
from tests.core._helpers import example_urm
from tests.fixtures_ledger import LedgerHarness, fetch_until

READ = Action.for_tool("read")
WRITE = Action.for_tool("write")
EXEC = Action.for_tool("exec")


@dataclass
class RunningJob:
    job_id: str
    wpc: str
    token: str
    jti: str


async def publish_wpc(ledger: LedgerHarness, document: dict[str, Any]) -> str:
    key = ledger.keys[Role.POLICY_ADMIN]
    digest = policy_hash_b64u(document)
    envelope = sign_wpc(document, key).to_bytes().decode()
    body = {"policy_hash_b64u": digest, "wpc_envelope_json": envelope}
    verdict = await ledger.publish(key, "policy.published", f"policy:{digest}", body)
    assert verdict["status"] == "committed", verdict
    return digest


async def issue(ledger: LedgerHarness, job_id: str, wpc: str, **over: Any) -> tuple[str, str, str]:
    """A token for ``job_id`` pinned to ``wpc``, on the ledger: (token, jti, scope hash)."""
    issuer = ledger.keys[Role.ISSUER]
    claims = build_claims(
        sub=over.pop("sub", f"agent:{job_id}"),
        aud="clawproxy",
        scope=["proxy:call:anthropic", "tools:read"],
        ttl_seconds=3600,
        policy_hash_b64u=wpc,
        mission_id=job_id,
    )
    issued = issue_token(claims, issuer)
    body = issued.event_body(issuer.did)
    verdict = await ledger.publish(issuer, "token.issued", f"token:{issued.jti}", body)
    assert verdict["status"] == "committed", verdict
    return issued.token, issued.jti, issued.token_scope_hash_b64u


async def running_job(ledger: LedgerHarness, wpc: str, job_id: str | None = None) -> RunningJob:
    """A job approved under ``wpc`` and started with a pinned, job-bound token."""
    job_id = job_id or f"job-{uuid.uuid4().hex[:8]}"
    token, jti, scope_hash = await issue(ledger, job_id, wpc)
    urm = example_urm(job_id, wpc, scope_hash)
    digest = urm_hash_b64u(urm)
    approval = sign_approval(digest, ledger.keys[Role.APPROVER])
    runtime = ledger.keys[Role.RUNTIME]
    body = {"job_id": job_id, "urm_hash_b64u": digest, "urm": urm, "approvals": [approval]}
    verdict = await ledger.publish(runtime, "run.manifest_approved", f"job:{job_id}", body)
    assert verdict["status"] == "committed", verdict
    started = {"job_id": job_id, "urm_hash_b64u": digest, "cst_jti": jti}
    verdict = await ledger.publish(runtime, "run.started", f"job:{job_id}", started)
    assert verdict["status"] == "committed", verdict
    return RunningJob(job_id, wpc, token, jti)


def service(
    ledger: LedgerHarness, *, max_staleness: float = 5.0, key: KeyPair | None = None
) -> AuthorizeService:
    assert ledger.settings.database_url and ledger.settings.kafka_bootstrap
    config = AuthorizeConfig(
        database_url=ledger.settings.database_url,
        kafka_bootstrap=ledger.settings.kafka_bootstrap,
        ingress_topic=ledger.topics.ingress,
        settings=AuthorizeSettings(max_staleness_seconds=max_staleness),
        poll_interval=0.1,
    )
    return AuthorizeService(config, key or ledger.keys[Role.AUTHORIZER])


def request(job: RunningJob, action: Action = READ, *, token: str | None = None) -> CallRequest:
    return CallRequest(token or job.token, job.job_id, action, uuid.uuid4().hex)


async def decide_until(
    make: Callable[[], Awaitable[Decision]],
    done: Callable[[Decision], bool],
    timeout: float = 60.0,
) -> Decision:
    """Ask again (a fresh request each time) until ``done``; the last decision."""
    deadline = time.monotonic() + timeout
    while True:
        decision = await make()
        if done(decision) or time.monotonic() > deadline:
            return decision
        await asyncio.sleep(0.1)


async def recorded_decisions(
    ledger: LedgerHarness, ids: list[str], timeout: float = 60
) -> dict[str, Any]:
    """The ``decisions`` rows of ``ids`` once all are committed, by decision id."""
    conn = await ledger.connect()
    try:
        sql = "SELECT * FROM decisions WHERE decision_id = ANY($1::text[])"
        rows = await fetch_until(conn, sql, ids, count=len(ids), timeout=timeout)
        return {r["decision_id"]: dict(r) for r in rows}
    finally:
        await conn.close()
