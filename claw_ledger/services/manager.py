"""Start, stop and inspect the local Kafka broker and PostgreSQL server.

``services_up`` starts what is not given in the settings (a given Kafka
bootstrap or database URL is used as is, nothing is started for it), waits
until each server answers a real client call, creates the ``claw_ledger``
database and the ledger's topics, and records endpoints and pids in
``<state_dir>/services.json``. It is idempotent: servers that already run are
reused. ``services_down`` stops them gracefully. With ``Settings.brokers`` > 1
Kafka is a replicated cluster of combined KRaft nodes (``cluster.py``,
ADR 0012) whose nodes ``node_start`` / ``node_stop`` / ``node_kill`` drive
one at a time for failure drills. The sync functions may be
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
from collections.abc import Coroutine
from dataclasses import asdict, dataclass
from typing import Any, Literal, TypeVar

import asyncpg
import psutil

from claw_ledger.config import Endpoints, Settings, read_services_file
from claw_ledger.db_roles import role_urls
from claw_ledger.services import cluster as cluster_mod
from claw_ledger.services import kafka as kafka_mod
from claw_ledger.services import postgres as pg_mod
from claw_ledger.services.admin import wait_in_sync
from claw_ledger.services.cluster import ClusterLayout
from claw_ledger.services.kafka import ensure_topics
from claw_ledger.services.nodes import (
    NodeState,
    cluster_status,
    lock_path,
    node_start_async,
    node_stop_async,
    recorded_node_pid,
)
from claw_ledger.services.process import Step, file_lock, no_step, pid_alive, process_matches
from claw_ledger.topics import topic_names
from ledger.errors import ConfigError

__all__ = [
    "NodeState",
    "ServiceState",
    "ServicesStatus",
    "ensure_topics",
    "node_kill",
    "node_start",
    "node_stop",
    "services_down",
    "services_down_async",
    "services_status",
    "services_status_async",
    "services_up",
    "services_up_async",
]

State = Literal["up", "down", "unresponsive", "external", "unreachable", "degraded"]
T = TypeVar("T")

KAFKA_READY_TIMEOUT = 120.0
CLUSTER_STOP_TIMEOUT = 20.0
POSTGRES_READY_TIMEOUT = 60.0


@dataclass(frozen=True)
class ServiceState:
    """One server as seen by ``status``.

    ``state``: ``up`` (ours, answering), ``down`` (ours, not running),
    ``unresponsive`` (ours, running but not answering), ``external`` (given in
    the settings, answering), ``unreachable`` (given, not answering),
    ``degraded`` (our cluster answers, but a node is down or a replica lags).
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
    kafka_nodes: tuple[NodeState, ...] = ()

    @property
    def all_up(self) -> bool:
        return all(s.ok for s in self.services)

    def to_json(self) -> dict[str, Any]:
        return {
            "all_up": self.all_up,
            "services": [asdict(s) | {"ok": s.ok} for s in self.services],
            "kafka_nodes": [asdict(n) for n in self.kafka_nodes],
        }


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion, also when called from inside a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


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


def _kafka_record(kafka: kafka_mod.KafkaProcess) -> dict[str, Any]:
    return {
        "managed": True,
        "bootstrap": kafka.bootstrap,
        "port": kafka.port,
        "controller_port": kafka.controller_port,
        "pid": kafka.pid,
        "version": kafka.version,
        "config": str(kafka.paths.properties),
        "log": str(kafka.paths.broker_log),
    }


def _cluster_record(layout: ClusterLayout, nodes: list[kafka_mod.KafkaProcess]) -> dict[str, Any]:
    factor, min_isr = layout.replication
    return {
        "managed": True,
        "bootstrap": layout.bootstrap,
        "brokers": len(layout.nodes),
        "cluster_id": layout.cluster_id,
        "replication_factor": factor,
        "min_insync_replicas": min_isr,
        "version": nodes[0].version,
        "nodes": [
            _kafka_record(node) | {"node_id": node.node_id, "roles": "broker,controller"}
            for node in nodes
        ],
    }


def _write_record(settings: Settings, record: dict[str, Any]) -> None:
    record = {"format": 1, "updated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")} | record
    path = settings.services_file
    tmp = path.with_suffix(".json.tmp")
    # 0600: the role URLs hold passwords
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(record, indent=2) + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _postgres_record(settings: Settings, postgres: pg_mod.PostgresProcess) -> dict[str, Any]:
    # the owner's URL is for migrations; the processor and queries use the roles' (ADR 0013)
    writer_url, reader_url = role_urls(settings.state_dir, postgres.url)
    return {
        "managed": True,
        "url": postgres.url,
        "writer_url": writer_url,
        "reader_url": reader_url,
        "port": postgres.port,
        "pid": postgres.pid,
        "data_dir": str(postgres.data_dir),
        "log": str(postgres.log),
    }


