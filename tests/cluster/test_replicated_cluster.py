"""A real three-node KRaft cluster loses a node while a stream is produced: nothing is lost.

One cluster per module (``services up --brokers 3`` in a temporary state
dir). Each drill produces N keyed events through the SDK producer
(``acks=all``, idempotent) while a partition leader is killed or stopped,
reads the topic back with a ``read_committed`` consumer, and checks every
event arrived exactly once and in order per key; then the node comes back
and every replica is in sync again. Then the rebalancing drills of
tests/rebalance_drills.py run on the cluster (a processor joining the group,
one SIGKILLed), and last the real verifying processor runs against the
cluster while an ingress leader is killed.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from click.testing import CliRunner

from claw_ledger.cli import cli
from claw_ledger.config import Settings, load_settings
from claw_ledger.services.admin import describe_partitions, ensure_topics, wait_in_sync
from claw_ledger.services.cluster import ClusterLayout, load_layout
from claw_ledger.services.manager import (
    services_down,
    services_status_async,
    services_up,
    services_up_async,
)
from claw_ledger.services.nodes import node_start_async, node_stop_async
from claw_ledger.topics import topic_names
from ledger.chain import verify_chain
from ledger.crypto import KeyPair
from ledger.roles import Role
from producers.sdk import LedgerProducer
from tests.fixtures_ledger import recorded_halts, send_halts, start_ledger, stored_chains
from tests.rebalance_drills import a_processor_dies_mid_stream, a_processor_joins_mid_stream

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

N_EVENTS = 2000
STREAMS = 40
PARTITIONS = 4
ROUNDS = 40  # the stream is sent in rounds so that the failure lands in its middle


@dataclass(frozen=True)
class Cluster:
    settings: Settings
    layout: ClusterLayout


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[Cluster]:
    state_dir: Path = tmp_path_factory.mktemp("cluster") / "state"
    settings = load_settings(
        state_dir=state_dir,
        brokers=3,
        # the session's Postgres: a given URL starts no server, and `services status`
        # finds it answering
        database_url=database_url,
        cache_dir=os.environ.get("CLAW_LEDGER_CACHE_DIR") or None,
        env={k: v for k, v in os.environ.items() if k in ("HOME", "XDG_CACHE_HOME")},
        cwd=state_dir.parent,
    )
    try:
        services_up(settings)
        layout = load_layout(settings)
        assert layout is not None and len(layout.nodes) == 3
        yield Cluster(settings, layout)
    finally:
        services_down(settings)


async def _topic_config(bootstrap: str, topic: str, name: str) -> str:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        # a topic created a moment ago may not have reached the answering broker yet
        for _ in range(40):
            [response] = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topic, configs={name: None})]
            )
            # DescribeConfigs v0+: resources[(error_code, error_message, type, name, entries)]
            entries = response.resources[0][4]
            found = [str(entry[1]) for entry in entries if entry[0] == name]
            if found:
                return found[0]
            await asyncio.sleep(0.25)
    finally:
        await admin.close()
    raise AssertionError(f"{topic} has no {name} config after 10 s")


async def _new_topic(cluster: Cluster) -> str:
    topic = f"drill-{uuid.uuid4().hex[:10]}"
    assert await ensure_topics(cluster.layout.bootstrap, [topic], PARTITIONS) == [topic]
    # a new topic reaches every broker's metadata a moment after its creation
    rows = await wait_in_sync(cluster.layout.bootstrap, [topic], timeout=30)
    assert len(rows) == PARTITIONS and all(len(row.replicas) == 3 for row in rows)
    assert await _topic_config(cluster.layout.bootstrap, topic, "min.insync.replicas") == "2"
    return topic


Failure = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


async def _produce_with_failure(bootstrap: str, topic: str, failure: Failure) -> None:
    """Send N events keyed by stream in three phases around ``failure``.

    The first half before it; the third quarter once ``failure`` has set its
    event (a node is down); the last quarter after ``failure`` has returned
    (for a restart: while the node catches up).
    """
    async with LedgerProducer(bootstrap, topic, client_id="cluster-drill") as producer:
        per_round = N_EVENTS // ROUNDS
        node_down = asyncio.Event()
        failure_task: asyncio.Task[None] | None = None
        for round_no in range(ROUNDS):
            if round_no == ROUNDS // 2:
                failure_task = asyncio.create_task(failure(node_down))
                await asyncio.wait_for(node_down.wait(), timeout=60)
            if round_no == 3 * ROUNDS // 4:
                assert failure_task is not None
                await failure_task
            futures = []
            for i in range(round_no * per_round, (round_no + 1) * per_round):
                stream = f"stream-{i % STREAMS}"
                value = json.dumps({"stream": stream, "seq": i}).encode()
                futures.append(await producer.send_raw(value, stream, str(i)))
            await asyncio.gather(*futures)  # acks=all: on the in-sync replicas
            await asyncio.sleep(0.05)


async def _read_back(bootstrap: str, topic: str) -> list[dict[str, object]]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        records: list[dict[str, object]] = []
        async with asyncio.timeout(60):
            while [tp for tp in parts if await consumer.position(tp) < ends[tp]]:
                batch = await consumer.getmany(*parts, timeout_ms=1000)
                for messages in batch.values():
                    records.extend(json.loads(m.value or b"{}") for m in messages)
        return records
    finally:
        await consumer.stop()


def _assert_exactly_once_in_order(records: list[dict[str, object]]) -> None:
    seqs = [int(str(r["seq"])) for r in records]
    counts = Counter(seqs)
    lost = set(range(N_EVENTS)) - set(counts)
    duplicated = {seq: n for seq, n in counts.items() if n > 1}
    assert not lost, f"{len(lost)} events lost, e.g. {sorted(lost)[:10]}"
    assert not duplicated, f"{len(duplicated)} events duplicated, e.g. {list(duplicated)[:10]}"
    assert len(records) == N_EVENTS
    by_stream: dict[str, list[int]] = defaultdict(list)
    for record in records:
        by_stream[str(record["stream"])].append(int(str(record["seq"])))
    assert len(by_stream) == STREAMS
    for stream, order in by_stream.items():
        assert order == sorted(order), f"{stream} out of order"


async def _leader_of(cluster: Cluster, topic: str, partition: int) -> int:
    rows = await describe_partitions(cluster.layout.bootstrap, [topic])
    leader = next(row.leader for row in rows if row.partition == partition)
    assert leader in {node.node_id for node in cluster.layout.nodes}
    return leader


async def test_ledger_and_internal_topics_are_replicated(cluster: Cluster) -> None:
    names = topic_names(cluster.settings.topic_prefix).all
    rows = await wait_in_sync(cluster.layout.bootstrap, names, timeout=60)
    assert {row.topic for row in rows} == set(names)
    assert all(len(row.replicas) == 3 and row.fully_in_sync for row in rows)
    for name in names:
        assert await _topic_config(cluster.layout.bootstrap, name, "min.insync.replicas") == "2"
    record = json.loads(cluster.settings.services_file.read_text())["kafka"]
    assert record["bootstrap"] == cluster.layout.bootstrap and len(record["nodes"]) == 3
    assert (record["replication_factor"], record["min_insync_replicas"]) == (3, 2)
    # idempotent: `services up` again reuses every running node
    pids = [node["pid"] for node in record["nodes"]]
    endpoints = await services_up_async(cluster.settings)
    assert endpoints.kafka_bootstrap == cluster.layout.bootstrap
    again = json.loads(cluster.settings.services_file.read_text())["kafka"]
    assert [node["pid"] for node in again["nodes"]] == pids
    env = {
        "CLAW_LEDGER_STATE_DIR": str(cluster.settings.state_dir),
        "CLAW_LEDGER_KAFKA": None,
        "CLAW_LEDGER_DATABASE_URL": cluster.settings.database_url,
        "CLAW_LEDGER_CONFIG": None,
        "CLAW_LEDGER_BROKERS": None,
    }
    result = CliRunner().invoke(cli, ["services", "status", "--json"], env=env)
    assert result.exit_code == 0, result.output
    nodes = json.loads(result.output)["kafka_nodes"]
    assert [(n["node_id"], n["state"], n["pid"]) for n in nodes] == [
        (i + 1, "up", pid) for i, pid in enumerate(pids)
    ]
    assert sum(len(n["leads"]) for n in nodes) == len(rows)
    # the broker defaults that internal topics (offsets, transactions) are created with
    props = (cluster.settings.state_dir / "kafka" / "node-2" / "server.properties").read_text()
    for line in (
        "offsets.topic.replication.factor=3",
        "transaction.state.log.replication.factor=3",
        "transaction.state.log.min.isr=2",
        "node.id=2",
        f"controller.quorum.voters={cluster.layout.voters}",
    ):
        assert line in props.splitlines()


async def test_leader_killed_mid_stream_loses_and_duplicates_nothing(cluster: Cluster) -> None:
    topic = await _new_topic(cluster)
    victim = await _leader_of(cluster, topic, 0)

    async def kill_leader(node_down: asyncio.Event) -> None:
        assert await node_stop_async(cluster.settings, victim, kill=True) is not None
        node_down.set()

    await _produce_with_failure(cluster.layout.bootstrap, topic, kill_leader)

    status = await services_status_async(cluster.settings)
    kafka = next(s for s in status.services if s.name == "kafka")
    assert kafka.state == "degraded" and not status.all_up
    nodes = {n.node_id: n for n in status.kafka_nodes}
    assert nodes[victim].state == "down" and nodes[victim].pid is None
    assert nodes[victim].lagging and not nodes[victim].leads
    assert all(n.state == "up" for i, n in nodes.items() if i != victim)
    assert await _leader_of(cluster, topic, 0) != victim

    _assert_exactly_once_in_order(await _read_back(cluster.layout.bootstrap, topic))

    pid, already = await node_start_async(cluster.settings, victim)
    assert pid > 0 and not already
    await _assert_back_in_sync(cluster, topic)


async def test_node_stopped_and_restarted_mid_stream(cluster: Cluster) -> None:
    topic = await _new_topic(cluster)
    victim = await _leader_of(cluster, topic, 1)

    async def bounce(node_down: asyncio.Event) -> None:
        assert await node_stop_async(cluster.settings, victim) is not None
        node_down.set()
        await asyncio.sleep(2)  # the stream runs on without the node for a while
        pid, already = await node_start_async(cluster.settings, victim)
        assert pid > 0 and not already

    await _produce_with_failure(cluster.layout.bootstrap, topic, bounce)
    _assert_exactly_once_in_order(await _read_back(cluster.layout.bootstrap, topic))
    await _assert_back_in_sync(cluster, topic)


async def _assert_back_in_sync(cluster: Cluster, topic: str) -> None:
    names = [topic, *topic_names(cluster.settings.topic_prefix).all]
    rows = await wait_in_sync(cluster.layout.bootstrap, names, timeout=120)
    assert all(len(row.isr) == 3 for row in rows)
    status = await services_status_async(cluster.settings)
    assert status.all_up, status.to_json()
    assert all(n.state == "up" and not n.lagging for n in status.kafka_nodes)


async def test_a_processor_joining_on_the_cluster_takes_partitions_exactly_once(
    cluster: Cluster, ledger_servers: Any, ledger_settings: Settings, tmp_path: Path
) -> None:
    base = replace(ledger_settings, kafka_bootstrap=cluster.layout.bootstrap)
    await a_processor_joins_mid_stream(ledger_servers, base, tmp_path)


async def test_a_processor_dying_on_the_cluster_hands_over_exactly_once(
    cluster: Cluster, ledger_servers: Any, ledger_settings: Settings, tmp_path: Path
) -> None:
    base = replace(ledger_settings, kafka_bootstrap=cluster.layout.bootstrap)
    await a_processor_dies_mid_stream(ledger_servers, base, tmp_path)


async def test_processor_carries_on_when_an_ingress_leader_dies(
    cluster: Cluster, ledger_servers: Any, ledger_settings: Settings, tmp_path: Path
) -> None:
    """``processor run`` on the cluster: a leader is killed mid-stream, the processor is not
    restarted, and the ledger holds every event once with intact chains. Runs last: the
    killed node stays down."""
    base = replace(ledger_settings, kafka_bootstrap=cluster.layout.bootstrap)
    ledger = await start_ledger(
        ledger_servers, base, tmp_path, register_roles=False, batch_size=200
    )
    try:
        operator = await ledger.register_key(Role.OPERATOR)
        rows = await wait_in_sync(cluster.layout.bootstrap, ledger.topics.all)
        assert all(len(row.replicas) == 3 for row in rows)
        victim = await _leader_of(cluster, ledger.topics.ingress, 0)
        conn = await ledger.connect()
        try:
            event_ids = await _publish_halts_killing(ledger, operator, conn, cluster, victim)
            await _wait_for_halts(conn, N_EVENTS, timeout=180)
            await asyncio.sleep(1.0)  # a re-delivery after the last batch would show now
            assert ledger.processor.alive(), ledger.processor.log_tail()
            recorded = await recorded_halts(conn)
            by_partition = await stored_chains(conn)
            assert await conn.fetchval("SELECT count(*) FROM quarantine") == 0
        finally:
            await conn.close()
    finally:
        ledger.processor.stop()
    assert len(recorded) == N_EVENTS, "lost or duplicated events"
    assert set(recorded) == set(event_ids)
    # the halts are control-lane events: every partition of the control topic holds some
    assert len([key for key in by_partition if key[0].endswith(".control")]) == PARTITIONS
    for partition_links in by_partition.values():
        # contiguous ledger_seq from 1 and an unbroken hash chain
        assert verify_chain(partition_links) == []


async def _halts(conn: Any) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM events WHERE event_type = 'agent.halted'"))


async def _wait_for_halts(conn: Any, count: int, *, timeout: float) -> int:
    async with asyncio.timeout(timeout):
        while (seen := await _halts(conn)) < count:
            await asyncio.sleep(0.1)
    return seen


async def _publish_halts_killing(
    ledger: Any, operator: KeyPair, conn: Any, cluster: Cluster, victim: int
) -> list[str]:
    """Publish N signed events; kill ``victim`` once the processor has committed some."""
    event_ids: list[str] = []
    half = N_EVENTS // 2
    async with ledger.producer() as producer:
        for start in (0, half):
            numbers = range(start, start + half)
            event_ids += await send_halts(producer, operator, numbers, "drill", 32)
            if start == 0:
                seen = await _wait_for_halts(conn, 100, timeout=120)
                assert seen < N_EVENTS
                assert await node_stop_async(cluster.settings, victim, kill=True) is not None
    return event_ids
