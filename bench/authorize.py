"""Microbenchmark of the in-process authorize decision against a raw Ed25519 verify.

The state is built by the real rules (keys, a WPC, a pinned job token, an
approved and started job). ``decide_call`` is timed per call (wall clock, so
that the percentiles mean what a caller waits), for a token seen before (its
signature is remembered by the view) and for a token seen for the first time
(its signature verified), beside a raw PyNaCl verify in the same run.

The shadow figures (ADR 0023) time the same warm call twice, alternately
call by call so that both see the same machine: without any shadow policy, and with
a shadow candidate over every job that disagrees on every call (the decision
judges it and the service's :meth:`Decision.disagreements` is asked too).

Usage: python -m bench.authorize [--calls 20000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from bench.workload import WPC, approved_run
from ledger.authorize import Action, AuthorizeSettings, CallRequest, DecisionView, decide_call
from ledger.crypto import KeyPair, public_key_from_did
from ledger.envelope import sign_envelope
from ledger.events import EVENT_ENVELOPE_TYPE
from ledger.registry import DEFAULT_RULE_SETTINGS
from ledger.roles import Role
from ledger.state import KeyRecord, LedgerState
from ledger.tokens import build_claims, issue_token
from ledger.verify import Accepted, decide, verify_message
from ledger.wpc import policy_hash_b64u, sign_wpc

__all__ = ["measure"]

#: the shadow candidate: denies the read every benchmark call makes
_CANDIDATE: dict[str, Any] = WPC | {"tools": {"allow": ["write"], "deny": ["exec", "read"]}}
_POLICY_ADMIN: KeyPair | None = None


def _submit(state: LedgerState, key: KeyPair, event_type: str, stream: str, body: Any) -> None:
    payload = {
        "event_type": event_type,
        "event_id": str(uuid.uuid4()),
        "stream": stream,
        "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "producer": key.did,
        "body": body,
    }
    verdict = verify_message(sign_envelope(EVENT_ENVELOPE_TYPE, payload, key).to_bytes())
    outcome = decide(state, verdict, None, DEFAULT_RULE_SETTINGS)  # type: ignore[arg-type]
    assert isinstance(outcome, Accepted), outcome


def _world(tokens: int) -> tuple[LedgerState, list[str], str]:
    """A state with a running job and ``tokens`` recorded tokens for it."""
    keys = {role: KeyPair.generate(role.value) for role in Role}
    state = LedgerState(trust_root=keys[Role.ADMIN].did)
    for role, key in keys.items():
        state.keys[key.did] = KeyRecord(key.did, role.value, frozenset({role}), key.did, "-")
    policy = keys[Role.POLICY_ADMIN]
    wpc = policy_hash_b64u(WPC)
    envelope = sign_wpc(WPC, policy).to_bytes().decode()
    _submit(
        state,
        policy,
        "policy.published",
        f"policy:{wpc}",
        {"policy_hash_b64u": wpc, "wpc_envelope_json": envelope},
    )
    issued = []
    for _ in range(tokens):
        claims = build_claims(
            sub="agent:bench",
            aud="clawproxy",
            scope=["tools:read"],
            ttl_seconds=3600,
            policy_hash_b64u=wpc,
            mission_id="job-bench",
        )
        token = issue_token(claims, keys[Role.ISSUER])
        body = token.event_body(keys[Role.ISSUER].did)
        _submit(state, keys[Role.ISSUER], "token.issued", f"token:{token.jti}", body)
        issued.append(token)
    approved, started = approved_run("job-bench", wpc, issued[0], keys[Role.APPROVER])
    runtime = keys[Role.RUNTIME]
    _submit(state, runtime, "run.manifest_approved", "job:job-bench", approved)
    _submit(state, runtime, "run.started", "job:job-bench", started)
    candidate = policy_hash_b64u(_CANDIDATE)
    envelope = sign_wpc(_CANDIDATE, policy).to_bytes().decode()
    body = {"policy_hash_b64u": candidate, "wpc_envelope_json": envelope}
    _submit(state, policy, "policy.published", f"policy:{candidate}", body)
    global _POLICY_ADMIN
    _POLICY_ADMIN = policy
    return state, [t.token for t in issued], keys[Role.ISSUER].did


def _shadowed(state: LedgerState) -> LedgerState:
    """The same state, the candidate in shadow over every job."""
    shadowed = replace(state, shadows={})
    body = {"policy_hash_b64u": policy_hash_b64u(_CANDIDATE), "scope": "*"}
    assert _POLICY_ADMIN is not None
    _submit(shadowed, _POLICY_ADMIN, "policy.shadowed", "shadow:*", body)
    return shadowed


def _samples_us(n: int, call: Callable[[int], object], offset: int = 0) -> list[float]:
    samples = []
    clock = time.perf_counter_ns
    for i in range(offset, offset + n):
        start = clock()
        call(i)
        samples.append((clock() - start) / 1000)
    return samples


def _percentiles_us(n: int, call: Callable[[int], object]) -> dict[str, float]:
    return _summary(_samples_us(n, call))


def _summary(samples: list[float]) -> dict[str, float]:
    n = len(samples)
    samples.sort()
    return {
        "p50": statistics.median(samples),
        "p99": samples[min(n - 1, int(n * 0.99))],
    }


def measure(calls: int = 20_000) -> dict[str, float]:
    distinct = max(50, min(2000, calls // 10))
    state, tokens, issuer = _world(distinct)
    settings = AuthorizeSettings()
    action = Action.for_tool("read")
    requests = [CallRequest(t, "job-bench", action, "n") for t in tokens]
    view = DecisionView.of(state, synced_at=time.time() + 3600)
    now = time.time()
    for request in requests:  # every token seen once: the view remembers its signature
        assert decide_call(view, request, now, settings).allowed
    warm = _percentiles_us(
        calls, lambda i: decide_call(view, requests[i % distinct], now, settings)
    )

    def cold(i: int) -> object:
        fresh = DecisionView(state, view.synced_at, kids=view.kids, _policies=view._policies)
        return decide_call(fresh, requests[i % distinct], now, settings)

    first_sight = _percentiles_us(max(1, calls // 4), cold)

    shadow_view = DecisionView.of(_shadowed(state), synced_at=view.synced_at)
    for request in requests:
        assert decide_call(shadow_view, request, now, settings).disagreements()

    def shadowed(i: int) -> object:
        return decide_call(shadow_view, requests[i % distinct], now, settings).disagreements()

    def plain(i: int) -> object:
        return decide_call(view, requests[i % distinct], now, settings)

    # call by call, alternately: a pause of the machine hits both series alike
    plain_samples: list[float] = []
    shadow_samples: list[float] = []
    clock = time.perf_counter_ns
    for i in range(calls):
        start = clock()
        plain(i)
        middle = clock()
        shadowed(i)
        end = clock()
        plain_samples.append((middle - start) / 1000)
        shadow_samples.append((end - middle) / 1000)
    no_shadow = _summary(plain_samples)
    with_shadow = _summary(shadow_samples)
    verify_key = public_key_from_did(issuer)
    signed = [t.rsplit(".", 1) for t in tokens]
    from ledger.encoding import b64u_decode

    parts = [(head.encode(), b64u_decode(sig)) for head, sig in signed]
    raw = _percentiles_us(
        calls, lambda i: verify_key.verify(parts[i % distinct][0], parts[i % distinct][1])
    )
    return {
        "decide_warm_p50_us": warm["p50"],
        "decide_warm_p99_us": warm["p99"],
        "decide_first_sight_p50_us": first_sight["p50"],
        "decide_first_sight_p99_us": first_sight["p99"],
        "raw_verify_p50_us": raw["p50"],
        "raw_verify_p99_us": raw["p99"],
        "no_shadow_p50_us": no_shadow["p50"],
        "no_shadow_p99_us": no_shadow["p99"],
        "shadow_p50_us": with_shadow["p50"],
        "shadow_p99_us": with_shadow["p99"],
        "shadow_p99_overhead": with_shadow["p99"] / no_shadow["p99"] - 1,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    print(json.dumps(measure(args.calls), indent=2))


if __name__ == "__main__":
    main()
