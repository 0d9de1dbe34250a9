"""Kafka admin calls of the service runners: topics, liveness, partition leaders and ISRs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from claw_ledger.services.process import port_open
from ledger.errors import ServiceError

__all__ = [
    "HOST",
    "PartitionState",
    "describe_partitions",
    "ensure_topics",
    "grow_topics",
    "kafka_answers",
    "replication_for",
    "wait_in_sync",
]

HOST = "127.0.0.1"


@dataclass(frozen=True)
class PartitionState:
    """Leader, replicas and in-sync replicas of one topic partition (-1: no leader)."""

    topic: str
    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]

    @property
    def name(self) -> str:
        return f"{self.topic}-{self.partition}"

    @property
    def fully_in_sync(self) -> bool:
        return self.leader >= 0 and set(self.isr) == set(self.replicas)


def replication_for(brokers: int) -> tuple[int, int]:
    """(replication factor, min.insync.replicas) for a cluster of ``brokers`` nodes.

    Three copies at most; a write is acknowledged by all in-sync copies and
    needs all but one of them, so one node may be lost without losing a write
    or stopping producers.
    """
    factor = max(1, min(brokers, 3))
    return factor, max(1, factor - 1)


class _DropConnectErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Unable connect to")


@contextlib.contextmanager
def _quiet_down_nodes() -> Iterator[None]:
    """Silence aiokafka's per-attempt ERROR lines for nodes that are down.

    Probing a cluster while a node starts or is stopped for a drill is
    expected to meet closed ports; the callers report the outcome themselves.
    """
    logger = logging.getLogger("aiokafka")
    quiet = _DropConnectErrors()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


@contextlib.asynccontextmanager
async def _started_admin(bootstrap: str, timeout: float) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client whose whole use must end within ``timeout``; closed after."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=max(1000, int(timeout * 1000))
    )
    try:
        with _quiet_down_nodes():
            async with asyncio.timeout(timeout):
                await admin.start()
                yield admin
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


async def kafka_answers(bootstrap: str, *, timeout: float = 5.0) -> bool:
    """True when a broker at ``bootstrap`` answers a describe-cluster request."""
    listening = False
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        if not (host and port.isdigit()) or port_open(int(port), host.strip("[]"), timeout=1.0):
            listening = True
            break
    if not listening:
        return False  # nothing listens yet: skip the client and its connection-error logs
    try:
        async with _started_admin(bootstrap, timeout) as admin:
            cluster = await admin.describe_cluster()
            await admin.list_topics()
        return bool(cluster.get("brokers"))
    except (TimeoutError, KafkaError, OSError):
        return False


async def ensure_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int,
    *,
    replication_factor: int | None = None,
    timeout: float = 30.0,
) -> list[str]:
    """Create the topics that do not exist yet; return the names created.

    ``replication_factor`` None: from the number of brokers in the cluster
    (:func:`replication_for`), with ``min.insync.replicas`` one below it.
    Idempotent: existing topics (TopicAlreadyExists) are left as they are.
    Retries transient errors (a broker still electing leaders) until ``timeout``.
    Returns once every partition of the topics it created has a leader that
    serves it: a producer that starts at once is otherwise answered
    ``NOT_LEADER_OR_FOLLOWER`` by a broker that has not applied the new topic
    yet, and retries.
    """
    wanted = list(dict.fromkeys(names))
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [n for n in wanted if n not in existing]
            if not missing:
                return []
            if replication_factor is None:
                cluster = await admin.describe_cluster()
                factor, min_isr = replication_for(len(cluster.get("brokers") or ()))
            else:
                factor, min_isr = replication_factor, max(1, replication_factor - 1)
            configs = {"min.insync.replicas": str(min_isr)}
            response = await admin.create_topics(
                [
                    NewTopic(
                        name=n,
                        num_partitions=partitions,
                        replication_factor=factor,
                        topic_configs=configs,
                    )
                    for n in missing
                ]
            )
            created: list[str] = []
            errors: list[str] = []
            for topic, code, message in _topic_errors(response):
                if code == 0:
                    created.append(topic)
                elif code != TopicAlreadyExistsError.errno:
                    errors.append(f"{topic}: error {code} {message or ''}".strip())
            if not errors:
                if created:
                    remaining = max(1.0, deadline - time.monotonic())
                    await _wait_leading(bootstrap, created, partitions, remaining)
                return created
            last = ServiceError("creating topics failed: " + "; ".join(errors))
        except TopicAlreadyExistsError:
            return []
        except (KafkaError, OSError) as exc:
            last = exc
        finally:
            with contextlib.suppress(Exception):
                await admin.close()
        if time.monotonic() > deadline:
            raise ServiceError(
                f"could not create topics {wanted} on {bootstrap}: {last}",
                hint="check that the broker runs: `claw-ledger services status`",
            )
        await asyncio.sleep(0.5)


async def grow_topics(
    bootstrap: str, names: Iterable[str], partitions: int, *, timeout: float = 30.0
) -> dict[str, tuple[int, int]]:
    """Give every existing topic of ``names`` at least ``partitions`` partitions,
    one topic at a time in the order given; never fewer (Kafka cannot remove a
    partition). Returns each topic's partition count before and after; a
    missing topic is left out. Returns once every new partition has a leader
    that serves it."""
    wanted = list(dict.fromkeys(names))
    counts: dict[str, tuple[int, int]] = {}
    try:
        async with _started_admin(bootstrap, timeout) as admin:
            for topic in await admin.describe_topics(wanted):
                if not topic.get("error_code"):
                    before = len(topic.get("partitions", []))
                    counts[str(topic["topic"])] = (before, max(before, partitions))
            for name in wanted:
                before, after = counts.get(name, (0, 0))
                if after > before:  # a refusal raises the error of its code
                    await admin.create_partitions({name: NewPartitions(after)})
    except (TimeoutError, KafkaError, OSError) as exc:
        raise ServiceError(
            f"could not grow topics {wanted} on {bootstrap}: {exc}",
            hint="check that the broker runs: `claw-ledger services status`",
        ) from exc
    grown = [name for name, (before, after) in counts.items() if after > before]
    if grown:
        await _wait_leading(bootstrap, grown, partitions, timeout)
    return counts


async def _wait_leading(bootstrap: str, topics: list[str], partitions: int, timeout: float) -> None:
    """Until every partition of ``topics`` answers a ListOffsets at its leader.

    The metadata names a new partition's leader a moment before that broker
    serves it (a first produce to each of 8 new partitions was refused in every
    one of six test runs that waited for the metadata alone), so the metadata is
    not the test; aiokafka retries ListOffsets on ``NOT_LEADER_OR_FOLLOWER``
    until it is answered."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, request_timeout_ms=max(1000, int(timeout * 1000))
    )
    try:
        async with asyncio.timeout(timeout):
            await consumer.start()
            await consumer.end_offsets(
                [TopicPartition(t, p) for t in topics for p in range(partitions)]
            )
    except (TimeoutError, KafkaError, OSError) as exc:
        raise ServiceError(
            f"the new topics {topics} have no serving leader within {timeout:.0f}s: {exc}",
            hint="check the broker: `claw-ledger services status`",
        ) from exc
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()


