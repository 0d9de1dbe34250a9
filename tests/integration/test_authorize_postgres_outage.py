"""Postgres stopped under a running authorize service: it denies, then recovers.

The ledger runs on a private embedded Postgres of this test (the shared server
is never stopped)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from claw_ledger.config import load_settings
from claw_ledger.services.postgres import (
    admin_url,
    start_postgres,
    stop_postgres,
    wait_postgres_ready,
)
from ledger.errors import ReasonCode
from tests.conftest import with_database
from tests.fixtures_ledger import start_ledger
from tests.integration._authorize import (
    WPC,
    decide_until,
    publish_wpc,
    request,
    running_job,
    service,
)

pytestmark = [pytest.mark.integration, pytest.mark.crash]


@dataclass
class _PrivateServer:
    """What :func:`start_ledger` needs of the session's servers, on our own Postgres."""

    server_url: str

    def database_url(self, name: str) -> str:
        return with_database(self.server_url, name)


async def test_postgres_stopped_denies_then_recovers(ledger_settings: Any, tmp_path: Path) -> None:
    pg_settings = load_settings(
        state_dir=tmp_path / "pg",
        env={k: v for k, v in os.environ.items() if k in ("HOME", "XDG_CACHE_HOME")},
        cwd=tmp_path,
    )
    proc = start_postgres(pg_settings)
    try:
        await wait_postgres_ready(proc)
        server = _PrivateServer(admin_url(proc.port))
        ledger = await start_ledger(server, ledger_settings, tmp_path / "ledger")
        authorize = service(ledger)
        try:
            job = await running_job(ledger, await publish_wpc(ledger, WPC))
            await authorize.start()
            assert (await authorize.decide(request(job))).allowed
            stop_postgres(pg_settings)
            down = await decide_until(
                lambda: authorize.decide(request(job)), lambda d: not d.allowed
            )
            assert down.reason_code is ReasonCode.LEDGER_UNAVAILABLE, down
            assert authorize.view.available is False
            restarted = start_postgres(pg_settings)
            assert restarted.port == proc.port  # the ledger's URLs name it
            await wait_postgres_ready(restarted)
            if not ledger.processor.alive():  # it gave up on the database (exit 75)
                ledger.processor.start()
            back = await decide_until(
                lambda: authorize.decide(request(job)), lambda d: d.allowed, timeout=120
            )
            assert back.allowed, back
        finally:
            await authorize.stop()
            ledger.processor.stop()
    finally:
        stop_postgres(pg_settings)
