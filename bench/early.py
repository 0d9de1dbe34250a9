"""Halt (and token revocation) → first deny at a running authorize service (ADR 0025).

A fresh ledger with one processor and ``2 × trials`` running jobs, each with
two tokens. A running :class:`AuthorizeService` (control lane followed) asks
about one job in a loop; the clock starts before the signed ``agent.halted``
(or ``token.revoked``) is sent to ``<prefix>.control`` and stops at the first
denial. p50 and p99 over ``trials``, idle and with ``backlog`` ordinary events
(policy attestations) queued on the ingress lane just before the trials. The
baseline is the same service's in-process decision (``decide_call`` on its
view), measured in the same run. Target: p99 ≤ 250 ms.

Usage: python -m bench.early [--trials 100] [--backlog 200000]
       (on the servers of CLAW_LEDGER_KAFKA / CLAW_LEDGER_DATABASE_URL)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from dataclasses import replace
from typing import Any

import asyncpg

from bench.ledger import (
    BenchLedger,
    bulk_producer,
    fresh_settings,
    ingress_producer,
    until_committed,
)
from bench.workload import approved_run
from claw_ledger.authorizing import AuthorizeConfig, AuthorizeService
from claw_ledger.config import Settings
from claw_ledger.topics import topic_names
from ledger.authorize import Action, CallRequest, decide_call
from ledger.crypto import KeyPair
from ledger.errors import ReasonCode
from ledger.events import NewEvent, sign_event_bytes
from ledger.roles import Role
from ledger.tokens import build_claims, issue_token
from ledger.wpc import policy_hash_b64u, sign_wpc
from producers.sdk import LedgerProducer, sign_many

__all__ = ["BACKLOG_BODY", "early_rows", "measure"]

TARGET_MS = 250.0
_WPC: dict[str, Any] = {"wpc_version": "1", "tools": {"allow": ["read"]}}
_READ = Action.for_tool("read")
#: the body of each backlog event: an ordinary event, on the ingress lane
BACKLOG_BODY: dict[str, Any] = {
    "ok": True,
    "policy_hash": None,
    "workspace_hash": "w",
    "findings_hash": "f",
    "attestation_hash": "a",
    "checked_at": "2026-01-01T00:00:00Z",
    "policy_path": "p",
    "findings_count": 0,
}


class _Ledger:
    """A bench ledger with every role's key and ``jobs`` running jobs of two tokens each."""

    def __init__(self, bench: BenchLedger, keys: dict[Role, KeyPair]) -> None:
        self.bench = bench
        self.keys = keys
        #: per job: (job id, token for the revocation trial, its jti, token for the halt trial)
        self.jobs: list[tuple[str, str, str, str]] = []

    @property
    def settings(self) -> Settings:
        return self.bench.settings


async def _new_ledger(base: Settings, jobs: int, partitions: int) -> _Ledger:
    keys = {role: KeyPair.generate(role.value) for role in Role}
    name = f"bench_early_{uuid.uuid4().hex[:8]}"
    settings = await fresh_settings(base, name, partitions, trust_root=keys[Role.ADMIN])
    bench = BenchLedger(settings, keys[Role.OPERATOR], [])
    bench.start_processors(1)
    ledger = _Ledger(bench, keys)
    admin = keys[Role.ADMIN]
    await _publish_phase(
        ledger,
        admin,
        [NewEvent("key.registered", f"key:{admin.did}", _key_body(Role.ADMIN, admin))],
    )
    await _publish_phase(
        ledger,
        admin,
        [
            NewEvent("key.registered", f"key:{k.did}", _key_body(r, k))
            for r, k in keys.items()
            if r is not Role.ADMIN
        ],
    )
    policy = keys[Role.POLICY_ADMIN]
    wpc = policy_hash_b64u(_WPC)
    envelope = sign_wpc(_WPC, policy).to_bytes().decode()
    body = {"policy_hash_b64u": wpc, "wpc_envelope_json": envelope}
    await _publish_phase(ledger, policy, [NewEvent("policy.published", f"policy:{wpc}", body)])
    issued: list[NewEvent] = []
    approvals: list[NewEvent] = []
    starts: list[NewEvent] = []
    issuer, runtime = keys[Role.ISSUER], keys[Role.RUNTIME]
    for n in range(jobs):
        job_id = f"job-early-{n}"
        tokens = [
            issue_token(
                build_claims(
                    sub=f"agent:{job_id}",
                    aud="clawproxy",
                    scope=["tools:read"],
                    ttl_seconds=3600,
                    policy_hash_b64u=wpc,
                    mission_id=job_id,
                ),
                issuer,
            )
            for _ in range(2)
        ]
        for token in tokens:
            issued.append(
                NewEvent("token.issued", f"token:{token.jti}", token.event_body(issuer.did))
            )
        approved, started = approved_run(job_id, wpc, tokens[0], keys[Role.APPROVER])
        approvals.append(NewEvent("run.manifest_approved", f"job:{job_id}", approved))
        starts.append(NewEvent("run.started", f"job:{job_id}", started))
        ledger.jobs.append((job_id, tokens[0].token, tokens[0].jti, tokens[1].token))
    await _publish_phase(ledger, issuer, issued)
    await _publish_phase(ledger, runtime, approvals)
    await _publish_phase(ledger, runtime, starts)
    return ledger