def _topic_errors(response: object) -> list[tuple[str, int, str | None]]:
    """(topic, error_code, message) from a CreateTopics response of any version."""
    rows: list[tuple[str, int, str | None]] = []
    for item in getattr(response, "topic_errors", []):
        message = item[2] if len(item) > 2 else None
        rows.append((str(item[0]), int(item[1]), message))
    return rows


async def describe_partitions(
    bootstrap: str, topics: Iterable[str], *, timeout: float = 10.0
) -> list[PartitionState]:
    """Leader, replicas and ISR of every partition of ``topics`` (missing topics: none)."""
    async with _started_admin(bootstrap, timeout) as admin:
        described = await admin.describe_topics(list(topics))
    rows: list[PartitionState] = []
    for topic in described:
        if topic.get("error_code"):
            continue
        for part in topic.get("partitions", []):
            rows.append(
                PartitionState(
                    topic=str(topic["topic"]),
                    partition=int(part["partition"]),
                    leader=int(part["leader"]),
                    replicas=tuple(int(r) for r in part["replicas"]),
                    isr=tuple(int(r) for r in part["isr"]),
                )
            )
    return sorted(rows, key=lambda row: (row.topic, row.partition))


async def wait_in_sync(
    bootstrap: str, topics: Iterable[str], *, timeout: float = 90.0, leaders_only: bool = False
) -> list[PartitionState]:
    """Wait until every partition of ``topics`` has a leader and all replicas in sync.

    ``leaders_only``: a leader is enough (the topics are usable; replicas may lag).
    """
    names = list(topics)
    deadline = time.monotonic() + timeout
    rows: list[PartitionState] = []
    while True:
        with contextlib.suppress(KafkaError, OSError, TimeoutError):
            rows = await describe_partitions(bootstrap, names)
            names_seen = {row.topic for row in rows}
            ready = [row.leader >= 0 if leaders_only else row.fully_in_sync for row in rows]
            if rows and names_seen == set(names) and all(ready):
                return rows
        if time.monotonic() > deadline:
            lagging = [f"{r.name} isr={list(r.isr)}" for r in rows if not r.fully_in_sync]
            raise ServiceError(
                f"partitions not ready within {timeout:.0f}s: {', '.join(lagging) or names}"
            )
        await asyncio.sleep(0.5)
