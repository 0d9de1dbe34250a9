"""A fresh ledger to measure on the bench servers: its database, topics, keys and
processes, publishing at full speed or a steady rate, and waiting for commits."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient

from claw_ledger.config import Settings
from claw_ledger.services.kafka import ensure_topics
from claw_ledger.services.postgres import create_database
from claw_ledger.topics import topic_names
from ledger.crypto import KeyPair, save_key
from ledger.events import build_event, sign_event
from producers.publish import wait_for_verdict
from producers.sdk import LedgerProducer, RawEvent
from storage.migrate import migrate
from storage.postgres import set_trust_root

__all__ = [
    "PUBLISH_CHUNK",
    "BenchLedger",
    "bulk_producer",
    "commit_times",
    "fresh_settings",
    "ingress_producer",
    "migrated_database",
    "new_ledger",
    "publish_all",
    "until_committed",
    "wait_committed",
    "wait_group_stable",
]

#: events per bulk send when publishing flat out (their send time is the chunk's)
PUBLISH_CHUNK = 2_000


@dataclass
class BenchLedger:
    settings: Settings
    operator: KeyPair
    processors: list[subprocess.Popen[bytes]]
    #: the ledger's key file (role ledger), for a checkpointer
    ledger_key: Path | None = None
    #: the trust root's key (role admin), to register more signers
    admin: KeyPair | None = None
    #: a consumer group of its own: group ids are broker-wide, and members of an
    #: earlier ledger's group would hold up this one's rebalance
    group: str = field(default_factory=lambda: f"bench-{uuid.uuid4().hex[:8]}")
    #: ``processor run --lanes`` (ADR 0024): both by default
    lanes: str = "control,ingress"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "CLAW_LEDGER_KAFKA": self.settings.kafka_bootstrap or "",
                "CLAW_LEDGER_DATABASE_URL": self.settings.database_url or "",
                "CLAW_LEDGER_STATE_DIR": str(self.settings.state_dir),
                "CLAW_LEDGER_TOPIC_PREFIX": self.settings.topic_prefix,
            }
        )
        return env

    def start_processors(self, count: int) -> None:
        path = self.settings.state_dir / "processors.log"
        log = path.open("ab")
        for _ in range(count):
            self._started(
                path,
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "claw_ledger",
                        "processor",
                        "run",
                        "--no-status",
                        "--group",
                        self.group,
                        "--lanes",
                        self.lanes,
                    ],
                    env=self.env(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                ),
            )

    def start_checkpointer(self) -> None:
        """``checkpointer run --every-seconds 1``, stopped with the processors."""
        path = self.settings.state_dir / "checkpointer.log"
        log = path.open("ab")
        self._started(
            path,
            subprocess.Popen(
                [
                    *(sys.executable, "-m", "claw_ledger", "checkpointer", "run"),
                    *("--key", str(self.ledger_key), "--every-seconds", "1"),
                ],
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            ),
        )

    def _started(self, log: Path, proc: subprocess.Popen[bytes]) -> None:
        self.processors.append(proc)
        _RUNNING[proc] = log

    def stop_processors(self) -> None:
        for proc in self.processors:
            _RUNNING.pop(proc, None)
        for proc in self.processors:
            proc.terminate()
        for proc in self.processors:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.processors.clear()


async def migrated_database(server_url: str, name: str) -> str:
    """A new database ``name`` on the Postgres server of ``server_url``, migrated; its URL."""
    await create_database(server_url, name)
    url = server_url.rsplit("/", 1)[0] + "/" + name
    await migrate(url)
    return url


async def fresh_settings(
    base: Settings, name: str, partitions: int, *, trust_root: KeyPair
) -> Settings:
    """``base`` on a new migrated database ``name``, whose trust root is ``trust_root``,
    and a new topic prefix, its topics made with ``partitions`` partitions."""
    assert base.database_url and base.kafka_bootstrap
    url = await migrated_database(base.database_url, name)
    settings = replace(base, database_url=url, topic_prefix=f"bench-{uuid.uuid4().hex[:8]}")
    await ensure_topics(base.kafka_bootstrap, topic_names(settings.topic_prefix).all, partitions)
    conn = await asyncpg.connect(url)
    try:
        await set_trust_root(conn, trust_root.did)
    finally:
        await conn.close()
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    return settings


def ingress_producer(settings: Settings, **options: Any) -> LedgerProducer:
    """A producer to the ingress topic of ``settings``; ``options`` as
    :class:`LedgerProducer` takes them."""
    assert settings.kafka_bootstrap
    return LedgerProducer(
        settings.kafka_bootstrap, topic_names(settings.topic_prefix).ingress, **options
    )


def bulk_producer(settings: Settings) -> LedgerProducer:
    """An ingress producer for publishing flat out: 10 ms linger, batches up to 1 MiB."""
    return ingress_producer(settings, linger_ms=10, max_batch_size=1024 * 1024)


async def new_ledger(
    base: Settings, processors: int, partitions: int, *, lanes: str = "control,ingress"
) -> BenchLedger:
    """A fresh database and topic prefix on the bench servers, with a registered operator;
    its processors consume ``lanes``."""
    name = f"bench_{uuid.uuid4().hex[:8]}"
    admin, operator = KeyPair.generate("admin"), KeyPair.generate("operator")
    ledger_key = KeyPair.generate("ledger")
    settings = await fresh_settings(base, name, partitions, trust_root=admin)
    assert settings.database_url and settings.kafka_bootstrap
    key_file = settings.state_dir / f"{name}-ledger.key"
    save_key(ledger_key, key_file)
    ledger = BenchLedger(settings, operator, [], key_file, lanes=lanes, admin=admin)
    ledger.start_processors(processors)
    async with ingress_producer(settings) as producer:
        registered = ((admin, ["admin"]), (operator, ["operator"]), (ledger_key, ["ledger"]))
        for key, roles in registered:
            event = build_event(
                "key.registered",
                f"key:{key.did}",
                {"did": key.did, "name": key.name, "roles": roles},
                admin,
            )
            await producer.send_envelope(sign_event(event, admin))
            verdict = await wait_for_verdict(settings.database_url, event.event_id, timeout=120)
            assert verdict["status"] == "committed", verdict
    await wait_group_stable(settings.kafka_bootstrap, ledger.group, processors)
    return ledger


async def wait_group_stable(bootstrap: str, group: str, members: int, timeout: float = 120) -> None:
    """Until every processor is a member with its partitions: a rebalance
    inside the measured window would pause all of them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + timeout
        while True:
            [response] = await admin.describe_consumer_groups([group])
            # DescribeGroups: (error_code, group_id, state, protocol_type, protocol, members)
            description = response.groups[0]
            if description[2] == "Stable" and len(description[5]) == members:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"group {group} not stable with {members} members: {description}"
                )
            await asyncio.sleep(0.5)
    finally:
        await admin.close()


