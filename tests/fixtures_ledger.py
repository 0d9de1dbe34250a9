"""Fixtures for end-to-end tests: a running verifying processor (a real
``claw-ledger processor run`` process) on the session's Kafka and Postgres,
with a trust root and keys for every role registered on the ledger."""

from __future__ import annotations

import asyncio
import os
import pty
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from claw_ledger.checkpointer_control import stop_checkpointer
from claw_ledger.config import Settings, load_settings
from claw_ledger.processor_control import processor_command
from claw_ledger.services.kafka import (
    KafkaProcess,
    ensure_kafka_jars,
    ensure_topics,
    kafka_paths,
    start_kafka,
    stop_kafka,
    wait_kafka_ready,
)
from claw_ledger.services.postgres import (
    admin_url,
    create_database,
    start_postgres,
    stop_postgres,
    wait_postgres_ready,
)
from ledger.chain import ChainLink
from ledger.crypto import KeyPair, save_key
from ledger.roles import Role
from ledger.topics import topic_names
from producers.publish import wait_for_verdict
from producers.sdk import LedgerProducer
from storage.postgres import set_trust_root
from tests.conftest import with_database

__all__ = [
    "CLAW_LEDGER",
    "NOWHERE_DATABASE",
    "NOWHERE_KAFKA",
    "LedgerHarness",
    "PrivateKafka",
    "PrivatePostgres",
    "ProcessorProcess",
    "connection",
    "fetch_until",
    "kafka_admin",
    "offline_cli_env",
    "private_kafka",
    "private_postgres",
    "recorded_halts",
    "run_cli",
    "send_halts",
    "send_halts_in_tenths",
    "started_ledger",
    "stored_chains",
    "unconfigured_cli_env",
]

#: the command line of the installed CLI, run by this interpreter
CLAW_LEDGER = (sys.executable, "-m", "claw_ledger")


