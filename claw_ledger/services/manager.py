"""Start, stop and inspect the local Kafka broker and PostgreSQL server.

``services_up`` starts what is not given in the settings (a given Kafka
bootstrap or database URL is used as is, nothing is started for it), waits
until each server answers a real client call, creates the ``claw_ledger``
database and the ledger's topics, and records endpoints and pids in
``<state_dir>/services.json``. It is idempotent: servers that already run are
reused. ``services_down`` stops them gracefully. The sync functions may be
called from inside a running event loop (they then run in a worker thread);
async code can await the ``*_async`` variants.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import asyncpg
import psutil

from claw_ledger.config import Endpoints, Settings, read_services_file
from claw_ledger.db_roles import role_urls
from claw_ledger.services import kafka as kafka_mod
from claw_ledger.services import postgres as pg_mod
from claw_ledger.services.kafka import ensure_topics
from claw_ledger.services.process import file_lock, pid_alive, process_matches
from claw_ledger.topics import topics_for

__all__ = [
    "ServiceState",
    "ServicesStatus",
    "ensure_topics",
    "services_down",
    "services_down_async",
    "services_status",
    "services_status_async",
    "services_up",
    "services_up_async",
]

State = Literal["up", "down", "unresponsive", "external", "unreachable"]
Step = Callable[[str], None]
T = TypeVar("T")

KAFKA_READY_TIMEOUT = 120.0
POSTGRES_READY_TIMEOUT = 60.0


def _noop(_: str) -> None:
    return None


@dataclass(frozen=True)
class ServiceState:
    """One server as seen by ``status``.

    ``state``: ``up`` (ours, answering), ``down`` (ours, not running),
    ``unresponsive`` (ours, running but not answering), ``external`` (given in
    the settings, answering), ``unreachable`` (given, not answering).
    """

    name: str
    state: State
    endpoint: str | None
    pid: int | None
    managed: bool

    @property
    def ok(self) -> bool:
        return self.state in ("up", "external")


@dataclass(frozen=True)
class ServicesStatus:
    services: tuple[ServiceState, ...]

    @property
    def all_up(self) -> bool:
        return all(s.ok for s in self.services)

    def to_json(self) -> dict[str, Any]:
        return {
            "all_up": self.all_up,
            "services": [asdict(s) | {"ok": s.ok} for s in self.services],
        }


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion, also when called from inside a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _lock_path(settings: Settings) -> Path:
    return settings.state_dir / ".services.lock"


def _find_kafka_pid(settings: Settings, record: dict[str, Any] | None) -> int | None:
    """The pid of this state dir's broker: the recorded one, else a scan for its config."""
    paths = kafka_mod.kafka_paths(settings)
    needle = str(paths.properties)
    entry = (record or {}).get("kafka")
    if isinstance(entry, dict):
        pid = entry.get("pid")
        if isinstance(pid, int) and process_matches(pid, needle):
            return pid
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if kafka_mod.MAIN_CLASS in cmdline and needle in cmdline and pid_alive(proc.info["pid"]):
            found: int = proc.info["pid"]
            return found
    return None


