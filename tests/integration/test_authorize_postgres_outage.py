"""Postgres stopped under a running authorize service: it denies, then recovers.

The ledger runs on a private embedded Postgres of this test (the shared server
is never stopped)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ledger.errors import ReasonCode
from tests.fixtures_ledger import private_postgres, start_ledger
from tests.integration._authorize import (
    WPC,
    decide_until,
    publish_wpc,
    request,
    running_job,
    service,
)

pytestmark = [pytest.mark.integration, pytest.mark.crash]


async def test_postgres_stopped_denies_then_recovers(ledger_settings: Any, tmp_path: Path) -> None:
    async with private_postgres(tmp_path / "pg") as postgres:
        ledger = await start_ledger(postgres, ledger_settings, tmp_path / "ledger")
        authorize = service(ledger)
        try:
            job = await running_job(ledger, await publish_wpc(ledger, WPC))
            await authorize.start()
            assert (await authorize.decide(request(job))).allowed
            postgres.stop()
            down = await decide_until(
                lambda: authorize.decide(request(job)), lambda d: not d.allowed
            )
            assert down.reason_code is ReasonCode.LEDGER_UNAVAILABLE, down
            assert authorize.view.available is False
            await postgres.start()
            if not ledger.processor.alive():  # it gave up on the database (exit 75)
                ledger.processor.start()
            back = await decide_until(
                lambda: authorize.decide(request(job)), lambda d: d.allowed, timeout=120
            )
            assert back.allowed, back
        finally:
            await authorize.stop()
            ledger.processor.stop()