def _wanted_layout(settings: Settings, record: dict[str, Any] | None) -> ClusterLayout | None:
    """The cluster this state dir runs (created when asked for), or None for one broker.

    A recorded cluster is used unless ``brokers`` was set to another size:
    the node count of a formatted quorum cannot change.
    """
    layout = cluster_mod.load_layout(settings)
    explicit = settings.sources.get("brokers", "default") != "default"
    root = cluster_mod.cluster_root(settings)
    if layout is not None:
        if explicit and settings.brokers != len(layout.nodes):
            raise ConfigError(
                f"{root} holds a {len(layout.nodes)}-node Kafka cluster; "
                f"--brokers {settings.brokers} cannot reshape it",
                hint=f"use --brokers {len(layout.nodes)}, or `claw-ledger services down` and "
                f"remove {root / 'cluster.json'} and {root}/node-* (their data is lost)",
            )
        return layout
    if settings.brokers == 1:
        return None
    if _find_kafka_pid(settings, record) is not None:
        raise ConfigError(
            f"a single Kafka broker runs in {settings.state_dir}",
            hint="stop it first: `claw-ledger services down`",
        )
    return cluster_mod.create_layout(settings, settings.brokers)


async def services_up_async(settings: Settings, *, on_step: Step = no_step) -> Endpoints:
    """Async form of :func:`services_up`."""
    if settings.kafka_bootstrap and settings.database_url:
        return Endpoints(settings.kafka_bootstrap, settings.database_url)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(lock_path(settings)):
        return await _up_locked(settings, on_step)


async def _cluster_nodes(
    settings: Settings,
    layout: ClusterLayout,
    record: dict[str, Any] | None,
    started: list[kafka_mod.KafkaProcess],
    on_step: Step,
) -> list[kafka_mod.KafkaProcess]:
    """Every node of ``layout``: the running ones as they are, the others started.

    Stopped nodes are formatted and launched in parallel: each costs a JVM
    start, and none can finish starting before a majority of voters runs.
    """
    missing: list[int] = []
    pids: dict[int, int] = {}
    for node in layout.nodes:
        recorded = recorded_node_pid(record, node.node_id)
        pid = cluster_mod.find_node_pid(settings, node.node_id, recorded)
        if pid is None:
            missing.append(node.node_id)
        else:
            pids[node.node_id] = pid
    if missing:
        lib = kafka_mod.ensure_kafka_jars(settings, on_step=on_step)
        results = await asyncio.gather(
            *(
                asyncio.to_thread(
                    cluster_mod.start_node, settings, lib, layout, node_id, on_step=on_step
                )
                for node_id in missing
            ),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, kafka_mod.KafkaProcess):
                started.append(result)
                pids[result.node_id] = result.pid
        for result in results:
            if isinstance(result, BaseException):
                raise result
    return [
        cluster_mod.node_process(settings, layout, node.node_id, pids[node.node_id])
        for node in layout.nodes
    ]


async def _up_locked(settings: Settings, on_step: Step) -> Endpoints:
    record = read_services_file(settings.state_dir)
    started: list[kafka_mod.KafkaProcess] = []
    started_pg = False
    nodes: list[kafka_mod.KafkaProcess] = []
    layout: ClusterLayout | None = None
    postgres: pg_mod.PostgresProcess | None = None
    waits: list[Coroutine[Any, Any, None]] = []
    try:
        if not settings.kafka_bootstrap:
            layout = _wanted_layout(settings, record)
            if layout is not None:
                nodes = await _cluster_nodes(settings, layout, record, started, on_step)
            else:
                kafka = _recorded_kafka(settings, record)
                if kafka is None:
                    lib = kafka_mod.ensure_kafka_jars(settings, on_step=on_step)
                    kafka = kafka_mod.start_kafka(settings, lib, on_step=on_step)
                    started.append(kafka)
                nodes.append(kafka)
            waits.extend(kafka_mod.wait_kafka_ready(n, timeout=KAFKA_READY_TIMEOUT) for n in nodes)
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
        new_record: dict[str, Any] = {}
        if nodes:
            on_step("Creating the ledger topics")
            await ensure_topics(
                layout.bootstrap if layout else nodes[0].bootstrap,
                topic_names(settings.topic_prefix).all,
                settings.partitions,
                replication_factor=layout.replication[0] if layout else 1,
                timeout=KAFKA_READY_TIMEOUT if layout else 30.0,
            )
            if layout is not None:
                # created topics reach every broker's metadata a moment later
                await wait_in_sync(
                    layout.bootstrap,
                    topic_names(settings.topic_prefix).all,
                    timeout=KAFKA_READY_TIMEOUT,
                    leaders_only=True,
                )
            new_record["kafka"] = (
                _cluster_record(layout, nodes) if layout else _kafka_record(nodes[0])
            )
        if postgres is not None:
            new_record["postgres"] = _postgres_record(settings, postgres)
        _write_record(settings, new_record)
    except BaseException:
        for wait in waits:
            wait.close()  # those not awaited yet (a later start failed first)
        for proc in started:
            await asyncio.to_thread(kafka_mod.stop_kafka, proc.pid, proc.paths, timeout=10)
        if started_pg:
            pg_mod.stop_postgres(settings)
        raise
    writer_url = reader_url = None
    if postgres is not None:
        writer_url, reader_url = role_urls(settings.state_dir, postgres.url)
    return Endpoints(
        kafka_bootstrap=settings.kafka_bootstrap
        or str(new_record.get("kafka", {}).get("bootstrap", "")),
        database_url=settings.database_url or (postgres.url if postgres else ""),
        writer_url=writer_url,
        reader_url=reader_url,
    )


