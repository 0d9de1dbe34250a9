"""A replicated Kafka cluster of N combined (broker + controller) KRaft nodes.

The layout (cluster id, node ids and ports) is fixed once in
``<state_dir>/kafka/cluster.json``: a static controller quorum names every
voter by host and port, so a node must come back on the ports it was formatted
with. Node ``n`` keeps its config, data and logs in ``<state_dir>/kafka/node-<n>``.
See docs/adr/0012-replicated-kafka-cluster.md.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from claw_ledger.config import Settings
from claw_ledger.services import process
from claw_ledger.services.admin import HOST, replication_for
from claw_ledger.services.kafka import (
    MAIN_CLASS,
    KafkaPaths,
    KafkaProcess,
    Seat,
    launch_node,
    new_cluster_id,
)
from claw_ledger.services.process import Step, no_step
from ledger.errors import ConfigError, ServiceError

__all__ = [
    "NODE_HEAP_OPTS",
    "ClusterLayout",
    "ClusterNode",
    "cluster_root",
    "create_layout",
    "find_node_pid",
    "kill_node",
    "load_layout",
    "node_paths",
    "start_node",
    "stop_node",
]

#: per-node heap: three JVMs share a small machine with Postgres and the processor
NODE_HEAP_OPTS = ("-Xms128m", "-Xmx384m", "-XX:ParallelGCThreads=1", "-XX:CICompilerCount=2")
LAYOUT_FILE = "cluster.json"


@dataclass(frozen=True)
class ClusterNode:
    node_id: int
    port: int
    controller_port: int

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"


@dataclass(frozen=True)
class ClusterLayout:
    """The fixed shape of a cluster: its id and every node's id and ports."""

    cluster_id: str
    nodes: tuple[ClusterNode, ...]

    @property
    def bootstrap(self) -> str:
        return ",".join(node.address for node in self.nodes)

    @property
    def voters(self) -> str:
        return ",".join(f"{n.node_id}@{HOST}:{n.controller_port}" for n in self.nodes)

    @property
    def replication(self) -> tuple[int, int]:
        """(replication factor, min.insync.replicas) of the ledger and internal topics."""
        return replication_for(len(self.nodes))

    def node(self, node_id: int) -> ClusterNode:
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        ids = ", ".join(str(n.node_id) for n in self.nodes)
        raise ConfigError(f"no Kafka node {node_id} in this cluster (nodes: {ids})")

    def to_json(self) -> dict[str, object]:
        return {
            "format": 1,
            "cluster_id": self.cluster_id,
            "nodes": [
                {"node_id": n.node_id, "port": n.port, "controller_port": n.controller_port}
                for n in self.nodes
            ],
        }


def cluster_root(settings: Settings) -> Path:
    return settings.state_dir / "kafka"


def node_paths(settings: Settings, node_id: int) -> KafkaPaths:
    return KafkaPaths(cluster_root(settings) / f"node-{node_id}")


def load_layout(settings: Settings) -> ClusterLayout | None:
    """The cluster recorded in this state dir, or None when there is none."""
    path = cluster_root(settings) / LAYOUT_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        nodes = tuple(
            ClusterNode(int(n["node_id"]), int(n["port"]), int(n["controller_port"]))
            for n in data["nodes"]
        )
        return ClusterLayout(str(data["cluster_id"]), nodes)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{path} is damaged: {exc}",
            hint=f"stop the nodes, then remove {cluster_root(settings)} to start from scratch",
        ) from exc


def create_layout(settings: Settings, brokers: int) -> ClusterLayout:
    """Choose a cluster id and free ports for ``brokers`` nodes and record them."""
    taken: set[int] = set()

    def fresh() -> int:
        while True:
            port = process.free_port(HOST)
            if port not in taken:
                taken.add(port)
                return port

    nodes = tuple(ClusterNode(n, fresh(), fresh()) for n in range(1, brokers + 1))
    layout = ClusterLayout(new_cluster_id(), nodes)
    root = cluster_root(settings)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / (LAYOUT_FILE + ".tmp")
    tmp.write_text(json.dumps(layout.to_json(), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, root / LAYOUT_FILE)
    return layout


def find_node_pid(settings: Settings, node_id: int, recorded: int | None = None) -> int | None:
    """The pid of node ``node_id`` of this state dir: ``recorded`` if it still is, else a scan."""
    needle = str(node_paths(settings, node_id).properties)
    if recorded is not None and process.process_matches(recorded, needle):
        return recorded
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if MAIN_CLASS in cmdline and needle in cmdline and process.pid_alive(proc.info["pid"]):
            found: int = proc.info["pid"]
            return found
    return None


def node_process(settings: Settings, layout: ClusterLayout, node_id: int, pid: int) -> KafkaProcess:
    node = layout.node(node_id)
    return KafkaProcess(
        pid=pid,
        port=node.port,
        controller_port=node.controller_port,
        version=settings.kafka_version,
        paths=node_paths(settings, node_id),
        node_id=node_id,
    )


def start_node(
    settings: Settings, lib: Path, layout: ClusterLayout, node_id: int, *, on_step: Step = no_step
) -> KafkaProcess:
    """Start node ``node_id`` detached on its recorded ports (formatting it once). No wait."""
    node = layout.node(node_id)
    busy = [p for p in (node.port, node.controller_port) if not process.port_free(p, HOST)]
    if busy:
        raise ServiceError(
            f"Kafka node {node_id} must listen on port(s) {busy}, which another process holds",
            hint="a static KRaft quorum names each voter's port: free the port, or stop the "
            f"cluster and remove {cluster_root(settings)} to create a new one",
        )
    return launch_node(
        settings,
        lib,
        node_paths(settings, node_id),
        node.port,
        node.controller_port,
        seat=Seat(node_id, layout.voters, len(layout.nodes)),
        cluster_id=layout.cluster_id,
        heap=NODE_HEAP_OPTS,
        on_step=on_step,
    )


def stop_node(settings: Settings, node_id: int, pid: int, *, timeout: float = 30.0) -> bool:
    """SIGTERM (controlled shutdown: leadership moves first), SIGKILL after ``timeout``."""
    if not process.process_matches(pid, str(node_paths(settings, node_id).properties)):
        return False
    process.terminate(pid, timeout=timeout)
    return True


def kill_node(settings: Settings, node_id: int, pid: int) -> bool:
    """SIGKILL: the node dies as in a power loss (no controlled shutdown, no flush)."""
    if not process.process_matches(pid, str(node_paths(settings, node_id).properties)):
        return False
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while process.pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True