def _recorded_kafka(
    settings: Settings, record: dict[str, Any] | None
) -> kafka_mod.KafkaProcess | None:
    pid = _find_kafka_pid(settings, record)
    if pid is None:
        return None
    paths = kafka_mod.kafka_paths(settings)
    try:
        ports = json.loads(paths.ports_file.read_text(encoding="utf-8"))
        port, cport = int(ports["broker"]), int(ports["controller"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return kafka_mod.KafkaProcess(
        pid=pid, port=port, controller_port=cport, version=settings.kafka_version, paths=paths
    )


def _write_record(
    settings: Settings,
    kafka: kafka_mod.KafkaProcess | None,
    postgres: pg_mod.PostgresProcess | None,
) -> None:
    record: dict[str, Any] = {"format": 1, "updated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if kafka is not None:
        record["kafka"] = {
            "managed": True,
            "bootstrap": kafka.bootstrap,
            "port": kafka.port,
            "controller_port": kafka.controller_port,
            "pid": kafka.pid,
            "version": kafka.version,
            "config": str(kafka.paths.properties),
            "log": str(kafka.paths.broker_log),
        }
    if postgres is not None:
        # the owner's URL is for migrations; the processor and queries use these (ADR 0013)
        writer_url, reader_url = role_urls(settings.state_dir, postgres.url)
        record["postgres"] = {
            "managed": True,
            "url": postgres.url,
            "writer_url": writer_url,
            "reader_url": reader_url,
            "port": postgres.port,
            "pid": postgres.pid,
            "data_dir": str(postgres.data_dir),
            "log": str(postgres.log),
        }
    path = settings.services_file
    tmp = path.with_suffix(".json.tmp")
    # 0600: the role URLs hold passwords
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(record, indent=2) + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


async def services_up_async(settings: Settings, *, on_step: Step = _noop) -> Endpoints:
    """Async form of :func:`services_up`."""
    if settings.kafka_bootstrap and settings.database_url:
        return Endpoints(settings.kafka_bootstrap, settings.database_url)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(_lock_path(settings)):
        return await _up_locked(settings, on_step)


async def _up_locked(settings: Settings, on_step: Step) -> Endpoints:
    record = read_services_file(settings.state_dir)
    started_kafka: kafka_mod.KafkaProcess | None = None
    started_pg = False
    kafka: kafka_mod.KafkaProcess | None = None
    postgres: pg_mod.PostgresProcess | None = None
    try:
        waits: list[Coroutine[Any, Any, None]] = []
        if not settings.kafka_bootstrap:
            kafka = _recorded_kafka(settings, record)
            if kafka is None:
                lib = kafka_mod.ensure_kafka_jars(settings, on_step=on_step)
                kafka = started_kafka = kafka_mod.start_kafka(settings, lib, on_step=on_step)
            waits.append(kafka_mod.wait_kafka_ready(kafka, timeout=KAFKA_READY_TIMEOUT))
        if not settings.database_url:
            postgres = pg_mod.running_postgres(settings)
            if postgres is None:
                postgres = pg_mod.start_postgres(settings, on_step=on_step)
                started_pg = True
            waits.append(pg_mod.wait_postgres_ready(postgres, timeout=POSTGRES_READY_TIMEOUT))
        on_step("Waiting for the servers to answer")
        await asyncio.gather(*waits)
        if postgres is not None:
            await pg_mod.create_database(pg_mod.admin_url(postgres.port), pg_mod.DATABASE)
        if kafka is not None:
            on_step("Creating the ledger topics")
            await ensure_topics(kafka.bootstrap, topics_for(settings).all, settings.partitions)
        _write_record(settings, kafka, postgres)
    except BaseException:
        if started_kafka is not None:
            kafka_mod.stop_kafka(started_kafka.pid, started_kafka.paths)
        if started_pg:
            pg_mod.stop_postgres(settings)
        raise
    writer_url = reader_url = None
    if postgres is not None:
        writer_url, reader_url = role_urls(settings.state_dir, postgres.url)
    return Endpoints(
        kafka_bootstrap=settings.kafka_bootstrap or (kafka.bootstrap if kafka else ""),
        database_url=settings.database_url or (postgres.url if postgres else ""),
        writer_url=writer_url,
        reader_url=reader_url,
    )


def services_up(settings: Settings, *, on_step: Step = _noop) -> Endpoints:
    """Start (or reuse) the local servers that the settings do not point at; return endpoints.

    ``on_step`` receives a short message before each long step (for a spinner).
    Raises ServiceError (with the server's last log lines) or ConfigError.
    """
    return _run(services_up_async(settings, on_step=on_step))


async def services_down_async(settings: Settings) -> list[str]:
    """Async form of :func:`services_down`."""
    if not settings.state_dir.is_dir():
        return []
    stopped: list[str] = []
    with file_lock(_lock_path(settings)):
        record = read_services_file(settings.state_dir)
        pid = _find_kafka_pid(settings, record)
        if pid is not None:
            await asyncio.to_thread(kafka_mod.stop_kafka, pid, kafka_mod.kafka_paths(settings))
            stopped.append("kafka")
        if await asyncio.to_thread(pg_mod.stop_postgres, settings):
            stopped.append("postgres")
        settings.services_file.unlink(missing_ok=True)
    return stopped


def services_down(settings: Settings) -> list[str]:
    """Stop this state dir's broker (SIGTERM, wait, SIGKILL) and server (pg_ctl stop -m fast).

    Never touches servers given in the settings. Returns the names stopped.
    """
    return _run(services_down_async(settings))


async def _postgres_answers(url: str, timeout: float = 5.0) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=timeout)
    except (OSError, asyncpg.PostgresError, TimeoutError, ValueError):
        return False
    try:
        await conn.fetchval("SELECT 1")
        return True
    except (OSError, asyncpg.PostgresError):
        return False
    finally:
        with contextlib.suppress(Exception):
            await conn.close()


async def services_status_async(settings: Settings) -> ServicesStatus:
    """Async form of :func:`services_status`."""
    record = read_services_file(settings.state_dir) if settings.state_dir.is_dir() else None
    states: list[ServiceState] = []

    if settings.kafka_bootstrap:
        ok = await kafka_mod.kafka_answers(settings.kafka_bootstrap)
        states.append(
            ServiceState(
                "kafka",
                "external" if ok else "unreachable",
                settings.kafka_bootstrap,
                None,
                managed=False,
            )
        )
    else:
        kafka = _recorded_kafka(settings, record)
        if kafka is None:
            states.append(ServiceState("kafka", "down", None, None, managed=True))
        else:
            ok = await kafka_mod.kafka_answers(kafka.bootstrap)
            states.append(
                ServiceState(
                    "kafka",
                    "up" if ok else "unresponsive",
                    kafka.bootstrap,
                    kafka.pid,
                    managed=True,
                )
            )

    if settings.database_url:
        ok = await _postgres_answers(settings.database_url)
        states.append(
            ServiceState(
                "postgres",
                "external" if ok else "unreachable",
                settings.database_url,
                None,
                managed=False,
            )
        )
    else:
        postgres = pg_mod.running_postgres(settings)
        if postgres is None:
            states.append(ServiceState("postgres", "down", None, None, managed=True))
        else:
            ok = await _postgres_answers(pg_mod.admin_url(postgres.port))
            states.append(
                ServiceState(
                    "postgres",
                    "up" if ok else "unresponsive",
                    postgres.url,
                    postgres.pid,
                    managed=True,
                )
            )
    return ServicesStatus(tuple(states))


def services_status(settings: Settings) -> ServicesStatus:
    """Which servers run and answer; ``.all_up`` is True when every one does."""
    return _run(services_status_async(settings))