def services_up(settings: Settings, *, on_step: Step = no_step) -> Endpoints:
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
    with file_lock(lock_path(settings)):
        record = read_services_file(settings.state_dir)
        pid = _find_kafka_pid(settings, record)
        if pid is not None:
            await asyncio.to_thread(kafka_mod.stop_kafka, pid, kafka_mod.kafka_paths(settings))
            stopped.append("kafka")
        layout = cluster_mod.load_layout(settings)
        if layout is not None and await _stop_cluster(settings, layout, record):
            stopped.append("kafka")
        if await asyncio.to_thread(pg_mod.stop_postgres, settings):
            stopped.append("postgres")
        settings.services_file.unlink(missing_ok=True)
    return list(dict.fromkeys(stopped))


async def _stop_cluster(
    settings: Settings, layout: ClusterLayout, record: dict[str, Any] | None
) -> bool:
    """Stop every running node at once; True when one ran.

    All at once: one by one, the last nodes cannot finish their controlled
    shutdown once the quorum has lost its majority. Stragglers are killed
    after CLUSTER_STOP_TIMEOUT (their logs are recovered on the next start).
    """
    running = {
        node.node_id: pid
        for node in layout.nodes
        if (
            pid := cluster_mod.find_node_pid(
                settings, node.node_id, recorded_node_pid(record, node.node_id)
            )
        )
        is not None
    }
    await asyncio.gather(
        *(
            asyncio.to_thread(
                cluster_mod.stop_node, settings, node_id, pid, timeout=CLUSTER_STOP_TIMEOUT
            )
            for node_id, pid in running.items()
        )
    )
    return bool(running)


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


def _answered(name: str, ok: bool, endpoint: str, pid: int | None) -> ServiceState:
    """A server given in the settings (no pid of ours) or one we started, by whether it answers."""
    if pid is None:
        return ServiceState(name, "external" if ok else "unreachable", endpoint, pid, managed=False)
    return ServiceState(name, "up" if ok else "unresponsive", endpoint, pid, managed=True)


async def services_status_async(settings: Settings) -> ServicesStatus:
    """Async form of :func:`services_status`."""
    record = read_services_file(settings.state_dir) if settings.state_dir.is_dir() else None
    states: list[ServiceState] = []
    nodes: tuple[NodeState, ...] = ()

    if settings.kafka_bootstrap:
        ok = await kafka_mod.kafka_answers(settings.kafka_bootstrap)
        states.append(_answered("kafka", ok, settings.kafka_bootstrap, None))
    elif (layout := cluster_mod.load_layout(settings)) is not None:
        names = topic_names(settings.topic_prefix).all
        overall, nodes = await cluster_status(settings, layout, record, names)
        states.append(ServiceState("kafka", overall, layout.bootstrap, None, managed=True))
    else:
        kafka = _recorded_kafka(settings, record)
        if kafka is None:
            states.append(ServiceState("kafka", "down", None, None, managed=True))
        else:
            ok = await kafka_mod.kafka_answers(kafka.bootstrap)
            states.append(_answered("kafka", ok, kafka.bootstrap, kafka.pid))

    if settings.database_url:
        ok = await _postgres_answers(settings.database_url)
        states.append(_answered("postgres", ok, settings.database_url, None))
    else:
        postgres = pg_mod.running_postgres(settings)
        if postgres is None:
            states.append(ServiceState("postgres", "down", None, None, managed=True))
        else:
            ok = await _postgres_answers(pg_mod.admin_url(postgres.port))
            states.append(_answered("postgres", ok, postgres.url, postgres.pid))
    return ServicesStatus(tuple(states), nodes)


def services_status(settings: Settings) -> ServicesStatus:
    """Which servers run and answer; ``.all_up`` is True when every one does."""
    return _run(services_status_async(settings))


def node_start(settings: Settings, node_id: int, *, on_step: Step = no_step) -> tuple[int, bool]:
    """Start one node of this state dir's cluster; wait until it answers.

    Returns (pid, already running). ConfigError when there is no cluster or node.
    """
    return _run(node_start_async(settings, node_id, on_step=on_step))


def node_stop(settings: Settings, node_id: int) -> int | None:
    """Stop one node gracefully (SIGTERM: controlled shutdown). Its pid, None if it was down."""
    return _run(node_stop_async(settings, node_id))


def node_kill(settings: Settings, node_id: int) -> int | None:
    """SIGKILL one node, as a crash or power loss would. Its pid, None if it was down."""
    return _run(node_stop_async(settings, node_id, kill=True))
