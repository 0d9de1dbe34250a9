"""Trust Pulse in a real headless Chromium against ``claw-ledger serve`` and a real
ledger: sign in, the timeline and its filters, a halted run with its blocked
calls, the quarantine, and a forged bundle shown invalid. Screenshots of every
page are kept under ``.artifacts/trust-pulse/`` (the CI keeps that folder)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.fixtures_api import wait_until_healthy
from tests.fixtures_ledger import CLAW_LEDGER, LedgerHarness, run_cli, start_ledger

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).resolve().parents[2] / ".artifacts" / "trust-pulse"
#: the flags a headless Chromium needs on a machine with a closed network
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str:
    found = os.environ.get("CLAW_LEDGER_CHROMIUM") or shutil.which("chromium")
    if not found:
        pytest.fail(
            "no Chromium: `make test` installs Debian's chromium package"
            " (or set CLAW_LEDGER_CHROMIUM to a Chromium binary)"
        )
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def ledger(
    ledger_servers: Any, ledger_settings: Any, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[LedgerHarness, dict[str, Any]]]:
    """A ledger that went through the demo: a run, receipts, a halt, refusals."""
    harness = await start_ledger(
        ledger_servers, ledger_settings, tmp_path_factory.mktemp("pulse-ledger")
    )
    try:
        demo = run_cli(harness.env, "demo", "--json")
        assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
        yield harness, json.loads(demo.stdout)
    finally:
        # the demo leaves its checkpointer running: it would outlive the module
        run_cli(harness.env, "checkpointer", "stop")
        harness.processor.stop()


@pytest.fixture(scope="module")
def service(ledger: tuple[LedgerHarness, dict[str, Any]]) -> Iterator[tuple[str, str]]:
    """``claw-ledger serve`` on a free port, and a reader API key."""
    harness, _ = ledger
    created = run_cli(harness.env, "apikey", "create", "reviewer", "--role", "reader")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    port = _free_port()
    log = open(harness.settings.state_dir / "serve.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [*CLAW_LEDGER, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=harness.env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def serve_log() -> str:
            log.flush()
            return (harness.settings.state_dir / "serve.log").read_text()[-3000:]

        wait_until_healthy(base, process, serve_log)
        yield base, key
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def browser(service: tuple[str, str]) -> Iterator[Any]:
    # after the service: Playwright's sync API runs a loop of its own on this thread,
    # so the asyncio fixtures (the ledger) must be set up before it starts
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, service: tuple[str, str]) -> Iterator[Any]:
    """A signed-in page (through the login form, as a reviewer would)."""
    base, key = service
    context = browser.new_context(base_url=base)
    tab = context.new_page()
    tab.goto("/pulse/timeline")
    assert "/pulse/login" in tab.url
    tab.fill("#key", key)
    tab.click("#sign-in")
    tab.wait_for_url("**/pulse/timeline")
    try:
        yield tab
    finally:
        context.close()


def _shot(tab: Any, name: str) -> None:
    tab.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.mark.parametrize(
    "path",
    [
        "/pulse/%00",
        "/pulse/runs/%00",
        "/pulse/timeline?stream=a%00b",
        "/pulse/timeline?after=99999999999999999999",
        "/pulse/quarantine?reason=%00",
        "/pulse/quarantine?after=99999999999999999999",
    ],
)
def test_a_page_refuses_what_postgres_cannot_hold(service: tuple[str, str], path: str) -> None:
    """A NUL or a cursor past a bigint is a 400, as on /v1, not a database error's 500."""
    base, key = service
    response = httpx.get(base + path, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["reason_code"] == "API_BAD_PARAMETER"


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
def test_a_time_filter_outside_the_years_utc_holds_is_a_400_page(
    service: tuple[str, str], moment: str
) -> None:
    """RFC 3339 that UTC puts in the year 10000 or 0 overflowed in the query: a 500."""
    base, key = service
    for field in ("since", "until"):
        response = httpx.get(
            f"{base}/pulse/timeline",
            params={field: moment},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert response.status_code == 400, response.text
        assert "time (use RFC 3339)" in response.text


def test_a_page_writes_bidirectional_overrides_out(
    ledger: tuple[LedgerHarness, dict[str, Any]], service: tuple[str, str]
) -> None:
    """A right-to-left override in a halt's reason would reorder what the
    reviewer reads; the page shows it as an escape, the API keeps it exactly."""
    harness, _ = ledger
    reason = "approved \u202edenied\u202c by ops"
    target = f"job:bidi-{uuid.uuid4().hex[:8]}"
    halted = run_cli(harness.env, "halt", target, "--reason", reason, "--key", "operator")
    assert halted.returncode == 0, halted.stderr
    base, key = service
    page = httpx.get(f"{base}/pulse/halts", headers={"Authorization": f"Bearer {key}"})
    assert page.status_code == 200
    assert "approved \\u202edenied\\u202c by ops" in page.text
    assert "\u202e" not in page.text
    halts = httpx.get(f"{base}/v1/halts", headers={"Authorization": f"Bearer {key}"}).json()
    assert reason in [row["reason"] for row in halts["halts"]]


def test_the_pulse_address_opens_the_timeline_with_times_as_the_api_spells_them(
    service: tuple[str, str],
) -> None:
    """`serve` and the README give /pulse; it was a JSON 404."""
    base, key = service
    auth = {"Authorization": f"Bearer {key}"}
    for path in ("/pulse", "/pulse/"):
        response = httpx.get(base + path, headers=auth, follow_redirects=True, timeout=30)
        assert response.status_code == 200, (path, response.text[:300])
        assert str(response.url).endswith("/pulse/timeline")
    first = httpx.get(f"{base}/v1/timeline", params={"limit": 1}, headers=auth).json()["rows"][0]
    assert first["occurred_at"] in response.text  # 2026-…T…Z, not Python's "+00:00"
    assert "+00:00" not in response.text


def test_a_key_of_another_role_is_forbidden_not_sent_to_log_in(
    ledger: tuple[LedgerHarness, dict[str, Any]], service: tuple[str, str]
) -> None:
    """A valid key that may not read (the runtime's) was redirected to the login form
    as if no key were given: a 403 says what is wrong, as /v1 does."""
    harness, _ = ledger
    base, _ = service
    created = run_cli(harness.env, "apikey", "create", "pulse-runtime", "--role", "runtime")
    runtime = created.stdout.strip().splitlines()[-1]
    response = httpx.get(
        f"{base}/pulse/timeline", headers={"Authorization": f"Bearer {runtime}"}, timeout=30
    )
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["reason_code"] == "API_ROLE_FORBIDDEN" and "role runtime" in error["message"]
    # no key, or an unknown one: the login form, as before
    for headers in ({}, {"Authorization": "Bearer clk_not-a-key"}):
        sent = httpx.get(f"{base}/pulse/timeline", headers=headers, timeout=30)
        assert sent.status_code == 303 and "/pulse/login" in sent.headers["location"]


def test_a_wrong_key_is_refused_at_the_login_form(browser: Any, service: tuple[str, str]) -> None:
    base, _ = service
    context = browser.new_context(base_url=base)
    tab = context.new_page()
    tab.goto("/pulse/halts")
    tab.fill("#key", "clk_not-a-key")
    tab.click("#sign-in")
    assert tab.locator("#login-error").inner_text() == "unknown or revoked key"
    _shot(tab, "login-refused")
    context.close()


def test_the_timeline_loads_and_its_filters_work(page: Any) -> None:
    rows = page.locator("tr.event")
    assert rows.count() > 5
    types = set(rows.evaluate_all("rows => rows.map(r => r.dataset.type)"))
    assert {"key.registered", "agent.halted"} <= types
    _shot(page, "timeline")

    page.fill("input[name=event_type]", "agent.halted")
    page.click("#apply-filters")
    page.wait_for_url("**event_type=agent.halted**")
    filtered = page.locator("tr.event")
    assert filtered.count() >= 1
    assert set(filtered.evaluate_all("rows => rows.map(r => r.dataset.type)")) == {"agent.halted"}
    _shot(page, "timeline-filtered")

    page.fill("input[name=event_type]", "agent.halt")
    page.click("#apply-filters")
    page.wait_for_url("**event_type=agent.halt&**")
    notice = page.locator("#filter-error").inner_text()
    assert "not a known event type; did you mean agent.halted" in notice
    assert page.locator("#no-events").is_visible()

    page.fill("input[name=event_type]", "")
    page.fill("input[name=stream]", "job:no-such-run")
    page.click("#apply-filters")
    page.wait_for_url("**stream=job%3Ano-such-run**")
    assert page.locator("#no-events").is_visible()
    assert page.locator("#filter-error").count() == 0


def test_a_halted_run_shows_the_halt_and_its_blocked_calls(
    page: Any, ledger: tuple[LedgerHarness, dict[str, Any]]
) -> None:
    _, demo = ledger
    job = demo["job"]
    page.goto(f"/pulse/runs/{job}")
    assert job in page.locator("h1").inner_text()
    assert "active" in page.locator("#halts").inner_text()
    _shot(page, "run")

    page.goto("/pulse/halts")
    halt = page.locator(f"section.halt[data-target='job:{job}']")
    assert halt.count() == 1
    blocked = halt.locator("tr.decision.denied")
    assert blocked.count() >= 1, halt.inner_text()
    assert "blocked" in blocked.first.inner_text()
    _shot(page, "halts")


def test_the_quarantine_page_lists_refusals_with_their_reason_codes(page: Any) -> None:
    page.goto("/pulse/quarantine")
    reasons = page.locator("tr.refused td.reason").all_inner_texts()
    assert "AGENT_HALTED" in reasons
    page.fill("input[name=reason]", "AGENT_HALTED")
    page.press("input[name=reason]", "Enter")
    page.wait_for_url("**reason=AGENT_HALTED**")
    assert set(page.locator("tr.refused td.reason").all_inner_texts()) == {"AGENT_HALTED"}
    _shot(page, "quarantine")

    page.fill("input[name=reason]", "agent_halted")
    page.press("input[name=reason]", "Enter")
    page.wait_for_url("**reason=agent_halted**")
    assert set(page.locator("tr.refused td.reason").all_inner_texts()) == {"AGENT_HALTED"}
    assert page.locator("input[name=reason]").input_value() == "AGENT_HALTED"
    page.fill("input[name=reason]", "SIGNATURE_BAD")
    page.press("input[name=reason]", "Enter")
    page.wait_for_url("**reason=SIGNATURE_BAD**")
    assert "is not a known reason code" in page.locator("#filter-error").inner_text()


def test_a_forged_bundle_shows_as_invalid(page: Any, tmp_path: Path) -> None:
    vector = Path(__file__).resolve().parents[1] / "vectors" / "clawsig-proof-bundle-pass.v1.json"
    page.goto("/pulse/verify")
    page.set_input_files("#file", str(vector))
    page.click("#verify")
    assert page.locator("#verdict").inner_text().startswith("VALID")

    forged = json.loads(vector.read_text())
    forged["payload"]["agent_did"] = forged["payload"]["agent_did"][:-4] + "AAAA"
    forged_path = tmp_path / "forged-bundle.json"
    forged_path.write_text(json.dumps(forged))
    page.goto("/pulse/verify")
    page.set_input_files("#file", str(forged_path))
    page.click("#verify")
    verdict = page.locator("#verdict").inner_text()
    assert verdict.startswith("INVALID"), verdict
    assert page.locator("li.step.bad").count() == 1
    _shot(page, "forged-bundle")
