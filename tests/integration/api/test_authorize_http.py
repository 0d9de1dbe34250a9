"""``POST /v1/authorize`` end to end: ``claw-ledger serve --authorize-key`` as users
run it, on a ledger with a running job; and the fast path (ADR 0028) answering
exactly as the FastAPI route it stands in front of."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from claw_ledger.api import ApiConfig, create_app
from claw_ledger.api.app import Features
from claw_ledger.services.process import free_port
from ledger.crypto import save_key
from ledger.roles import Role
from tests.fixtures_api import ApiLedger, UvicornThread, create_key, wait_until_healthy
from tests.fixtures_ledger import CLAW_LEDGER, run_cli
from tests.integration import _authorize as authz

pytestmark = pytest.mark.integration


@pytest.fixture
def served_authorize(api_ledger: ApiLedger, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """``claw-ledger serve --authorize-key`` on the API ledger with a running job."""
    harness = api_ledger.harness
    wpc = asyncio.run(authz.publish_wpc(harness, authz.WPC | {"purpose": "http"}))
    job = asyncio.run(authz.running_job(harness, wpc))
    key_file = tmp_path / "authorizer.key"
    save_key(harness.keys[Role.AUTHORIZER], key_file)
    port = free_port()
    env = harness.env | {"CLAW_LEDGER_READER_URL": api_ledger.reader_url}
    command = [*CLAW_LEDGER, "serve", "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(
        [*command, "--authorize-key", str(key_file)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, proc, lambda: proc.communicate() if proc.poll() else "no answer")
        yield url, job
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def _ask(client: httpx.Client, job: Any, nonce: str, action: str = "read") -> httpx.Response:
    body = {
        "token": job.token,
        "job_id": job.job_id,
        "action": {"kind": "tool", "tool": action},
        "nonce": nonce,
    }
    return client.post("/v1/authorize", json=body)


def test_served_decisions_are_recorded_replays_denied_and_a_revoked_key_refused(
    api_ledger: ApiLedger, served_authorize: tuple[str, Any]
) -> None:
    url, job = served_authorize
    env = api_ledger.harness.env
    name = f"authz-{uuid.uuid4().hex[:8]}"
    runtime = {"Authorization": f"Bearer {create_key(env, name, 'runtime')}"}
    with httpx.Client(base_url=url, headers=runtime, timeout=30) as client:
        deadline = time.monotonic() + 60
        while (first := _ask(client, job, nonce := uuid.uuid4().hex)).json()["decision"] != "allow":
            assert time.monotonic() < deadline, first.json()  # the service catches up
            time.sleep(0.2)
        replay = _ask(client, job, nonce)
        denied = _ask(client, job, uuid.uuid4().hex, action="exec")
        shared = uuid.uuid4().hex
        racing = asyncio.run(_concurrently(url, runtime, job, [shared] * 8 + [None] * 8))
        not_json = client.post("/v1/authorize", content=b"{not json")
        assert run_cli(env, "apikey", "revoke", name).returncode == 0
        revoked_at = time.monotonic()
        while (refused := _ask(client, job, uuid.uuid4().hex)).status_code == 200:
            assert time.monotonic() - revoked_at < 5, "the revoked key still answers"
            time.sleep(0.02)
    assert replay.status_code == 200 and replay.json()["reason_code"] == "NONCE_REPLAYED"
    assert denied.json()["decision"] == "deny"
    assert denied.json()["reason_code"] == "TOOL_NOT_ALLOWED"
    # eight requests with one nonce at once: exactly one is allowed
    outcomes = [r["decision"] for r in racing[:8]]
    assert outcomes.count("allow") == 1, racing[:8]
    assert {r["reason_code"] for r in racing[:8] if r["decision"] == "deny"} == {"NONCE_REPLAYED"}
    assert all(r["decision"] == "allow" for r in racing[8:]), racing[8:]
    assert not_json.status_code == 400
    assert not_json.json()["error"]["reason_code"] == "API_BAD_PARAMETER"
    assert refused.status_code == 401
    assert refused.json()["error"]["reason_code"] == "API_KEY_INVALID"
    answers = [first.json(), replay.json(), denied.json(), *racing]
    rows = asyncio.run(
        authz.recorded_decisions(api_ledger.harness, [a["decision_id"] for a in answers])
    )
    assert {i: rows[i]["reason_code"] for i in rows} == {
        a["decision_id"]: a["reason_code"] for a in answers
    }


async def _concurrently(
    url: str, headers: dict[str, str], job: Any, nonces: list[str | None]
) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:

        async def one(nonce: str | None) -> dict[str, Any]:
            body = {
                "token": job.token,
                "job_id": job.job_id,
                "action": {"kind": "tool", "tool": "read"},
                "nonce": nonce or uuid.uuid4().hex,
            }
            response = await client.post("/v1/authorize", json=body)
            assert response.status_code == 200, response.text
            return dict(response.json())

        return list(await asyncio.gather(*(one(n) for n in nonces)))


class _Authorizer:
    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def decide(self, request: dict[str, Any]) -> Any:
        if request.get("job_id") == "broken":
            raise RuntimeError("a bug in the authorizer")
        if request.get("job_id") == "odd":
            return ["not", "a", "document"]
        return {"allowed": request.get("job_id") != "halted", "reason_code": "OK"}


@pytest.mark.parametrize(
    ("key_role", "body"),
    [
        (None, b"{}"),
        ("reader", b"{}"),
        ("runtime", b"{not json"),
        ("runtime", b"[1, 2]"),
        ("runtime", b'{"job_id": "j1"}'),
        ("runtime", b'{"job_id": "halted"}'),
        ("runtime", b'{"job_id": "broken"}'),
        ("runtime", b'{"job_id": "odd"}'),
        ("runtime", b"{" + b" " * 5000 + b"}"),
        ("admin", b'{"job_id": "j1"}'),
    ],
)
def test_the_fast_path_answers_as_the_fastapi_route(
    api_ledger: ApiLedger, key_role: str | None, body: bytes
) -> None:
    config = ApiConfig.from_settings(
        api_ledger.harness.settings,
        reader_url=api_ledger.reader_url,
        max_body=4096,
        features=Features(authorizer=_Authorizer()),
    )
    headers = {"Authorization": f"Bearer {api_ledger.keys[key_role]}"} if key_role else {}
    answers = []
    for fast in (True, False):
        app = create_app(config=replace(config, authorize_fast_path=fast))
        with UvicornThread(app) as server, httpx.Client(base_url=server.url) as client:
            response = client.post("/v1/authorize", content=body, headers=headers)
            answers.append((response.status_code, response.json()))
    assert answers[0] == answers[1]
