"""Rebalancing on the single shared broker: a processor joins mid-stream, and one
of two dies mid-stream (SIGKILL); every event is committed exactly once.

A group rebalance is the group coordinator's protocol, which one broker runs
as a cluster does; the same drills run on the three-node cluster too
(tests/cluster/test_replicated_cluster.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.rebalance_drills import a_processor_dies_mid_stream, a_processor_joins_mid_stream

pytestmark = [pytest.mark.integration, pytest.mark.crash]


async def test_a_processor_joining_mid_stream_takes_partitions_exactly_once(
    ledger_servers: Any, ledger_settings: Any, tmp_path: Path
) -> None:
    await a_processor_joins_mid_stream(ledger_servers, ledger_settings, tmp_path)


async def test_a_processor_dying_mid_stream_hands_its_partitions_over_exactly_once(
    ledger_servers: Any, ledger_settings: Any, tmp_path: Path
) -> None:
    await a_processor_dies_mid_stream(ledger_servers, ledger_settings, tmp_path)