async def publish_all(
    ledger: BenchLedger, events: list[tuple[str, str, bytes]], rate: float | None = None
) -> dict[str, float]:
    """Publish pre-signed events (as fast as Kafka takes them, or at ``rate`` per
    second); returns each event's send time.

    Flat out uses the SDK's bulk path (:meth:`LedgerProducer.send_raw_many`) in
    chunks; a steady rate sends event by event. Everything goes to the ingress
    topic, whatever its type's lane (the processor accepts any type on either
    lane, ADR 0024): the ingest rows measure the ingress lane, as in earlier runs,
    and no envelope is parsed on the producer's side to route it.
    """
    sent: dict[str, float] = {}
    async with bulk_producer(ledger.settings) as producer:
        if rate is None:
            for start in range(0, len(events), PUBLISH_CHUNK):
                chunk = events[start : start + PUBLISH_CHUNK]
                now = time.time()
                for event_id, _, _ in chunk:
                    sent[event_id] = now
                await producer.send_raw_many(
                    (RawEvent(raw, stream, event_id) for event_id, stream, raw in chunk),
                    topic=producer.topic,
                )
            return sent
        futures = []
        began = time.monotonic()
        for n, (event_id, stream, raw) in enumerate(events):
            if n % 50 == 0:
                ahead = began + n / rate - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
            sent[event_id] = time.time()
            futures.append(await producer.send_raw(raw, stream, event_id, topic=producer.topic))
        await asyncio.gather(*futures)
    return sent


#: every processor and checkpointer a bench ledger started and has not stopped,
#: with its log: one that exits meanwhile ends the wait for commits at once
_RUNNING: dict[subprocess.Popen[bytes], Path] = {}


def _exited() -> str | None:
    for proc, log in _RUNNING.items():
        if proc.poll() is not None:
            command = " ".join(str(a) for a in proc.args[3:5])  # type: ignore[index]
            return f"`{command}` (pid {proc.pid}) exited with code {proc.returncode}; see {log}"
    return None


async def until_committed(
    committed: Callable[[], Awaitable[int]], count: int, *, timeout: float, every: float, what: str
) -> None:
    """Ask ``committed()`` every ``every`` seconds until it says ``count``; after
    ``timeout`` seconds, or as soon as a bench processor has exited, a
    RuntimeError saying how many of ``what`` were."""
    deadline = time.monotonic() + timeout
    while (done := await committed()) < count:
        if (exited := _exited()) is not None:
            raise RuntimeError(f"only {done} of {count} {what} committed: {exited}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {done} of {count} {what} committed in {timeout:.0f}s")
        await asyncio.sleep(every)


async def wait_committed(url: str, count: int, timeout: float, sample: Any = None) -> None:
    conn = await asyncpg.connect(url)
    try:
        # the ledger's own counters, not count(*) over a growing table: a scan per
        # poll took a measurable share of the CPU the benchmark measures
        setup = await conn.fetchval(
            "SELECT count(*) FROM events WHERE event_type = 'key.registered'"
        )

        async def committed() -> int:
            done = int(
                await conn.fetchval(
                    "SELECT coalesce(sum(ledger_seq), 0)::bigint FROM consumer_positions"
                )
                - setup
            )
            if sample is not None:
                sample(done)
            return done

        await until_committed(committed, count, timeout=timeout, every=1.0, what="events")
    finally:
        await conn.close()


async def commit_times(url: str) -> list[dict[str, Any]]:
    """Each benchmark event's id and commit time (epoch seconds)."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT event_id::text AS id, extract(epoch FROM recorded_at) AS at FROM events"
            " WHERE event_type = 'agent.halted'"
        )
    finally:
        await conn.close()
    return [dict(r) for r in rows]
