"""Microbenchmark of policy simulation (ledger/simulate.py) over recorded decisions, no servers.

A ledger is built in memory as the services would have written it: the trust
root and role keys registered, a WPC, ``jobs`` approved and started jobs with
their tokens, and ``n`` recorded
``call.authorized``/``call.denied`` events (reads, writes, denied execs, model
calls) signed by an authorizer key with the SDK's signer. A candidate WPC that
denies ``write`` is then simulated over them (expect + feed + finish), timed
by CPU time of this process:

* ``verified`` (over the first 20,000 decisions by default): every event of
  the ledger, decisions included, goes through the verified replay fold
  (parse, schema, hash, Ed25519, chain), as ``claw-ledger simulate`` does by
  default;
* ``audited``: the decision events are not re-verified (the ledger was
  verified by ``claw-ledger audit``; ``simulate --audited``): only the control
  events are folded, and every decision is still judged by ``decide_call``.

The baseline is PyNaCl's raw verify of the same decision signatures, in the
same run.

Usage: python -m bench.simulate [--decisions 20000]
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.workload import WPC, approved_run
from ledger.crypto import KeyPair
from ledger.encoding import b64u_decode
from ledger.envelope import format_timestamp, signing_bytes
from ledger.events import NewEvent, sign_event_bytes, sign_events_bytes
from ledger.replay import StoredEvent
from ledger.roles import Role
from ledger.simulate import Simulation
from ledger.tokens import build_claims, issue_token
from ledger.wpc import policy_hash_b64u, sign_wpc, validate_wpc

__all__ = ["RecordedLedger", "measure", "recorded_ledger"]

_CANDIDATE: dict[str, Any] = WPC | {"tools": {"allow": ["read"], "deny": ["exec", "write"]}}
#: per 100 decisions: the action, and whether the job's WPC allowed it
_MIX: list[tuple[dict[str, str], bool]] = (
    [({"kind": "tool", "tool": "read"}, True)] * 70
    + [({"kind": "tool", "tool": "write"}, True)] * 1
    + [({"kind": "tool", "tool": "exec"}, False)] * 9
    + [({"kind": "model", "provider": "anthropic", "model": "claude"}, True)] * 20
)


def _at(base: datetime, ms: int) -> str:
    return format_timestamp(base + timedelta(milliseconds=ms))


class _Builder:
    def __init__(self, base: datetime) -> None:
        self.base = base
        self.ms = 0
        self.events: list[StoredEvent] = []

    def add(self, key: KeyPair, event_type: str, stream: str, body: Any) -> None:
        self.ms += 1
        occurred = _at(self.base, self.ms)
        _, raw = sign_event_bytes(key, event_type, stream, body, occurred_at=occurred)
        recorded = self.base + timedelta(milliseconds=self.ms, microseconds=500)
        self.events.append(StoredEvent(raw, recorded_at=recorded))


@dataclass(frozen=True)
class RecordedLedger:
    """A ledger of recorded decisions, built in memory as the services write one."""

    control: list[StoredEvent]
    decisions: list[StoredEvent]
    #: the decisions' bodies, in ``decided_at`` order
    bodies: list[dict[str, Any]]
    keys: dict[Role, KeyPair]
    #: epoch seconds: the first event's time; every token's ``iat`` is ``start + iat_offset_s``
    start: int


def recorded_ledger(
    n: int, jobs: int = 10, *, iat_offset_s: int = 0, ttl_s: int = 3600
) -> RecordedLedger:
    """The keys, a WPC, ``jobs`` running jobs with a token each (``iat`` =
    ``iat_offset_s`` after the ledger's start, ``exp`` = ``iat`` + ``ttl_s``), then
    ``n`` decisions from 60 s after the start, spread over the next 20 minutes."""
    keys = {role: KeyPair.from_seed(bytes([i + 1]) * 32, role.value) for i, role in enumerate(Role)}
    admin = keys[Role.ADMIN]
    start = int(time.time()) - 1800
    base = datetime.fromtimestamp(start, UTC)
    control = _Builder(base)
    for role, key in keys.items():
        body: dict[str, Any] = {"did": key.did, "name": role.value, "roles": [role.value]}
        control.add(admin, "key.registered", f"key:{key.did}", body)
    policy = keys[Role.POLICY_ADMIN]
    wpc = policy_hash_b64u(WPC)
    envelope = sign_wpc(WPC, policy).to_bytes().decode()
    control.add(
        policy,
        "policy.published",
        f"policy:{wpc}",
        {"policy_hash_b64u": wpc, "wpc_envelope_json": envelope},
    )
    issuer, runtime = keys[Role.ISSUER], keys[Role.RUNTIME]
    tokens = []
    for j in range(jobs):
        job_id = f"job-sim-{j}"
        claims = build_claims(
            sub=f"agent:{j}",
            aud="clawproxy",
            scope=["tools:read"],
            ttl_seconds=ttl_s,
            now=start + iat_offset_s,
            policy_hash_b64u=wpc,
            mission_id=job_id,
        )
        token = issue_token(claims, issuer)
        control.add(issuer, "token.issued", f"token:{token.jti}", token.event_body(issuer.did))
        approved, started = approved_run(job_id, wpc, token, keys[Role.APPROVER])
        control.add(runtime, "run.manifest_approved", f"job:{job_id}", approved)
        control.add(runtime, "run.started", f"job:{job_id}", started)
        tokens.append((job_id, token))
    # decisions from 60 s after the start, spread over the next 20 minutes
    first_ms = 60_000
    step_ms = max(1, 1_200_000 // max(1, n))
    bodies: list[dict[str, Any]] = []
    new_events = []
    for i in range(n):
        job_id, token = tokens[i % jobs]
        action, allowed = _MIX[i % len(_MIX)]
        decided = _at(base, first_ms + i * step_ms)
        decision_id = str(uuid.uuid4())
        body = {
            "decision_id": decision_id,
            "job_id": job_id,
            "action": action,
            "token_jti": token.jti,
            "token_scope_hash_b64u": token.token_scope_hash_b64u,
            "policy_hash_b64u": wpc,
            "halt_target": None,
            "halt_state": None,
            "reason_code": "OK" if allowed else "TOOL_NOT_ALLOWED",
            "decided_at": decided,
        }
        bodies.append(body)
        event_type = "call.authorized" if allowed else "call.denied"
        new_events.append(NewEvent(event_type, f"job:{job_id}", body, decision_id, decided))
    authorizer = keys[Role.AUTHORIZER]
    signed = sign_events_bytes(authorizer, new_events)
    decisions = [
        StoredEvent(
            raw,
            recorded_at=datetime.fromisoformat(str(body["decided_at"]).replace("Z", "+00:00"))
            + timedelta(microseconds=500),
        )
        for (_, raw), body in zip(signed, bodies, strict=True)
    ]
    return RecordedLedger(control.events, decisions, bodies, keys, start)


def _simulate(
    events: list[StoredEvent], bodies: list[dict[str, Any]]
) -> tuple[float, dict[str, Any]]:
    started = time.process_time()
    simulation = Simulation(validate_wpc(_CANDIDATE))
    for body in bodies:
        simulation.expect(None, body)
    for stored in events:
        simulation.feed(stored)
    simulation.finish()
    elapsed = time.process_time() - started
    assert simulation.fold.broken is None, simulation.fold.broken
    return elapsed, simulation.summary.to_dict()


def measure(n: int = 20_000, verified_n: int = 20_000) -> dict[str, float]:
    """Decisions simulated per second (CPU time): audited over ``n`` decisions,
    verified over the first ``verified_n`` of them (the fold's cost per event
    does not grow with the ledger: decisions change no state), and the raw
    Ed25519 verify rate of the same decision signatures."""
    ledger = recorded_ledger(n)
    control, decisions, bodies = ledger.control, ledger.decisions, ledger.bodies
    authorizer = ledger.keys[Role.AUTHORIZER]
    audited_s, audited = _simulate(control, bodies)
    assert audited["simulated"] == n and audited["newly_denied"] == n // 100 + (
        1 if n % 100 > 70 else 0
    ), audited
    verified_n = min(n, verified_n)
    head = bodies[:verified_n]
    everything = sorted(
        control + decisions[:verified_n], key=lambda e: e.recorded_at or datetime.min
    )
    verified_s, verified = _simulate(everything, head)
    # the same answers either way: the decision events change no control state
    assert verified == _simulate(control, head)[1], verified
    verify_key = authorizer.signing_key.verify_key
    pairs = []
    for stored in decisions:
        document = json.loads(stored.raw)
        message = signing_bytes(document["payload_hash_b64u"])
        pairs.append((message, b64u_decode(document["signature_b64u"])))
    started = time.process_time()
    for message, signature in pairs:
        verify_key.verify(message, signature)
    raw_s = time.process_time() - started
    return {
        "decisions": float(n),
        "verified_per_s": verified_n / verified_s,
        "audited_per_s": n / audited_s,
        "raw_verify_per_s": n / raw_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=20_000)
    args = parser.parse_args()
    for name, value in measure(args.decisions).items():
        print(f"{name:20} {value:14,.0f}")


if __name__ == "__main__":
    main()
