"""The verified replay (ledger/replay.py, claw_ledger/verify_pool.py) without a
database: rates over ``n`` events beside the raw verify rate of the same run,
and the fold's resident memory over a long stream.

The events are signed off the clock in worker processes and kept in a
temporary file, one envelope a line, which every measurement streams from: a
million envelopes in a Python list would be most of the memory measured.
Event mix: three key registrations (the trust root, an operator, a policy admin)
and the WPC that resumes name, then
``agent.halted`` / ``agent.resumed`` pairs over 256 jobs, so that the state the
rules keep stays small and any growth of the process is the fold's own.

Rates are wall-clock (the parallel rebuild spreads over processes); beside
each, the CPU seconds of this process per event.

Usage: python -m bench.replay [--events 20000] [--rss-events 0] [--jobs N]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import psutil

from bench.workload import envelope_jcs
from claw_ledger.verify_pool import VerifyPool, default_jobs
from ledger.crypto import KeyPair
from ledger.encoding import b64u_decode
from ledger.envelope import format_timestamp, signing_bytes
from ledger.events import build_event, sign_event
from ledger.replay import RecentEventIds, Replay, StoredEvent
from ledger.verify import verify_message
from ledger.wpc import policy_hash_b64u, sign_wpc

__all__ = ["event_file", "measure", "measure_rss"]

ADMIN_SEED = bytes([1]) * 32
OPERATOR_SEED = bytes([6]) * 32
POLICY_ADMIN_SEED = bytes([2]) * 32
_SEEDS = (ADMIN_SEED, OPERATOR_SEED, POLICY_ADMIN_SEED)
#: the WPC every resume re-authorises under (a lift names an active WPC)
WPC = {"wpc_version": "1", "purpose": "bench"}
WPC_HASH = policy_hash_b64u(WPC)
#: jobs the halts and resumes go round: the rules' state stays this small
TARGETS = 256


def _registrations() -> list[bytes]:
    """The trust root, an operator and a policy admin, and the WPC resumes name."""
    admin = KeyPair.from_seed(ADMIN_SEED, "admin")
    operator = KeyPair.from_seed(OPERATOR_SEED, "operator")
    policy_admin = KeyPair.from_seed(POLICY_ADMIN_SEED, "policy-admin")
    keys = (
        (admin.did, "admin", "admin"),
        (operator.did, "op", "operator"),
        (policy_admin.did, "pa", "policy-admin"),
    )
    raws = [
        sign_event(
            build_event(
                "key.registered", f"key:{did}", {"did": did, "name": name, "roles": [role]}, admin
            ),
            admin,
        ).to_bytes()
        for did, name, role in keys
    ]
    published = {
        "policy_hash_b64u": WPC_HASH,
        "wpc_envelope_json": sign_wpc(WPC, policy_admin).to_bytes().decode(),
    }
    event = build_event("policy.published", f"policy:{WPC_HASH}", published, policy_admin)
    return [*raws, sign_event(event, policy_admin).to_bytes()]


def _halts(start: int, count: int) -> list[bytes]:
    """Envelopes byte for byte as ``sign_event`` makes them (JCS throughout)."""
    key = KeyPair.from_seed(OPERATOR_SEED)
    occurred_at = format_timestamp()
    out = []
    for i in range(start, start + count):
        target = f"job:bench-{(i // 2) % TARGETS}"
        body = {"reason": f"bench {i}", "target": target}
        if i % 2:
            body["policy_hash_b64u"] = WPC_HASH
        event_type = "agent.halted" if i % 2 == 0 else "agent.resumed"
        out.append(
            envelope_jcs(
                key,
                event_type,
                f"halt:{target}",
                body,
                event_id=new_uuid(i),
                occurred_at=occurred_at,
            )
        )
    return out


def new_uuid(i: int) -> str:
    """A distinct version-4-shaped id per event number (a run is reproducible)."""
    text = f"{os.getpid():08x}{i:024x}"[-32:]
    return f"{text[:8]}-{text[8:12]}-4{text[13:16]}-8{text[17:20]}-{text[20:]}"


@contextmanager
def event_file(n: int, workers: int | None = None) -> Iterator[Path]:
    """``n`` signed events, one JCS envelope a line, in a temporary file."""
    workers = workers or default_jobs()
    with tempfile.TemporaryDirectory(prefix="claw-bench-replay-") as directory:
        path = Path(directory) / "events.jsonl"
        with path.open("wb") as out, ProcessPoolExecutor(workers) as pool:
            registrations = _registrations()
            for raw in registrations:
                out.write(raw + b"\n")
            count = max(0, n - len(registrations))
            size = 20_000
            for chunk in pool.map(
                _halts,
                range(0, count, size),
                [min(size, count - start) for start in range(0, count, size)],
            ):
                out.writelines(raw + b"\n" for raw in chunk)
        yield path


def _stream(path: Path) -> Iterator[StoredEvent]:
    with path.open("rb") as lines:
        for line in lines:
            yield StoredEvent(line.rstrip(b"\n"))


def _raw(stored: StoredEvent) -> bytes:
    return stored.raw


def rebuild(path: Path, *, jobs: int, signatures: bool, sample: int = 0) -> dict[str, float]:
    """One replay of the file: wall seconds, this process's CPU seconds, events,
    and (``sample`` > 0) the RSS after the first tenth and its peak after."""
    process = psutil.Process()
    fold = Replay(seen=RecentEventIds())
    rss_warm = rss_peak = 0.0
    wall, cpu = time.perf_counter(), time.process_time()
    with VerifyPool(jobs, signatures=signatures, freeze_gc=True) as pool:
        for chunk in pool.verdicts(_stream(path), _raw):
            fold.feed_many(chunk)
            if sample:
                rss = process.memory_info().rss / 2**20
                if not rss_warm and fold.accepted >= sample // 10:
                    rss_warm = rss
                if rss_warm:
                    rss_peak = max(rss_peak, rss)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert fold.broken is None, fold.broken
    return {
        "events": float(fold.accepted),
        "wall": wall,
        "cpu": cpu,
        "rss_warm": rss_warm,
        "rss_peak": rss_peak,
    }


def fold_alone(path: Path, limit: int = 50_000) -> float:
    """Events per second of the fold given verdicts (no parse, no signature)."""
    pairs = []
    for stored in _stream(path):
        pairs.append((stored, verify_message(stored.raw, signature=False)))
        if len(pairs) >= limit:
            break
    fold = Replay(seen=RecentEventIds())
    start = time.process_time()
    for i in range(0, len(pairs), 1024):
        fold.feed_many(pairs[i : i + 1024])
    seconds = time.process_time() - start
    assert fold.broken is None and fold.accepted == len(pairs), fold.broken
    return len(pairs) / seconds


def raw_verify_rate(path: Path, limit: int = 20_000) -> float:
    """PyNaCl verify of the same signatures, one core: the floor of a verified replay."""
    keys = {k.did: k.signing_key.verify_key for k in map(KeyPair.from_seed, _SEEDS)}
    triples = []
    for stored in _stream(path):
        document = json.loads(stored.raw)
        digest = signing_bytes(document["payload_hash_b64u"])
        signature = b64u_decode(document["signature_b64u"])
        triples.append((keys[document["signer_did"]], digest, signature))
        if len(triples) >= limit:
            break
    start = time.perf_counter()
    for verify_key, digest, signature in triples:
        verify_key.verify(digest, signature)
    return len(triples) / (time.perf_counter() - start)


def measure(n: int = 20_000, jobs: int | None = None) -> dict[str, float]:
    """Rates over ``n`` events, all from one file, with the same run's raw verify
    rate: the mean of one measured just before the parallel rebuild and one just
    after it (this machine's speed drifts by a fifth within minutes)."""
    jobs = jobs or default_jobs()
    with event_file(n) as path:
        raw_before = raw_verify_rate(path)
        parallel = rebuild(path, jobs=jobs, signatures=True)
        raw_after = raw_verify_rate(path)
        raw = (raw_before + raw_after) / 2
        single = rebuild(path, jobs=1, signatures=True)
        unsigned = rebuild(path, jobs=1, signatures=False)
        alone = fold_alone(path)
    count = parallel["events"]
    return {
        "events": count,
        "jobs": float(jobs),
        "raw_verify_per_s": raw,
        "raw_verify_before_per_s": raw_before,
        "raw_verify_after_per_s": raw_after,
        "rebuild_per_s": count / parallel["wall"],
        "rebuild_main_cpu_us": parallel["cpu"] / count * 1e6,
        "rebuild_vs_raw": count / parallel["wall"] / raw,
        "rebuild_in_process_per_s": count / single["wall"],
        "rebuild_no_signatures_per_s": count / unsigned["wall"],
        "rebuild_no_signatures_cpu_us": unsigned["cpu"] / count * 1e6,
        "fold_alone_per_s": alone,
    }


def measure_rss(n: int = 1_000_000) -> dict[str, float]:
    """The replay's RSS over ``n`` events (without signature checks: the same
    fold, sooner): after the first tenth, and its peak after that."""
    with event_file(n) as path:
        run = rebuild(path, jobs=1, signatures=False, sample=n)
    return {
        "events": run["events"],
        "rss_warm_mib": run["rss_warm"],
        "rss_peak_mib": run["rss_peak"],
        "growth": (run["rss_peak"] - run["rss_warm"]) / run["rss_warm"],
        "per_s": run["events"] / run["wall"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rss-events", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=None)
    args = parser.parse_args()
    for name, value in measure(args.events, args.jobs).items():
        print(f"{name:30} {value:14,.2f}")
    if args.rss_events:
        for name, value in measure_rss(args.rss_events).items():
            print(f"{name:30} {value:14,.2f}")


if __name__ == "__main__":
    main()
