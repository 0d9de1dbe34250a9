"""The nodes of a local Kafka cluster: their status, and one-node drills (start, stop, kill).

The cluster itself is started and stopped whole by ``manager.services_up`` /
``services_down``; these functions act on one node and keep the node's pid in
``services.json`` current.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from aiokafka.errors import KafkaError

from claw_ledger.config import Settings, read_services_file
from claw_ledger.services import cluster as cluster_mod
from claw_ledger.services import kafka as kafka_mod
from claw_ledger.services.admin import PartitionState, describe_partitions, kafka_answers
from claw_ledger.services.cluster import ClusterLayout
from claw_ledger.services.process import Step, file_lock, no_step
from ledger.errors import ConfigError

__all__ = [
    "NodeState",
    "cluster_status",
    "lock_path",
    "node_kill_async",
    "node_start_async",
    "node_stop_async",
    "recorded_node_pid",
    "require_layout",
]

NodeLiveness = Literal["up", "down", "unresponsive"]
ClusterState = Literal["up", "down", "unresponsive", "degraded"]

NODE_READY_TIMEOUT = 120.0


@dataclass(frozen=True)
class NodeState:
    """One node of a local Kafka cluster.

    ``leads``: the ledger topic partitions it leads; ``lagging``: those it
    holds a replica of but is not in the in-sync replica set of.
    """

    node_id: int
    state: NodeLiveness
    pid: int | None
    port: int
    controller_port: int
    roles: str = "broker,controller"
    leads: tuple[str, ...] = ()
    lagging: tuple[str, ...] = ()


def lock_path(settings: Settings) -> Path:
    """The lock every change to this state dir's servers holds."""
    return settings.state_dir / ".services.lock"


def recorded_node_pid(record: dict[str, Any] | None, node_id: int) -> int | None:
    nodes = ((record or {}).get("kafka") or {}).get("nodes")
    for entry in nodes if isinstance(nodes, list) else []:
        if isinstance(entry, dict) and entry.get("node_id") == node_id:
            pid = entry.get("pid")
            return pid if isinstance(pid, int) else None
    return None


def require_layout(settings: Settings) -> ClusterLayout:
    layout = cluster_mod.load_layout(settings)
    if layout is None:
        raise ConfigError(
            f"no Kafka cluster in {settings.state_dir}",
            hint="start one with `claw-ledger services up --brokers 3`",
        )
    return layout


def _record_node_pid(settings: Settings, node_id: int, pid: int | None) -> None:
    record = read_services_file(settings.state_dir)
    nodes = ((record or {}).get("kafka") or {}).get("nodes")
    if record is None or not isinstance(nodes, list):
        return  # nothing recorded (the cluster was never brought up whole): nothing to update
    for entry in nodes:
        if isinstance(entry, dict) and entry.get("node_id") == node_id:
            entry["pid"] = pid
    path = settings.services_file
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _running_pid(settings: Settings, node_id: int) -> int | None:
    record = read_services_file(settings.state_dir)
    return cluster_mod.find_node_pid(settings, node_id, recorded_node_pid(record, node_id))


async def node_start_async(
    settings: Settings, node_id: int, *, on_step: Step = no_step
) -> tuple[int, bool]:
    """Start node ``node_id`` and wait until it answers: (pid, already running)."""
    layout = require_layout(settings)
    layout.node(node_id)
    with file_lock(lock_path(settings)):
        pid = _running_pid(settings, node_id)
        if pid is not None:
            return pid, True
        lib = kafka_mod.ensure_kafka_jars(settings, on_step=on_step)
        proc = cluster_mod.start_node(settings, lib, layout, node_id, on_step=on_step)
        _record_node_pid(settings, node_id, proc.pid)
    on_step(f"Waiting for Kafka node {node_id} to answer")
    await kafka_mod.wait_kafka_ready(proc, timeout=NODE_READY_TIMEOUT)
    return proc.pid, False


async def node_stop_async(settings: Settings, node_id: int, *, kill: bool = False) -> int | None:
    """Stop (SIGTERM, controlled shutdown) or kill (SIGKILL) one node; its pid, None if down."""
    require_layout(settings).node(node_id)
    with file_lock(lock_path(settings)):
        pid = _running_pid(settings, node_id)
        if pid is None:
            return None
        if kill:
            await asyncio.to_thread(cluster_mod.kill_node, settings, node_id, pid)
        else:
            await asyncio.to_thread(cluster_mod.stop_node, settings, node_id, pid)
        _record_node_pid(settings, node_id, None)
    return pid


async def node_kill_async(settings: Settings, node_id: int) -> int | None:
    return await node_stop_async(settings, node_id, kill=True)


async def cluster_status(
    settings: Settings, layout: ClusterLayout, record: dict[str, Any] | None, topics: Iterable[str]
) -> tuple[ClusterState, tuple[NodeState, ...]]:
    """The cluster's state and each node's; ``topics`` are those whose leaders are shown.

    ``up``: every node answers and every replica of ``topics`` is in sync;
    ``degraded``: the cluster answers but not all of that holds.
    """
    pids = {
        node.node_id: cluster_mod.find_node_pid(
            settings, node.node_id, recorded_node_pid(record, node.node_id)
        )
        for node in layout.nodes
    }
    answers = await asyncio.gather(
        *(
            kafka_answers(node.address, timeout=3.0)
            if pids[node.node_id] is not None
            else asyncio.sleep(0, False)
            for node in layout.nodes
        )
    )
    partitions: list[PartitionState] = []
    if any(answers):
        with contextlib.suppress(KafkaError, OSError, TimeoutError):
            partitions = await describe_partitions(layout.bootstrap, topics)
    states: list[NodeState] = []
    for node, answered in zip(layout.nodes, answers, strict=True):
        pid = pids[node.node_id]
        liveness: NodeLiveness = "down" if pid is None else "up" if answered else "unresponsive"
        states.append(
            NodeState(
                node_id=node.node_id,
                state=liveness,
                pid=pid,
                port=node.port,
                controller_port=node.controller_port,
                leads=tuple(p.name for p in partitions if p.leader == node.node_id),
                lagging=tuple(
                    p.name
                    for p in partitions
                    if node.node_id in p.replicas and node.node_id not in p.isr
                ),
            )
        )
    overall: ClusterState
    if all(pid is None for pid in pids.values()):
        overall = "down"
    elif not any(answers):
        overall = "unresponsive"
    elif all(answers) and all(p.fully_in_sync for p in partitions):
        overall = "up"
    else:
        overall = "degraded"
    return overall, tuple(states)