def _key_body(role: Role, key: KeyPair) -> dict[str, Any]:
    return {"did": key.did, "name": role.value, "roles": [role.value]}


async def _publish_phase(ledger: _Ledger, key: KeyPair, events: list[NewEvent]) -> None:
    """Publish ``events`` and wait until all are committed (a phase needs the one before)."""
    assert ledger.settings.database_url
    async with ingress_producer(ledger.settings) as producer:
        ids = [p.event_id for p in await producer.publish_many(key, events)]
    conn = await asyncpg.connect(ledger.settings.database_url)

    async def committed() -> int:
        done = await conn.fetchval(
            "SELECT count(*) FROM events WHERE event_id = ANY($1::uuid[])", ids
        )
        refused = await conn.fetch(
            "SELECT reason_code, detail FROM quarantine WHERE event_id = ANY($1::text[])", ids
        )
        if refused:
            raise RuntimeError(f"setup event refused: {dict(refused[0])}")
        return int(done)

    try:
        await until_committed(committed, len(ids), timeout=300, every=0.1, what="setup events")
    finally:
        await conn.close()


async def _queue_backlog(ledger: _Ledger, count: int) -> None:
    runtime = ledger.keys[Role.RUNTIME]
    async with bulk_producer(ledger.settings) as producer:
        for start in range(0, count, 20_000):
            events = (
                NewEvent("policy.attested", f"openclaw-policy:w{i % 256}", BACKLOG_BODY)
                for i in range(start, min(count, start + 20_000))
            )
            await producer.send_raw_many(sign_many(runtime, events))


async def _first_deny_ms(
    service: AuthorizeService,
    control: LedgerProducer,
    request: CallRequest,
    signed: tuple[str, bytes],
    stream: str,
) -> float:
    """Publish the signed control event; ms until the service first denies ``request``."""
    event_id, raw = signed
    started = time.perf_counter()
    await control.send_raw(raw, stream, event_id)
    while True:
        decision = await service.decide(replace(request, nonce=uuid.uuid4().hex))
        if not decision.allowed:
            elapsed = (time.perf_counter() - started) * 1000
            # denied by this event: seen on the control lane, or already committed (a
            # committed token revocation carries no halt state, only its reason code)
            committed = decision.seen_event_id is None and decision.reason_code in (
                ReasonCode.AGENT_HALTED,
                ReasonCode.TOKEN_REVOKED,
            )
            assert decision.seen_event_id == event_id or committed, decision
            return elapsed
        await asyncio.sleep(0.001)


