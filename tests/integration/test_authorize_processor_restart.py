"""The processor killed under a running authorize service: the answers turn to
STATE_STALE, come back after the restart, and no decision is lost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ledger.authorize import Decision
from ledger.errors import ReasonCode
from tests.fixtures_ledger import start_ledger
from tests.integration import _authorize as authz

pytestmark = [pytest.mark.integration, pytest.mark.crash]


async def test_processor_killed_and_restarted_loses_no_decision(
    ledger_servers: Any, ledger_settings: Any, tmp_path: Path
) -> None:
    ledger = await start_ledger(ledger_servers, ledger_settings, tmp_path)
    authorize = authz.service(ledger, max_staleness=1.0)
    decisions: list[Decision] = []

    async def ask() -> Decision:
        decision = await authorize.decide(authz.request(job))
        decisions.append(decision)
        return decision

    try:
        job = await authz.running_job(ledger, await authz.publish_wpc(ledger, authz.WPC))
        await authorize.start()
        assert (await ask()).allowed
        ledger.processor.kill()
        stale = await authz.decide_until(ask, lambda d: not d.allowed)
        assert stale.reason_code is ReasonCode.STATE_STALE
        for _ in range(20):
            assert (await ask()).reason_code is ReasonCode.STATE_STALE
        ledger.processor.start()
        back = await authz.decide_until(ask, lambda d: d.allowed, timeout=120)
        assert back.allowed, back
        await authorize.stop()  # a clean stop: every queued decision reaches Kafka
        assert authorize.counters.recorded == authorize.counters.made == len(decisions)
        rows = await authz.recorded_decisions(
            ledger, [d.decision_id for d in decisions], timeout=120
        )
        assert len(rows) == len(decisions)
        assert {i: r["reason_code"] for i, r in rows.items()} == {
            d.decision_id: d.reason_code.value for d in decisions
        }
    finally:
        await authorize.stop()
        ledger.processor.stop()
