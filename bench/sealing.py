"""Sealed proof bundles: a synthetic run of N model calls, sealed and verified offline.

:func:`synthetic_run` signs a whole run's events as the ledger would hold them
(WPC, token, URM, start, receipts, authorize decisions, optionally a halt with
calls denied after it, completion), gives each its leaf in one log, and returns
what the bundler hands :func:`ledger.sealed_bundles.build_sealed_bundle`. The
tests use it as their fixture; :func:`measure` times build + verify of a
10,000-receipt bundle beside the same run's plain clawsig bundle.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ledger.bundles import build_job_bundle
from ledger.canonical import parse_json_strict
from ledger.chain import chain_hash
from ledger.checkpoint import NoteSigner
from ledger.crypto import KeyPair
from ledger.encoding import sha256_b64u
from ledger.envelope import sign_envelope
from ledger.events import EVENT_ENVELOPE_TYPE
from ledger.log_proofs import MemoryProofSource, SignedCheckpoint
from ledger.receipts import build_receipt_payload, sign_receipt
from ledger.run_facts import run_facts
from ledger.sealed_bundles import LoggedEvent, SealedBundle, build_sealed_bundle
from ledger.tokens import token_scope_hash_b64u
from ledger.urm import urm_hash_b64u
from ledger.wpc import policy_hash_b64u, sign_wpc

__all__ = ["ORIGIN", "SyntheticRun", "measure", "measure_in_fresh_process", "synthetic_run"]

ORIGIN = "claw-ledger.example/bench"
WPC: dict[str, Any] = {
    "wpc_version": "1",
    "issuer": "security-team",
    "runtime": {"baseline": "OpenClaw", "sandbox_mode": "all", "allow_elevated": False},
    "tools": {"allow": ["read", "http"], "deny": ["docker_socket"]},
    "validation": {"fail_closed_on_missing_wpc": True, "fail_closed_on_hash_mismatch": True},
}
_T0 = 1_770_854_400


def _ts(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(_T0 + seconds))


def _key(n: int, name: str) -> KeyPair:
    return KeyPair.from_seed(bytes([n]) * 32, name)


@dataclass
class SyntheticRun:
    job_id: str
    keys: dict[str, KeyPair]
    wpc_envelope: dict[str, Any]
    #: (exact envelope text, partition, ledger_seq, event id), in log order
    rows: list[dict[str, Any]] = field(default_factory=list)
    _clock: int = 0

    @property
    def ledger(self) -> KeyPair:
        return self.keys["ledger"]

    def add(self, key: str, event_type: str, stream: str, body: Mapping[str, Any]) -> str:
        signer = self.keys[key]
        self._clock += 1
        event_id = str(uuid.UUID(int=len(self.rows) + 1, version=4))
        payload = {
            "event_type": event_type,
            "event_id": event_id,
            "stream": stream,
            "occurred_at": _ts(self._clock),
            "producer": signer.did,
            "body": dict(body),
        }
        raw = sign_envelope(EVENT_ENVELOPE_TYPE, payload, signer, issued_at=_ts(self._clock))
        envelope = raw.to_bytes()
        seq = len(self.rows) + 1
        previous = self.rows[-1]["chain_hash"] if self.rows else None
        digest = sha256_b64u(envelope)
        self.rows.append(
            {
                "position": seq,
                "kafka_partition": 0,
                "ledger_seq": seq,
                "event_id": event_id,
                "envelope_sha256": digest,
                "chain_hash": chain_hash(previous, 0, seq, event_id, digest),
                "envelope": envelope.decode("utf-8"),
            }
        )
        return event_id

    def source(self) -> MemoryProofSource:
        source = MemoryProofSource(NoteSigner(ORIGIN, self.ledger))
        source.extend(self.rows)
        return source

    def logged(self, source: MemoryProofSource, checkpoint: SignedCheckpoint) -> list[LoggedEvent]:
        import asyncio
        from concurrent.futures import ThreadPoolExecutor

        ids = [r["event_id"] for r in self.rows]
        # a loop of its own, on a thread: make bench calls this from its running loop
        with ThreadPoolExecutor(1) as pool:
            proofs = pool.submit(asyncio.run, source.prove(ids, checkpoint)).result()
        return [LoggedEvent(r["envelope"], proofs[r["event_id"]]) for r in self.rows]

    def seal(self, *, signer: KeyPair | None = None, trigger: str = "test") -> SealedBundle:
        source = self.source()
        checkpoint = source.sign()
        return build_sealed_bundle(
            self.job_id,
            self.logged(source, checkpoint),
            checkpoint,
            signer or self.ledger,
            trigger=trigger,
            sealed_at=_ts(10_000_000),
        )


def synthetic_run(
    receipts: int = 2,
    *,
    halt: bool = True,
    denied_after_halt: int = 2,
    unreceipted: int = 0,
    complete: bool = False,
    job_id: str = "job-sealed-1",
) -> SyntheticRun:
    """A run with ``receipts`` model calls, each authorized and receipted; then a halt
    of ``job:<id>`` and ``denied_after_halt`` refused calls; then, if asked, completion.
    ``unreceipted`` more model calls are authorized without a receipt (a broken run)."""
    names = ("policy-admin", "issuer", "runtime", "gateway", "authorizer", "operator", "ledger")
    keys = {name: _key(41 + i, name) for i, name in enumerate(names)}
    wpc_envelope = sign_wpc(WPC, keys["policy-admin"], issued_at=_ts(0)).to_dict()
    wpc = policy_hash_b64u(WPC)
    run = SyntheticRun(job_id, keys, wpc_envelope)
    run.add(
        "policy-admin",
        "policy.published",
        f"policy:{wpc}",
        {"policy_hash_b64u": wpc, "wpc_envelope_json": raw_text(wpc_envelope)},
    )
    claims = {
        "sub": "agent:alpha",
        "aud": ["clawproxy"],
        "scope": ["proxy:call:anthropic"],
        "policy_hash_b64u": wpc,
        "mission_id": job_id,
    }
    scope_hash = token_scope_hash_b64u(claims)
    jti = f"jti-{job_id}"
    run.add(
        "issuer",
        "token.issued",
        f"token:{jti}",
        {
            "jti": jti,
            **{k: claims[k] for k in ("sub", "aud", "scope")},
            "iat": _T0,
            "exp": _T0 + 3600,
            "kid": keys["issuer"].kid,
            "issuer_did": keys["issuer"].did,
            "token_scope_hash_b64u": scope_hash,
            "token_sha256_b64u": sha256_b64u(b"the token itself, never in a bundle"),
            "policy_hash_b64u": wpc,
            "mission_id": job_id,
        },
    )
    urm = _urm(job_id, wpc, scope_hash)
    urm_hash = urm_hash_b64u(urm)
    run.add(
        "runtime",
        "run.manifest_approved",
        f"job:{job_id}",
        {"job_id": job_id, "urm_hash_b64u": urm_hash, "urm": urm, "approvals": []},
    )
    run.add(
        "runtime",
        "run.started",
        f"job:{job_id}",
        {"job_id": job_id, "urm_hash_b64u": urm_hash, "cst_jti": jti},
    )
    started_hash = run_facts(job_id, _payloads(run)).chain[-1]["event_hash_b64u"]
    model = {"kind": "model", "provider": "anthropic", "model": "claude-test"}
    for n in range(receipts):
        run.add("authorizer", "call.authorized", f"job:{job_id}", _decision(job_id, model, n))
        receipt = build_receipt_payload(
            request=f"request {n}".encode(),
            response=f"response {n}".encode(),
            gateway_id="gw-bench",
            provider="anthropic",
            model="claude-test",
            tokens_input=10,
            tokens_output=20,
            latency_ms=5,
            binding={
                "run_id": job_id,
                "event_hash_b64u": started_hash,
                "nonce": f"nonce-{n}",
                "policy_hash": wpc,
                "token_scope_hash_b64u": scope_hash,
            },
            receipt_id=f"rcpt-{n}",
            timestamp=_ts(n),
        )
        envelope = sign_receipt(receipt, keys["gateway"], issued_at=_ts(n)).to_dict()
        body = {"job_id": job_id, "receipt_envelope_json": raw_text(envelope)}
        run.add("gateway", "receipt.recorded", f"job:{job_id}", body)
    for n in range(unreceipted):
        decision = _decision(job_id, model, 5_000_000 + n)
        run.add("authorizer", "call.authorized", f"job:{job_id}", decision)
    if halt:
        target = f"job:{job_id}"
        run.add("operator", "agent.halted", f"halt:{target}", {"target": target, "reason": "stop"})
        for n in range(denied_after_halt):
            decision = _decision(job_id, model, receipts + n)
            decision.update(reason_code="AGENT_HALTED", halt_target=target, halt_state="committed")
            run.add("authorizer", "call.denied", f"job:{job_id}", decision)
    if complete:
        outputs = [{"name": "close_report.pdf", "sha256": "ab" * 32}]
        run.add("runtime", "run.completed", f"job:{job_id}", {"job_id": job_id, "outputs": outputs})
    return run


def raw_text(document: Mapping[str, Any]) -> str:
    from ledger.canonical import compact_json

    return compact_json(document).decode("utf-8")


def _payloads(run: SyntheticRun) -> list[Any]:
    return [parse_json_strict(r["envelope"].encode())["payload"] for r in run.rows]


def _decision(job_id: str, action: Mapping[str, Any], n: int) -> dict[str, Any]:
    return {
        "decision_id": str(uuid.UUID(int=10_000_000 + n, version=4)),
        "job_id": job_id,
        "action": dict(action),
        "token_jti": f"jti-{job_id}",
        "token_scope_hash_b64u": None,
        "policy_hash_b64u": policy_hash_b64u(WPC),
        "halt_target": None,
        "halt_state": None,
        "reason_code": "OK",
        "decided_at": _ts(n),
    }


def _urm(job_id: str, wpc: str, scope_hash: str) -> dict[str, Any]:
    return {
        "urm_version": "1",
        "job": {
            "job_id": job_id,
            "requested_by": "user:alice",
            "approved_by": ["user:lead"],
        },
        "policy": {"wpc_hash_b64u": wpc, "cst_scope_hash": scope_hash, "policy_hash_pinning": True},
        "execution": {
            "agent_runtime": "OpenClaw",
            "tool_profile": "finops-readonly",
            "sandbox_mode": "all",
            "model_routing": "via clawproxy",
        },
        "inputs": [],
        "expected_outputs": [{"name": "close_report.pdf", "sha256": None}],
        "retention": {"proof_bundle_days": 180},
    }


def measure(receipts: int = 10_000) -> dict[str, float]:
    """Seconds to build + verify the sealed bundle of a run of ``receipts`` model calls,
    and, as the baseline, a plain clawsig bundle of the same run (chain and receipts)."""
    from claw_ledger.background import forked
    from ledger.offline_verify import verify_bytes

    run = synthetic_run(receipts, halt=False, complete=True)
    source = run.source()
    checkpoint = source.sign()
    logged = run.logged(source, checkpoint)
    started = time.perf_counter()
    sealed = build_sealed_bundle(
        run.job_id,
        logged,
        checkpoint,
        run.ledger,
        trigger="completed",
        sealed_at=_ts(10_000_000),
    )
    built = time.perf_counter()
    result = verify_bytes(sealed.raw, ledger_key=run.ledger.did, background=forked)
    verified = time.perf_counter()
    assert result.valid, result.to_dict()
    facts = sealed.facts
    job = {"job_id": run.job_id, "event_chain": facts.chain, "urm_hash_b64u": ""}
    plain_receipts = [receipt for _, receipt in facts.receipts]
    base_start = time.perf_counter()
    plain = build_job_bundle(job, plain_receipts, run.keys["runtime"])
    from ledger.bundles import envelope_bytes_document_order

    base_result = verify_bytes(envelope_bytes_document_order(plain))
    base_end = time.perf_counter()
    assert base_result.valid, base_result.to_dict()
    return {
        "receipts": float(receipts),
        "events": float(len(logged)),
        "bytes": float(len(sealed.raw)),
        "build_s": built - started,
        "verify_s": verified - built,
        "baseline_s": base_end - base_start,
    }


def measure_in_fresh_process(receipts: int = 10_000) -> dict[str, float]:
    """:func:`measure` in a new Python process: one with no other thread, as
    ``claw-ledger verify`` runs (``make bench`` shows a spinner, whose thread
    would keep the verifier from forking), and no memory of earlier rows."""
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "bench.sealing", "--receipts", str(receipts)],
        check=True,
        capture_output=True,
        text=True,
    )
    figures: dict[str, float] = json.loads(done.stdout)
    return figures


def main() -> None:
    import argparse
    import json

    parser = argparse.ArgumentParser(description="build + verify a sealed bundle, as JSON")
    parser.add_argument("--receipts", type=int, default=10_000)
    print(json.dumps(measure(parser.parse_args().receipts)))


if __name__ == "__main__":
    main()
