"""Fixtures of the HTTP API tests: a ledger of its own that went through the demo,
its reader role, API keys of every role made by ``claw-ledger apikey create``,
and the API served by a real uvicorn server on an ephemeral port."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
import pytest_asyncio

if TYPE_CHECKING:
    # imported late: fixtures_ledger is a plugin loaded after this one
    from tests.fixtures_ledger import LedgerHarness

__all__ = [
    "ApiLedger",
    "DemoFacts",
    "UvicornThread",
    "create_key",
    "drop_roles",
    "read_demo_facts",
    "wait_until_healthy",
]


class UvicornThread:
    """``app`` on a real uvicorn server in a thread of its own, on a port the OS picked."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        from claw_ledger.api.limits import SERVER_OPTIONS

        self.app = app
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="on", **SERVER_OPTIONS)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])), daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> UvicornThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        if self.thread.is_alive():
            # a graceful shutdown still waiting for a client's keep-alive connection
            self.server.force_exit = True
            self.thread.join(timeout=30)
        if not self.thread.is_alive():
            # closed under a server still shutting down, its fd is gone when it stops
            # serving it, and the thread dies with an error at a later test
            self.sock.close()


def create_key(env: dict[str, str], name: str, role: str) -> str:
    """``claw-ledger apikey create NAME --role ROLE``; the key (its last output line)."""
    from tests.fixtures_ledger import run_cli

    result = run_cli(env, "apikey", "create", name, "--role", role)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


@dataclass(frozen=True)
class DemoFacts:
    """What the demo left on the ledger, by which the API tests ask for it."""

    job: str
    policy_hash: str
    #: the job's token
    jti: str
    #: the job's committed ``run.started``
    committed_event: str
    #: a receipt quarantined ``AGENT_HALTED``
    quarantined_event: str


async def read_demo_facts(owner_url: str, summary: dict[str, Any]) -> DemoFacts:
    """The facts of the demo whose ``claw-ledger demo --json`` printed ``summary``."""
    from tests.fixtures_ledger import connection

    async with connection(owner_url) as conn:
        job = await conn.fetchrow("SELECT * FROM jobs WHERE job_id = $1", summary["job"])
        committed = await conn.fetchval(
            "SELECT event_id::text FROM events WHERE event_type = 'run.started'"
        )
        quarantined = await conn.fetchval(
            "SELECT event_id FROM quarantine WHERE reason_code = 'AGENT_HALTED'"
        )
    assert job is not None and committed and quarantined
    return DemoFacts(
        summary["job"], summary["policy_hash_b64u"], job["cst_jti"], committed, quarantined
    )


@dataclass
class ApiLedger:
    harness: LedgerHarness
    reader_url: str
    #: role -> a valid key of that role
    keys: dict[str, str]
    revoked_key: str
    demo: DemoFacts
    server: UvicornThread
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def owner_url(self) -> str:
        url = self.harness.settings.database_url
        assert url
        return url

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, role: str | None = None, **kw: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.keys[role]}"} if role else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kw)

    async def owner(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.owner_url)


def wait_until_healthy(
    base: str, process: subprocess.Popen[Any], why: Callable[[], object], timeout: float = 60
) -> None:
    """Until ``base/healthz`` answers 200; fails with ``why()`` once ``process`` has
    ended or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(why())
        time.sleep(0.2)


async def drop_roles(owner_url: str, names: Iterable[str]) -> None:
    """Roles are server-wide: remove them (and their grants) before the database goes."""
    conn = await asyncpg.connect(owner_url)
    try:
        for name in names:
            if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", name):
                await conn.execute(f'DROP OWNED BY "{name}"')
                await conn.execute(f'DROP ROLE "{name}"')
    finally:
        await conn.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def api_ledger(
    ledger_servers: Any, ledger_settings: Any, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ApiLedger]:
    """A ledger after the demo (keys, WPC, URM, token, run, receipts, a halt and a receipt
    quarantined AGENT_HALTED), read by the API as the reader role."""
    from claw_ledger.api import ApiConfig, create_app
    from claw_ledger.config import load_settings
    from claw_ledger.db_roles import migrate_with_roles, role_urls
    from storage.roles import role_names
    from tests.fixtures_ledger import run_cli, start_ledger

    state_dir: Path = tmp_path_factory.mktemp("api-ledger")
    harness = await start_ledger(ledger_servers, ledger_settings, state_dir)
    owner_url = harness.settings.database_url
    assert owner_url
    roles = role_names(urlsplit(owner_url).path.lstrip("/"))
    try:
        demo = run_cli(harness.env, "demo", "--json")
        assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
        # the demo leaves a checkpointer running: stopped, so that the counts hold still
        run_cli(harness.env, "checkpointer", "stop")
        summary = json.loads(demo.stdout)
        await migrate_with_roles(
            load_settings(database_url=owner_url, state_dir=state_dir, env={}, cwd=state_dir)
        )
        _, reader_url = role_urls(state_dir, owner_url)
        keys = {
            role: create_key(harness.env, f"test-{role}", role)
            for role in ("reader", "runtime", "operator", "admin")
        }
        revoked = create_key(harness.env, "test-revoked", "admin")
        assert run_cli(harness.env, "apikey", "revoke", "test-revoked").returncode == 0
        facts = await read_demo_facts(owner_url, summary)
        config = ApiConfig.from_settings(
            harness.settings, reader_url=reader_url, max_page=100, max_body=4096
        )
        with UvicornThread(create_app(config=config)) as server:
            yield ApiLedger(
                harness=harness,
                reader_url=reader_url,
                keys=keys,
                revoked_key=revoked,
                demo=facts,
                server=server,
            )
    finally:
        harness.processor.stop()
        await drop_roles(owner_url, roles)


@pytest.fixture
def reader(api_ledger: ApiLedger) -> Iterator[httpx.Client]:
    with api_ledger.client("reader") as client:
        yield client
