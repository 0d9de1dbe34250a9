"""A processor's start, memory and ingest rate against the size of its ledger (ADR 0020).

For each size (10,000 and 1,000,000 active tokens by default) a fresh ledger
is filled with realistic ``tokens`` rows by COPY, with their digest, as the
processor itself would have left them. Then a real ``claw-ledger processor
run`` is started and measured:

* start: from launching the process to the commit of a halt of model egress
  only (a batch that reads no token or job row), published before it (imports,
  schema check, loading keys, policies and halts, the Kafka group join). With
  ``--control-check background`` (the default) the digests of ``tokens`` and
  ``jobs`` stream meanwhile, and a batch that reads a token waits for them:
  the time to the commit of a full-stop halt of one job (which revokes that
  job's token, read by its scope, never the whole table) is reported beside it;
* RSS once started, and the peak while it ingests;
* ingest: ``token.revoked`` events for distinct tokens picked at random among
  those in the ledger (each read by key from the big table and written back),
  beside the raw verify rate measured just before.

Also the time of the digest stream alone (in this process), which is the part
of the start that grows with the ledger.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import asyncpg
import psutil

from bench.ledger import bulk_producer, fresh_settings
from bench.workload import envelope_jcs
from claw_ledger.config import Settings
from ledger.control_digest import DIGEST_MODULUS, digest_hex, parse_digest, row_hash
from ledger.crypto import KeyPair
from ledger.encoding import sha256_b64u
from ledger.envelope import format_timestamp
from ledger.events import sign_event_bytes
from ledger.roles import Role
from ledger.state import KeyRecord
from producers.sdk import RawEvent
from storage import control_cache_sql
from storage.postgres import init_connection

__all__ = ["Row", "control_cache_rows"]

Row = tuple[str, str, str, str, str]
#: the databases made here (a standalone run drops them again)
CREATED_DATABASES: list[str] = []
#: rows per COPY
_COPY_CHUNK = 50_000
_TOKEN_COLUMNS = (
    "jti",
    "status",
    "sub",
    "aud",
    "scope",
    "iat",
    "exp",
    "kid",
    "issuer_did",
    "token_scope_hash_b64u",
    "token_sha256_b64u",
    "policy_hash_b64u",
    "mission_id",
    "nonce",
    "issued_event_id",
    "issued_at",
    "revoked_reason",
    "revoked_by",
    "revoked_at",
    "control_version",
)


def token_row(n: int, issuer: str, version: int) -> dict[str, Any]:
    """A ``tokens`` row as ``token.issued`` writes it (hashes are stand-ins of the right shape)."""
    return {
        "jti": f"cst_bench_{n:09d}",
        "status": "active",
        "sub": f"agent:bench-{n % 5000}",
        "aud": "clawproxy",
        "scope": ["proxy:call:anthropic", "tools:read"],
        "iat": 1_770_854_400,
        "exp": 1_770_854_400 + 86_400 * 365,
        "kid": "0123456789abcdef",
        "issuer_did": issuer,
        "token_scope_hash_b64u": sha256_b64u(f"scope {n % 64}".encode()),
        "token_sha256_b64u": sha256_b64u(f"token {n}".encode()),
        "policy_hash_b64u": None,
        "mission_id": f"job-bench-{n}",
        "nonce": None,
        "issued_event_id": str(uuid.UUID(int=n + 1)),
        "issued_at": "2026-02-12T00:00:00.000Z",
        "revoked_reason": None,
        "revoked_by": None,
        "revoked_at": None,
        "control_version": version,
    }


async def _add_rows(
    conn: asyncpg.Connection, table: str, columns: tuple[str, ...], rows: Iterator[dict[str, Any]]
) -> int:
    """COPY ``rows`` into ``table`` and move its digest by theirs (as commits do)."""
    digest = 0
    chunk: list[tuple[Any, ...]] = []
    for row in rows:
        digest += row_hash(table, row)
        chunk.append(tuple(row[c] for c in columns))
        if len(chunk) == _COPY_CHUNK:
            await conn.copy_records_to_table(table, columns=columns, records=chunk)
            chunk = []
    if chunk:
        await conn.copy_records_to_table(table, columns=columns, records=chunk)
    stored = parse_digest(
        await conn.fetchval("SELECT digest FROM control_digests WHERE table_name = $1", table)
    )
    new = ((stored or 0) + digest) % DIGEST_MODULUS
    await conn.execute(
        "UPDATE control_digests SET digest = $2 WHERE table_name = $1", table, digest_hex(new)
    )
    return new


@dataclass
class FilledLedger:
    settings: Settings
    operator: KeyPair
    jtis: list[str]


async def filled_ledger(base: Settings, tokens: int, partitions: int) -> FilledLedger:
    """A fresh database and topic prefix whose ledger holds ``tokens`` active tokens."""
    name = f"bench_{uuid.uuid4().hex[:8]}"
    # listed first: the drop at the end skips a database that was never made
    CREATED_DATABASES.append(name)
    admin, operator = KeyPair.generate("admin"), KeyPair.generate("operator")
    settings = await fresh_settings(base, name, partitions, trust_root=admin)
    assert settings.database_url
    conn = await asyncpg.connect(settings.database_url)
    try:
        await init_connection(conn)
        async with conn.transaction():
            version = int(
                await conn.fetchval(
                    "UPDATE control_state SET version = version + 1 WHERE id = 1 RETURNING version"
                )
            )
            keys = [
                KeyRecord(k.did, k.name, frozenset({role}), admin.did, str(uuid.uuid4()))
                for k, role in ((admin, Role.ADMIN), (operator, Role.OPERATOR))
            ]
            key_rows = [{**k.row().values, "control_version": version} for k in keys]
            await _add_rows(conn, "keys", tuple(key_rows[0]), iter(key_rows))
            rows = (token_row(n, admin.did, version) for n in range(tokens))
            await _add_rows(conn, "tokens", _TOKEN_COLUMNS, rows)
    finally:
        await conn.close()
    return FilledLedger(settings, operator, [f"cst_bench_{n:09d}" for n in range(tokens)])


def _revocations(seed: bytes, jtis: list[str]) -> list[tuple[str, str, bytes]]:
    key = KeyPair.from_seed(seed)
    occurred_at = format_timestamp()
    out = []
    for jti in jtis:
        event_id = str(uuid.uuid4())
        body = {"jti": jti, "reason": "bench"}
        raw = envelope_jcs(
            key, "token.revoked", f"token:{jti}", body, event_id=event_id, occurred_at=occurred_at
        )
        out.append((event_id, f"token:{jti}", raw))
    return out


def sign_revocations(
    key: KeyPair, jtis: list[str], workers: int = 2
) -> list[tuple[str, str, bytes]]:
    """Signed ``token.revoked`` envelopes, (event_id, stream, raw), off the clock."""
    seed = bytes(key.signing_key)
    size = max(1, len(jtis) // (workers * 8))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(_revocations, seed, jtis[i : i + size]) for i in range(0, len(jtis), size)
        ]
        return [event for future in futures for event in future.result()]


def _mission(jti: str) -> str:
    """The job a bench token is bound to (:func:`token_row`)."""
    return f"job-bench-{int(jti.rsplit('_', 1)[1])}"


def _halt(key: KeyPair, target: str, **flags: bool) -> tuple[str, str, bytes]:
    stream = f"halt:{target}"
    body = {"target": target, "reason": "bench probe", **flags}
    event_id, raw = sign_event_bytes(key, "agent.halted", stream, body)
    return event_id, stream, raw


async def _publish(settings: Settings, events: list[tuple[str, str, bytes]]) -> None:
    async with bulk_producer(settings) as producer:
        for start in range(0, len(events), 2_000):
            chunk = events[start : start + 2_000]
            # the ingress topic, as before the control lane (ADR 0024): no routing parse
            await producer.send_raw_many(
                (RawEvent(raw, stream, eid) for eid, stream, raw in chunk), topic=producer.topic
            )


async def _count(conn: asyncpg.Connection, event_type: str) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM events WHERE event_type = $1", event_type))


@dataclass
class SizeRun:
    tokens: int
    digest_stream_s: float
    start_s: float
    #: launch → commit of a full-stop halt of a job (after the digest check)
    tokens_ready_s: float
    rss_started_mib: float
    rss_peak_mib: float
    ingest_rate: float
    baseline: float


async def measure_size(
    base: Settings,
    tokens: int,
    events: int,
    partitions: int,
    raw_verify_rate: Callable[[], float],
    cache_size: int,
) -> SizeRun:
    ledger = await filled_ledger(base, tokens, partitions)
    url = ledger.settings.database_url
    assert url
    conn = await asyncpg.connect(url)
    await init_connection(conn)
    began = time.perf_counter()
    await control_cache_sql.open_control_state(conn, None, whole=("keys", "policies", "halts"))
    digest_stream_s = time.perf_counter() - began
    rng = random.Random(tokens)
    halted_jti, *jtis = rng.sample(ledger.jtis, min(events + 1, len(ledger.jtis)))
    work = sign_revocations(ledger.operator, jtis)
    # the start probe, alone in its batch: a batch holding a token event would wait for the check
    await _publish(ledger.settings, [_halt(ledger.operator, "sub:agent:bench-start", tools=False)])
    # a full stop of the job of one token revokes it: that batch waits for the check
    probe = [_halt(ledger.operator, f"job:{_mission(halted_jti)}")]
    env = dict(os.environ)
    env.update(
        {
            "CLAW_LEDGER_KAFKA": ledger.settings.kafka_bootstrap or "",
            "CLAW_LEDGER_DATABASE_URL": url,
            "CLAW_LEDGER_STATE_DIR": str(ledger.settings.state_dir),
            "CLAW_LEDGER_TOPIC_PREFIX": ledger.settings.topic_prefix,
            "CLAW_LEDGER_CONTROL_CACHE_SIZE": str(cache_size),
        }
    )
    ledger.settings.state_dir.mkdir(parents=True, exist_ok=True)
    log = (ledger.settings.state_dir / "processors.log").open("ab")
    group = f"bench-{uuid.uuid4().hex[:8]}"
    launched = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "claw_ledger", "processor", "run", "--no-status", "--group", group],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    watched = psutil.Process(proc.pid)
    try:
        for halts in (1, 2):
            while await _count(conn, "agent.halted") < halts:
                if proc.poll() is not None:
                    raise RuntimeError(f"the processor exited ({proc.returncode}); see {log.name}")
                await asyncio.sleep(0.02)
            if halts == 1:
                start_s = time.perf_counter() - launched
                await _publish(ledger.settings, probe)
        tokens_ready_s = time.perf_counter() - launched
        status = await conn.fetchval("SELECT status FROM tokens WHERE jti = $1", halted_jti)
        assert status == "revoked", f"the full stop left {halted_jti} {status}"
        await asyncio.sleep(1.0)  # settled after its first commit
        rss_started = watched.memory_info().rss / 2**20
        baseline = raw_verify_rate()
        peak = rss_started
        publisher = asyncio.create_task(_publish(ledger.settings, work))
        while (await _count(conn, "token.revoked")) < len(work):
            peak = max(peak, watched.memory_info().rss / 2**20)
            if proc.poll() is not None:
                raise RuntimeError(f"the processor exited with {proc.returncode}; see {log.name}")
            await asyncio.sleep(0.25)
        await publisher
        times = sorted(
            float(r[0])
            for r in await conn.fetch(
                "SELECT extract(epoch FROM recorded_at) FROM events"
                " WHERE event_type = 'token.revoked'"
            )
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        await conn.close()
    lo, hi = times[len(times) // 10], times[len(times) * 9 // 10]
    rate = (len(times) * 0.8) / max(hi - lo, 1e-9)
    return SizeRun(
        tokens, digest_stream_s, start_s, tokens_ready_s, rss_started, peak, rate, baseline
    )


async def control_cache_rows(
    base: Settings,
    sizes: tuple[int, int],
    events: int,
    partitions: int,
    raw_verify_rate: Callable[[], float],
    cache_size: int = 50_000,
) -> list[Row]:
    """The rows of the report: start, RSS and ingest at the two ledger sizes.

    Both sizes revoke as many distinct tokens (at most the smaller ledger's, less
    the one its halt revokes): the cache then holds as many rows in both, and
    only the size of the ledger differs."""
    events = min(events, min(sizes) - 1)
    small, large = [
        await measure_size(base, n, events, partitions, raw_verify_rate, cache_size) for n in sizes
    ]
    start_gap = large.start_s - small.start_s
    rss_ratio = large.rss_peak_mib / small.rss_peak_mib - 1
    rows: list[Row] = []
    for run in (small, large):
        rows.append(
            (
                f"processor start with {run.tokens:,} tokens: launch → first commit"
                " (a batch reading no token; a full stop of a job: after the token digest check)",
                f"{run.start_s:,.1f} s (full stop of a job {run.tokens_ready_s:,.1f} s;"
                f" digest stream alone {run.digest_stream_s:,.1f} s)",
                f"{small.start_s:,.1f} s with {small.tokens:,} tokens" if run is large else "",
                f"within 2 s of {small.tokens:,} tokens" if run is large else "",
                ("met" if start_gap <= 2 else "NOT met") if run is large else "",
            )
        )
    for run in (small, large):
        rows.append(
            (
                f"processor RSS with {run.tokens:,} tokens: started / peak over"
                f" {events:,} revocations",
                f"{run.rss_started_mib:,.0f} / {run.rss_peak_mib:,.0f} MiB",
                f"{small.rss_peak_mib:,.0f} MiB peak with {small.tokens:,} tokens"
                if run is large
                else "",
                "peak within 10 %" if run is large else "",
                ("met" if abs(rss_ratio) <= 0.10 else "NOT met") if run is large else "",
            )
        )
    for run in (small, large):
        rows.append(
            (
                f"ingest with {run.tokens:,} tokens present: {events:,} token.revoked"
                f" (keyed reads), one processor",
                f"{run.ingest_rate:,.0f} ev/s",
                f"{run.baseline:,.0f} verify/s (ratio {run.ingest_rate / run.baseline:.2f})",
                "",
                "",
            )
        )
    return rows


async def _main(sizes: tuple[int, int], events: int, partitions: int, state_dir: str) -> None:
    """On the servers of ``CLAW_LEDGER_KAFKA`` and ``CLAW_LEDGER_DATABASE_URL``."""
    from pathlib import Path

    from bench.__main__ import raw_verify_rate
    from claw_ledger.config import load_settings

    base = load_settings(state_dir=Path(state_dir))
    assert base.database_url
    try:
        for row in await control_cache_rows(base, sizes, events, partitions, raw_verify_rate):
            print(" | ".join(row))
    finally:
        conn = await asyncpg.connect(base.database_url)
        try:
            for name in CREATED_DATABASES:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m bench.control_cache", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--tokens", default="10000,1000000", help="the two ledger sizes")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--state-dir", default=".claw-ledger/bench-control-cache")
    args = parser.parse_args()
    small, large = (int(n) for n in args.tokens.split(","))
    asyncio.run(_main((small, large), args.events, args.partitions, args.state_dir))
