"""Producer-side signing: the SDK's path against raw Ed25519, on one core, in one run.

The raw baseline is PyNaCl's ``SigningKey.sign`` of a 43-byte message: the
exact size of what a clawsig envelope signs (the payload hash in base64url).
The SDK figures cover everything a service pays per event: build and validate
the event, canonicalise and hash the payload, sign, and produce the wire bytes:
``publish``'s path (:func:`ledger.events.sign_event_bytes`), the bulk
:func:`sign_many`, and the reference ``build_event`` + ``sign_event`` +
``to_bytes``. The loops alternate in short rounds and are timed in thread CPU
time, so a busy minute on a shared machine weighs on each of them alike and
time spent descheduled counts for none.

Usage: python -m bench.signing [events]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from bench.ledger import bulk_producer
from claw_ledger.config import Settings
from ledger.crypto import KeyPair
from ledger.events import build_event, sign_event, sign_event_bytes
from producers.sdk import NewEvent, sign_many

__all__ = ["attested_body", "halt_drafts", "measure", "publish_signing", "signing_rows"]

#: what a runtime signs after each OpenClaw policy check
EVENT_TYPE = "policy.attested"
STREAM = "openclaw-policy:workspace-1"
ROUNDS = 10


def attested_body(n: int) -> dict[str, Any]:
    return {
        "ok": True,
        "policy_hash": "pMa3rY8m1cJ0m3cYqg7zUqX2uFv7yq2bKXW3v6mJb0s",
        "workspace_hash": f"ws{n:041d}",
        "findings_hash": "f1nd1ngsHashXW3v6mJb0spMa3rY8m1cJ0m3cYqg7zU",
        "attestation_hash": f"at{n:041d}",
        "checked_at": "2026-11-30T00:00:00.000Z",
        "policy_path": "/srv/agents/workspace-1/openclaw.policy.json5",
        "findings_count": n % 7,
    }


def _domain_path(key: KeyPair, bodies: list[dict[str, Any]]) -> None:
    # LedgerProducer.sign + to_bytes without a producer: no broker is involved
    for body in bodies:
        event = build_event(EVENT_TYPE, STREAM, body, key)
        sign_event(event, key, issued_at=event.occurred_at).to_bytes()


def _sdk_path(key: KeyPair, bodies: list[dict[str, Any]]) -> None:
    # what LedgerProducer.publish signs
    for body in bodies:
        sign_event_bytes(key, EVENT_TYPE, STREAM, body)


def measure(n: int = 20_000) -> dict[str, float]:
    """Rates per second of raw sign, the SDK's one-event path and :func:`sign_many`.

    ``sdk_ratio`` and ``sign_many_ratio`` are the SDK rates over the raw rate.
    """
    key = KeyPair.generate("bench")
    per_round = max(1, n // ROUNDS)
    message = b"x" * 43
    signing_key = key.signing_key
    bodies = [attested_body(i) for i in range(per_round)]
    drafts = [NewEvent(EVENT_TYPE, STREAM, body) for body in bodies]

    def raw() -> None:
        for _ in range(per_round):
            signing_key.sign(message)

    loops: dict[str, Callable[[], Any]] = {
        "raw_sign": raw,
        "build_sign_to_bytes": lambda: _domain_path(key, bodies),
        "sdk_sign": lambda: _sdk_path(key, bodies),
        "sign_many": lambda: sign_many(key, drafts),
    }
    for loop in loops.values():  # warm: caches, the DID, pydantic's validators
        loop()
    spent = dict.fromkeys(loops, 0.0)
    for _ in range(ROUNDS):
        for name, loop in loops.items():
            started = time.thread_time()
            loop()
            spent[name] += time.thread_time() - started
    done = per_round * ROUNDS
    rates = {f"{name}_per_s": done / seconds for name, seconds in spent.items()}
    rates["build_sign_to_bytes_ratio"] = (
        rates["build_sign_to_bytes_per_s"] / rates["raw_sign_per_s"]
    )
    rates["sdk_ratio"] = rates["sdk_sign_per_s"] / rates["raw_sign_per_s"]
    rates["sign_many_ratio"] = rates["sign_many_per_s"] / rates["raw_sign_per_s"]
    rates["sdk_us_per_event"] = 1e6 / rates["sdk_sign_per_s"]
    return rates


async def publish_signing(
    settings: Settings, key: KeyPair, events: list[NewEvent], chunk: int
) -> dict[str, float]:
    """Publish flat out, signing on the clock with the SDK's bulk path, ``chunk``
    events per call; returns each event's send time: its chunk's, taken before
    the chunk is signed.

    The bulk path is :meth:`LedgerProducer.publish_many`'s own two steps
    (:func:`sign_many`, then :meth:`LedgerProducer.send_raw_many`), sent to the
    ingress topic as :func:`bench.ledger.publish_all` sends the pre-signed
    events, so that both runs measure the same lane."""
    sent: dict[str, float] = {}
    async with bulk_producer(settings) as producer:
        for start in range(0, len(events), chunk):
            now = time.time()
            positions = await producer.send_raw_many(
                sign_many(key, events[start : start + chunk]), topic=producer.topic
            )
            sent.update((position.event_id, now) for position in positions)
    return sent


def halt_drafts(count: int, streams: int = 256) -> list[NewEvent]:
    """The events :func:`sign_halt_events` signs, unsigned."""
    return [
        NewEvent(
            "agent.halted",
            f"halt:job:bench-{i % streams}",
            {"reason": f"bench {i}", "target": f"job:bench-{i % streams}"},
        )
        for i in range(count)
    ]


def signing_rows(n: int = 20_000) -> list[tuple[str, str, str, str, str]]:
    """:func:`measure` as ``make bench`` rows: (measure, result, baseline, target, verdict)."""
    rates = measure(n)
    raw = rates["raw_sign_per_s"]
    rows = [
        (
            "raw PyNaCl Ed25519 sign (43-byte message), one core (thread CPU time)",
            f"{raw:,.0f} /s",
            "",
            "",
            "",
        )
    ]
    for key, name, target in (
        ("sdk_sign", "SDK signing: validate, canonicalise, sign, wire bytes (publish)", 0.5),
        ("sign_many", "SDK bulk signing (sign_many / publish_many)", 0.5),
        ("build_sign_to_bytes", "build_event + sign_event + to_bytes", None),
    ):
        rate = rates[f"{key}_per_s"]
        rows.append(
            (
                f"{name}, policy.attested, one core (thread CPU time)",
                f"{rate:,.0f} /s",
                f"{raw:,.0f} sign/s (ratio {rate / raw:.2f})",
                f"≥ {target} × raw sign" if target else "",
                ("met" if rate / raw >= target else "NOT met") if target else "",
            )
        )
    return rows


if __name__ == "__main__":
    result = measure(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
    for name, value in result.items():
        print(f"{name:22s} {value:12,.2f}")