def run_cli(
    env: dict[str, str], *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``claw-ledger *args`` in a child process, its output captured as text."""
    return subprocess.run(
        [*CLAW_LEDGER, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def run_cli_on_a_terminal(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """``claw-ledger ARGS`` with stderr on a pseudo-terminal, as a responder runs it:
    (exit code, stdout, what the terminal showed)."""
    terminal, side = pty.openpty()
    proc = subprocess.Popen(
        [*CLAW_LEDGER, *args],
        env=env | {"COLUMNS": "120"},
        stdout=subprocess.PIPE,
        stderr=side,
        text=True,
    )
    os.close(side)
    shown = b""
    try:
        while chunk := os.read(terminal, 4096):
            shown += chunk
    except OSError:  # EIO once the child has closed the terminal
        pass
    finally:
        os.close(terminal)
    out, _ = proc.communicate(timeout=300)
    return proc.returncode, out, shown.decode("utf-8", "replace")


@asynccontextmanager
async def connection(url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the database of ``url`` for the block, closed after it."""
    conn = await asyncpg.connect(url)
    try:
        yield conn
    finally:
        await conn.close()


async def send_halts(
    producer: LedgerProducer, key: KeyPair, numbers: range, job: str, jobs: int
) -> list[str]:
    """Sign and send ``agent.halted`` number ``i`` for ``job:<job>-<i % jobs>``, for each of
    ``numbers``, all in flight at once; return the event ids once every send is acknowledged."""
    event_ids: list[str] = []
    futures = []
    for i in numbers:
        target = f"job:{job}-{i % jobs}"
        envelope = producer.sign(
            key, "agent.halted", f"halt:{target}", {"target": target, "reason": f"{job} {i}"}
        )
        event_ids.append(str(envelope.payload["event_id"]))
        futures.append(await producer.send_envelope(envelope))
    await asyncio.gather(*futures)
    return event_ids


async def send_halts_in_tenths(
    ledger: LedgerHarness, key: KeyPair, count: int, job: str, sent: list[str]
) -> None:
    """:func:`send_halts` of ``count`` halts in ten steps half a second apart, each
    event id appended to ``sent`` once acknowledged: a stream that keeps flowing
    while a drill kills or stops something (sent all at once, on a busy machine it
    could all be committed before the drill began)."""
    async with ledger.producer() as producer:
        step = max(1, count // 10)
        for start in range(0, count, step):
            numbers = range(start, min(start + step, count))
            sent.extend(await send_halts(producer, key, numbers, job, 64))
            await asyncio.sleep(0.5)


async def stored_chains(conn: asyncpg.Connection) -> dict[tuple[str, int], list[ChainLink]]:
    """Every (topic, partition)'s chain links as the ``events`` table holds them, in
    ledger_seq order: every lane's partition is a chain of its own (ADR 0024)."""
    rows = await conn.fetch(
        "SELECT kafka_topic, kafka_partition, ledger_seq, event_id::text AS event_id,"
        " envelope_raw, prev_chain_hash, chain_hash FROM events"
        " ORDER BY kafka_topic, kafka_partition, ledger_seq"
    )
    chains: dict[tuple[str, int], list[ChainLink]] = {}
    for r in rows:
        chains.setdefault((r["kafka_topic"], r["kafka_partition"]), []).append(
            ChainLink(
                r["kafka_partition"],
                r["ledger_seq"],
                r["event_id"],
                bytes(r["envelope_raw"]),
                r["prev_chain_hash"],
                r["chain_hash"],
            )
        )
    return chains


async def fetch_until(
    conn: asyncpg.Connection, sql: str, *args: Any, count: int, timeout: float
) -> list[asyncpg.Record]:
    """The rows of ``sql`` once there are ``count`` (or more), else those there at ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.2)


async def recorded_halts(conn: asyncpg.Connection) -> list[str]:
    """The event ids of every committed ``agent.halted`` (one per commit: duplicates show)."""
    rows = await conn.fetch(
        "SELECT event_id::text AS event_id FROM events WHERE event_type = 'agent.halted'"
    )
    return [r["event_id"] for r in rows]


def ledger_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "CLAW_LEDGER_KAFKA": settings.kafka_bootstrap or "",
            "CLAW_LEDGER_DATABASE_URL": settings.database_url or "",
            "CLAW_LEDGER_STATE_DIR": str(settings.state_dir),
            "CLAW_LEDGER_TOPIC_PREFIX": settings.topic_prefix,
            "CLAW_LEDGER_PARTITIONS": str(settings.partitions),
        }
    )
    return env


def unconfigured_cli_env(state_dir: Path) -> dict[str, str | None]:
    """The environment of a ``CliRunner`` run of the CLI with its state in ``state_dir`` and
    no servers nor config file from the environment (``None`` unsets a variable)."""
    return {
        "CLAW_LEDGER_STATE_DIR": str(state_dir),
        "CLAW_LEDGER_KAFKA": None,
        "CLAW_LEDGER_DATABASE_URL": None,
        "CLAW_LEDGER_WRITER_URL": None,
        "CLAW_LEDGER_READER_URL": None,
        "CLAW_LEDGER_CONFIG": None,
    }


#: servers that refuse every connection (port 1 on the loopback): no server needed
NOWHERE_KAFKA = "127.0.0.1:1"
NOWHERE_DATABASE = "postgresql://ledger@127.0.0.1:1/claw_ledger"


@pytest.fixture
def offline_cli_env(tmp_path: Path) -> dict[str, str]:
    """A child CLI's environment: its own state dir with an operator key, the
    servers at :data:`NOWHERE_KAFKA` and :data:`NOWHERE_DATABASE`."""
    unset = unconfigured_cli_env(tmp_path)
    environment = {k: v for k, v in os.environ.items() if k not in unset}
    environment.update({k: v for k, v in unset.items() if v is not None})
    environment["CLAW_LEDGER_KAFKA"] = NOWHERE_KAFKA
    environment["CLAW_LEDGER_DATABASE_URL"] = NOWHERE_DATABASE
    assert run_cli(environment, "keys", "new", "operator").returncode == 0
    return environment


@dataclass(eq=False)
class ProcessorProcess:
    """``python -m claw_ledger processor run`` as a real child process."""

    settings: Settings
    log_path: Path
    group: str
    engine: str = "kafka"
    batch_size: int = 2000
    #: ``--lanes``: what this process consumes (ADR 0024)
    lanes: str = "control,ingress"
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            processor_command(
                *("run", "--group", self.group, "--no-status", "--engine", self.engine),
                *("--batch-size", str(self.batch_size), "--lanes", self.lanes),
            ),
            env=ledger_env(self.settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flush — a crash."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


@dataclass
class LedgerHarness:
    settings: Settings
    admin: KeyPair
    keys: dict[Role, KeyPair]
    processor: ProcessorProcess
    env: dict[str, str] = field(default_factory=dict)

    @property
    def topics(self) -> Any:
        return topic_names(self.settings.topic_prefix)

    async def connect(self) -> asyncpg.Connection:
        assert self.settings.database_url
        return await asyncpg.connect(self.settings.database_url)

    def connection(self) -> AbstractAsyncContextManager[asyncpg.Connection]:
        """A connection to the ledger's database for an ``async with`` block, closed after it."""
        assert self.settings.database_url
        return connection(self.settings.database_url)

    async def committed_count(self, event_type: str) -> int:
        """How many events of ``event_type`` the ledger has committed."""
        async with self.connection() as conn:
            sql = "SELECT count(*) FROM events WHERE event_type = $1"
            return int(await conn.fetchval(sql, event_type))

    def producer(self) -> LedgerProducer:
        assert self.settings.kafka_bootstrap
        return LedgerProducer(self.settings.kafka_bootstrap, self.topics)

    def outcome_consumer(self) -> AIOKafkaConsumer:
        """A consumer of the verified and quarantine topics from their start (not started)."""
        return AIOKafkaConsumer(
            self.topics.verified,
            self.topics.quarantine,
            bootstrap_servers=self.settings.kafka_bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )

    async def publish(
        self, key: KeyPair, event_type: str, stream: str, body: Mapping[str, Any], **kw: Any
    ) -> dict[str, Any]:
        async with self.producer() as producer:
            position = await producer.publish(key, event_type, stream, body, **kw)
        return position.to_dict() | await self.verdict(position.event_id)

    async def register(self, key: KeyPair, name: str, role: str) -> dict[str, Any]:
        """The admin registers ``key`` holding ``role``; the committed verdict."""
        body = {"did": key.did, "name": name, "roles": [role]}
        verdict = await self.publish(self.admin, "key.registered", f"key:{key.did}", body)
        assert verdict["status"] == "committed", verdict
        return verdict

    async def halt(self, target: str, reason: str) -> dict[str, Any]:
        """The operator halts ``target``; the committed verdict."""
        operator, body = self.keys[Role.OPERATOR], {"target": target, "reason": reason}
        verdict = await self.publish(operator, "agent.halted", f"halt:{target}", body)
        assert verdict["status"] == "committed", verdict
        return verdict

    async def register_key(self, role: Role) -> KeyPair:
        """A new key with ``role``, registered by the admin (the verdict must be a commit)."""
        key = KeyPair.generate(role.value)
        body = {"did": key.did, "name": role.value, "roles": [role.value]}
        verdict = await self.publish(self.admin, "key.registered", f"key:{key.did}", body)
        assert verdict["status"] == "committed", verdict
        return key

    async def publish_raw(
        self, value: bytes, stream: str = "raw:test", *, topic: str | None = None
    ) -> None:
        """``value`` keyed by ``stream``, to ``topic`` or its type's lane (ADR 0024)."""
        async with self.producer() as producer:
            future = await producer.send_raw(value, stream, topic=topic)
            await future

    async def verdict(self, event_id: str, timeout: float = 60.0) -> dict[str, Any]:
        assert self.settings.database_url
        try:
            return await wait_for_verdict(self.settings.database_url, event_id, timeout=timeout)
        except Exception:
            print(self.processor.log_tail())
            raise

    async def wait_quarantine_count(
        self, count: int, timeout: float = 60.0
    ) -> list[dict[str, Any]]:
        conn = await self.connect()
        try:
            deadline = time.monotonic() + timeout
            while True:
                rows = await conn.fetch("SELECT * FROM quarantine ORDER BY id")
                if len(rows) >= count:
                    return [dict(r) for r in rows]
                if time.monotonic() > deadline:
                    print(self.processor.log_tail())
                    raise AssertionError(f"only {len(rows)} quarantine rows, wanted {count}")
                await asyncio.sleep(0.1)
        finally:
            await conn.close()


@asynccontextmanager
async def kafka_admin(harness: LedgerHarness) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started Kafka admin client on the ledger's broker, closed after the block
    (what an operator's own Kafka tools do: delete records, topics, add partitions)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=harness.settings.kafka_bootstrap)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def _fresh_ledger_database(ledger_servers: Any, partition_rows: int | None = None) -> str:
    from storage.migrate import migrate
    from storage.partitions import set_partition_rows

    name = f"claw_e2e_{uuid.uuid4().hex[:8]}"
    await create_database(ledger_servers.server_url, name)
    url: str = ledger_servers.database_url(name)
    await migrate(url)
    if partition_rows is not None:
        conn = await asyncpg.connect(url)
        try:
            await set_partition_rows(conn, partition_rows)
        finally:
            await conn.close()
    return url


async def start_ledger(
    ledger_servers: Any,
    base: Settings,
    state_dir: Path,
    *,
    register_roles: bool = True,
    engine: str = "kafka",
    batch_size: int = 2000,
    partition_rows: int | None = None,
    lanes: str = "control,ingress",
) -> LedgerHarness:
    """A new database and topic prefix, a trust root, a processor (of ``lanes``), and
    role keys; ``partition_rows``: the events table cut into partitions of that many
    positions."""
    url = await _fresh_ledger_database(ledger_servers, partition_rows)
    settings = replace(
        base,
        database_url=url,
        state_dir=state_dir,
        topic_prefix=f"e2e-{uuid.uuid4().hex[:10]}",
    )
    assert settings.kafka_bootstrap
    await ensure_topics(
        settings.kafka_bootstrap, topic_names(settings.topic_prefix).all, settings.partitions
    )
    (state_dir / "keys").mkdir(parents=True, exist_ok=True)
    admin = KeyPair.generate("admin")
    save_key(admin, state_dir / "keys" / "admin.key")
    conn = await asyncpg.connect(url)
    try:
        await set_trust_root(conn, admin.did)
    finally:
        await conn.close()
    # a group of its own: Kafka group ids are broker-wide, and a lingering member
    # of another test's group (or another engine's protocol) must not interfere
    group = f"verifier-{engine}-{uuid.uuid4().hex[:8]}"
    processor = ProcessorProcess(
        settings, state_dir / "processor.log", group, engine, batch_size, lanes
    )
    processor.start()
    harness = LedgerHarness(settings, admin, {}, processor, ledger_env(settings))
    try:
        await harness.register(admin, "admin", "admin")
    except BaseException:
        processor.stop()
        raise
    if register_roles:
        for role in Role:
            if role is Role.ADMIN:
                continue
            key = KeyPair.generate(role.value)
            save_key(key, state_dir / "keys" / f"{role.value}.key")
            await harness.register(key, role.value, role.value)
            harness.keys[role] = key
    return harness


@asynccontextmanager
async def started_ledger(
    ledger_servers: Any, base: Settings, state_dir: Path, **options: Any
) -> AsyncIterator[LedgerHarness]:
    """:func:`start_ledger` (with its keyword ``options``) for the block; its processor
    is stopped after it, however the block ends."""
    harness = await start_ledger(ledger_servers, base, state_dir, **options)
    try:
        yield harness
    finally:
        harness.processor.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def running_ledger(
    ledger_servers: Any, ledger_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LedgerHarness]:
    """One shared running ledger for the end-to-end tests of a session."""
    harness = await start_ledger(
        ledger_servers, ledger_settings, tmp_path_factory.mktemp("running-ledger")
    )
    yield harness
    # the demo leaves a detached checkpointer running in the harness's state dir
    stop_checkpointer(harness.settings)
    harness.processor.stop()


@pytest.fixture
def cli_env(running_ledger: LedgerHarness) -> Iterator[dict[str, str]]:
    yield dict(running_ledger.env)


def _private_settings(directory: Path) -> Settings:
    """Settings of a server private to one test, its data under ``directory``; the
    user's cache (the broker jars) as the session's servers use it."""
    return load_settings(
        state_dir=directory,
        cache_dir=os.environ.get("CLAW_LEDGER_CACHE_DIR") or None,
        env={k: v for k, v in os.environ.items() if k in ("HOME", "XDG_CACHE_HOME")},
        cwd=directory.parent,
    )


@dataclass
class PrivatePostgres:
    """An embedded Postgres of one test, which it may stop and start (the session's
    shared server is never stopped); :func:`start_ledger` takes it as its servers."""

    settings: Settings
    port: int

    @property
    def server_url(self) -> str:
        return admin_url(self.port)

    def database_url(self, name: str) -> str:
        return with_database(self.server_url, name)

    def stop(self) -> None:
        stop_postgres(self.settings)

    async def start(self) -> None:
        """Start it again on the same port (the ledger's URLs name it)."""
        proc = start_postgres(self.settings)
        assert proc.port == self.port, (proc.port, self.port)
        await wait_postgres_ready(proc)


@asynccontextmanager
async def private_postgres(directory: Path) -> AsyncIterator[PrivatePostgres]:
    """A :class:`PrivatePostgres` with its data under ``directory``, stopped after the block."""
    settings = _private_settings(directory)
    proc = start_postgres(settings)
    try:
        await wait_postgres_ready(proc)
        yield PrivatePostgres(settings, proc.port)
    finally:
        stop_postgres(settings)


@dataclass
class PrivateKafka:
    """A single Kafka broker of one test, which it may stop and start (the session's
    shared broker is never stopped)."""

    settings: Settings
    lib: Path
    process: KafkaProcess

    @property
    def bootstrap(self) -> str:
        return self.process.bootstrap

    def stop(self) -> None:
        stop_kafka(self.process.pid, kafka_paths(self.settings))

    async def start(self) -> None:
        """Start it again on the same port (the ledger's settings name it)."""
        process = start_kafka(self.settings, self.lib)
        assert process.port == self.process.port, (process.port, self.process.port)
        self.process = process
        await wait_kafka_ready(process)


@asynccontextmanager
async def private_kafka(directory: Path) -> AsyncIterator[PrivateKafka]:
    """A :class:`PrivateKafka` with its data under ``directory``, stopped after the block."""
    settings = _private_settings(directory)
    lib = ensure_kafka_jars(settings)
    process = start_kafka(settings, lib)
    broker = PrivateKafka(settings, lib, process)
    try:
        await wait_kafka_ready(process)
        yield broker
    finally:
        broker.stop()