def _summary(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    return {
        "p50": statistics.median(samples),
        "p99": samples[min(len(samples) - 1, int(len(samples) * 0.99))],
    }


async def measure(base: Settings, trials: int = 100, backlog: int = 200_000) -> dict[str, Any]:
    """The four series (halt/revocation × idle/backlog) and the in-process baseline."""
    ledger = await _new_ledger(base, 2 * trials, base.partitions)
    topics = topic_names(ledger.settings.topic_prefix)
    assert ledger.settings.database_url and ledger.settings.kafka_bootstrap
    service = AuthorizeService(
        AuthorizeConfig(
            database_url=ledger.settings.database_url,
            kafka_bootstrap=ledger.settings.kafka_bootstrap,
            ingress_topic=topics.ingress,
            control_topic=topics.control,
            poll_interval=0.1,
        ),
        ledger.keys[Role.AUTHORIZER],
    )
    figures: dict[str, Any] = {"trials": trials, "backlog": backlog}
    await service.start()
    try:
        operator = ledger.keys[Role.OPERATOR]
        async with LedgerProducer(ledger.settings.kafka_bootstrap, topics.control) as control:
            for phase, jobs in (("idle", ledger.jobs[:trials]), ("backlog", ledger.jobs[trials:])):
                if phase == "backlog" and backlog:
                    await _queue_backlog(ledger, backlog)
                revocations, halts = [], []
                for job_id, token, jti, _ in jobs:
                    signed = sign_event_bytes(
                        operator, "token.revoked", f"token:{jti}", {"jti": jti, "reason": "b"}
                    )
                    request = CallRequest(token, job_id, _READ, "n")
                    ms = await _first_deny_ms(service, control, request, signed, f"token:{jti}")
                    revocations.append(ms)
                for job_id, _, _, token in jobs:
                    target = f"job:{job_id}"
                    body = {"target": target, "reason": "bench"}
                    signed = sign_event_bytes(operator, "agent.halted", f"halt:{target}", body)
                    request = CallRequest(token, job_id, _READ, "n")
                    ms = await _first_deny_ms(service, control, request, signed, f"halt:{target}")
                    halts.append(ms)
                figures[f"halt_{phase}_ms"] = _summary(halts)
                figures[f"revocation_{phase}_ms"] = _summary(revocations)
            figures["backlog_committed_at_end"] = await _committed_attestations(ledger)
        view = service.view
        _, token, _, _ = ledger.jobs[-1]
        request = CallRequest(token, ledger.jobs[-1][0], _READ, "n")
        samples = []
        for _ in range(2000):
            start = time.perf_counter_ns()
            decide_call(view, request, time.time(), service.config.settings)
            samples.append((time.perf_counter_ns() - start) / 1000)
        figures["decide_in_process_us"] = _summary(samples)
    finally:
        await service.stop()
        ledger.bench.stop_processors()
    return figures


async def _committed_attestations(ledger: _Ledger) -> int:
    assert ledger.settings.database_url
    conn = await asyncpg.connect(ledger.settings.database_url)
    try:
        return int(
            await conn.fetchval("SELECT count(*) FROM events WHERE event_type = 'policy.attested'")
        )
    finally:
        await conn.close()


def early_rows(figures: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """The bench table rows: (measure, result, baseline, target, verdict)."""
    base = figures["decide_in_process_us"]
    baseline = f"in-process decision p50 {base['p50']:.0f} µs / p99 {base['p99']:.0f} µs"
    rows = []
    for kind, what in (("halt", "halt"), ("revocation", "token revocation")):
        for phase in ("idle", "backlog"):
            s = figures[f"{kind}_{phase}_ms"]
            ahead = (
                "idle"
                if phase == "idle"
                else f"{figures['backlog']:,} events queued ahead on ingress"
            )
            rows.append(
                (
                    f"{what} → first deny at a running authorize service, {ahead}"
                    f" ({figures['trials']} trials)",
                    f"p50 {s['p50']:.0f} ms / p99 {s['p99']:.0f} ms",
                    baseline,
                    f"p99 ≤ {TARGET_MS:.0f} ms",
                    "met" if s["p99"] <= TARGET_MS else "NOT met",
                )
            )
    return rows


def main() -> None:
    from claw_ledger.config import load_settings

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--backlog", type=int, default=200_000)
    args = parser.parse_args()
    figures = asyncio.run(measure(load_settings(), args.trials, args.backlog))
    print(json.dumps(figures, indent=2))
    for row in early_rows(figures):
        print(" | ".join(row))


if __name__ == "__main__":
    main()
