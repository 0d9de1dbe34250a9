"""``claw-ledger apikey`` and ``claw-ledger serve`` as users run them."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import time
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from claw_ledger.api import ApiConfig, create_app
from claw_ledger.api.features import ledger_features
from claw_ledger.services.process import free_port
from tests.fixtures_api import ApiLedger, UvicornThread, create_key, wait_until_healthy
from tests.fixtures_ledger import CLAW_LEDGER, run_cli

pytestmark = pytest.mark.integration


async def test_a_key_is_shown_once_and_only_its_hash_is_kept(api_ledger: ApiLedger) -> None:
    env = api_ledger.harness.env
    created = run_cli(env, "apikey", "create", "ci-bot", "--role", "reader")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("clk_")
    listed = run_cli(env, "apikey", "list", "--json")
    assert listed.returncode == 0
    assert key not in listed.stdout
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert rows["ci-bot"]["role"] == "reader" and rows["ci-bot"]["revoked_at"] is None
    assert "test-revoked" not in rows  # revoked keys only with --all
    conn = await api_ledger.owner()
    try:
        stored = await conn.fetchrow("SELECT * FROM api_keys WHERE name = 'ci-bot'")
    finally:
        await conn.close()
    assert stored is not None and key not in json.dumps(dict(stored), default=str)

    with httpx.Client(base_url=api_ledger.url, headers={"Authorization": f"Bearer {key}"}) as c:
        assert c.get("/v1/halts").status_code == 200
        revoked = run_cli(env, "apikey", "revoke", "ci-bot")
        assert revoked.returncode == 0, revoked.stderr
        # the service drops its kept row when the change is announced (ADR 0028)
        deadline = time.monotonic() + 5
        while (refused := c.get("/v1/halts")).status_code == 200:
            assert time.monotonic() < deadline, "the revoked key still answers"
            time.sleep(0.02)
    assert refused.status_code == 401
    assert refused.json()["error"]["reason_code"] == "API_KEY_INVALID"


def test_apikey_refuses_a_taken_name_a_bad_name_and_an_unknown_key(api_ledger: ApiLedger) -> None:
    env = api_ledger.harness.env
    create_key(env, "twice", "runtime")
    again = run_cli(env, "apikey", "create", "twice", "--role", "runtime")
    assert again.returncode == 2 and "exists" in again.stderr
    bad = run_cli(env, "apikey", "create", "no spaces'--", "--role", "reader")
    assert bad.returncode == 2 and "bad API key name" in bad.stderr
    role = run_cli(env, "apikey", "create", "x", "--role", "root")
    assert role.returncode == 2
    unknown = run_cli(env, "apikey", "revoke", "never-made")
    assert unknown.returncode == 2 and "no API key named" in unknown.stderr


def test_the_reader_role_cannot_mint_keys(api_ledger: ApiLedger) -> None:
    import asyncpg

    async def attempt() -> None:
        conn = await asyncpg.connect(api_ledger.reader_url)
        try:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(
                    "INSERT INTO api_keys (key_id, name, role, key_sha256)"
                    " VALUES ('0123456789ab', 'forged', 'admin', repeat('0', 64))"
                )
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("UPDATE api_keys SET revoked_at = NULL")
        finally:
            await conn.close()

    asyncio.run(attempt())


async def _api_sessions(api: ApiLedger) -> list[str]:
    conn = await api.owner()
    try:
        rows = await conn.fetch(
            "SELECT usename FROM pg_stat_activity"
            " WHERE application_name = 'claw-ledger-api' AND datname = current_database()"
        )
    finally:
        await conn.close()
    return [r["usename"] for r in rows]


def test_serve_runs_the_api_as_the_reader(api_ledger: ApiLedger, tmp_path: object) -> None:
    port = free_port()
    env = api_ledger.harness.env | {"CLAW_LEDGER_READER_URL": api_ledger.reader_url}
    proc = subprocess.Popen(
        [*CLAW_LEDGER, "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_healthy(
            url,
            proc,
            lambda: "serve did not answer" if proc.poll() is None else proc.communicate(),
        )
        headers = {"Authorization": f"Bearer {api_ledger.keys['reader']}"}
        page = httpx.get(f"{url}/v1/timeline", params={"limit": 3}, headers=headers, timeout=10)
        assert page.status_code == 200 and len(page.json()["rows"]) == 3
        assert httpx.get(f"{url}/v1/timeline", timeout=10).status_code == 401
        sessions = asyncio.run(_api_sessions(api_ledger))
        assert sessions and set(sessions) == {urlsplit(api_ledger.reader_url).username}
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    # uvicorn shuts down cleanly, then ends by the signal it was sent
    assert proc.returncode in (0, -signal.SIGTERM), err.decode()
    assert f"http://127.0.0.1:{port}" in err.decode()


def _cli_json(api_ledger: ApiLedger, *args: str) -> Any:
    result = run_cli(api_ledger.harness.env, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _timeline_pages(fetch: Any) -> tuple[list[str], list[str]]:
    """Every event id and every cursor of a paged timeline, fetched by ``fetch(cursor)``."""
    ids: list[str] = []
    cursors: list[str] = []
    cursor = None
    while True:
        page = fetch(cursor)
        ids += [row["event_id"] for row in page["rows"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids, cursors
        cursors.append(cursor)


def test_the_cli_and_the_api_answer_one_question_alike(
    api_ledger: ApiLedger, reader: httpx.Client
) -> None:
    """A security team reads the ledger from both doors: a time window pages in the
    same order with the same cursors, and a halt, a checkpoint and a WPC are the
    same documents, instants spelled alike."""
    since = "2000-01-01T00:00:00Z"

    def from_cli(cursor: str | None) -> Any:
        after = ("--after", cursor) if cursor else ()
        return _cli_json(api_ledger, "timeline", "--since", since, "--limit", "4", *after)

    def from_api(cursor: str | None) -> Any:
        params: dict[str, str | int] = {"since": since, "limit": 4}
        if cursor:
            params["cursor"] = cursor
        return reader.get("/v1/timeline", params=params).json()

    cli_ids, cli_cursors = _timeline_pages(from_cli)
    api_ids, api_cursors = _timeline_pages(from_api)
    assert cli_ids == api_ids and len(cli_ids) > 8
    assert cli_cursors == api_cursors and all(c.startswith("t") for c in cli_cursors)
    # a cursor of a time window is not one of the whole ledger
    mixed = run_cli(api_ledger.harness.env, "timeline", "--after", cli_cursors[0])
    assert mixed.returncode == 2 and "other time filters" in mixed.stderr

    halts = _cli_json(api_ledger, "halts")
    assert halts == reader.get("/v1/halts").json()["halts"] and halts
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", h["since"]) for h in halts)

    # the checkpoint feature as `serve` wires it
    config = ApiConfig.from_settings(api_ledger.harness.settings, reader_url=api_ledger.reader_url)
    features = replace(ledger_features(api_ledger.harness.settings, None), authorizer=None)
    checkpoint = _cli_json(api_ledger, "checkpoint", "latest")
    with (
        UvicornThread(create_app(config=replace(config, features=features))) as server,
        httpx.Client(base_url=server.url, headers=dict(reader.headers), timeout=30) as client,
    ):
        assert checkpoint == client.get("/v1/checkpoints/latest").json()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", checkpoint["occurred_at"])

    wpc = _cli_json(api_ledger, "wpc", "get", api_ledger.demo.policy_hash)
    assert wpc.pop("verified") is False
    assert wpc == reader.get(f"/v1/policies/{api_ledger.demo.policy_hash}").json()
    assert list(wpc["envelope"]) == list(json.loads(wpc["wpc_envelope_raw"]))  # signed order
