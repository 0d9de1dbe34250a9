"""``claw-ledger replay`` and ``state at`` on the real broker and database."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from ledger.chain import chain_hash
from ledger.crypto import KeyPair
from ledger.encoding import sha256_b64u
from ledger.events import build_event, sign_event
from tests.fixtures_ledger import LedgerHarness, run_cli_on_a_terminal, start_ledger
from tests.fixtures_ledger import run_cli as cli

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def flow(
    ledger_servers: Any, ledger_settings: Any, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[LedgerHarness, dict[str, Any]]]:
    """A ledger of its own (its projections get altered here) that went through the
    demo (keys, WPC, URM, token, run, receipts, completion, a halt), then a resume,
    a new job and its halt."""
    ledger = await start_ledger(
        ledger_servers, ledger_settings, tmp_path_factory.mktemp("replay-ledger")
    )
    try:
        demo = cli(ledger.env, "demo", "--json")
        assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
        summary = json.loads(demo.stdout)
        job = summary["job"]
        # the demo leaves the checkpointer running; this ledger's moments need no more events
        assert cli(ledger.env, "checkpointer", "stop").returncode == 0
        resumed = cli(
            ledger.env,
            *("resume", f"job:{job}", "--policy", summary["policy_hash_b64u"]),
            *("--reason", "drill over", "--key", "operator"),
        )
        assert resumed.returncode == 0, resumed.stderr
        await asyncio.sleep(1.1)
        moments: dict[str, Any] = {"job": job, "before_halt": datetime.now(UTC)}
        await asyncio.sleep(1.1)
        halted = cli(ledger.env, "halt", "*", "--reason", "incident 42", "--key", "operator")
        assert halted.returncode == 0, halted.stderr
        await asyncio.sleep(1.1)
        moments["after_halt"] = datetime.now(UTC)
        yield ledger, moments
    finally:
        ledger.processor.stop()


def _summary(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    try:
        return dict(json.loads(result.stdout))
    except json.JSONDecodeError as exc:
        raise AssertionError(result.stdout + result.stderr) from exc


def test_replays_from_ledger_and_kafka_match_the_live_projections(
    flow: tuple[LedgerHarness, dict[str, Any]],
) -> None:
    ledger, moments = flow
    from_ledger = cli(ledger.env, "replay", "--compare", "--json")
    summary = _summary(from_ledger)
    assert from_ledger.returncode == 0, summary
    assert summary["breaks"] == [] and summary["diffs"] == []
    assert summary["trust_root"] == ledger.admin.did
    assert summary["trust_root_from"] == "ledger_meta"
    for event_type in ("run.started", "receipt.recorded", "agent.halted", "agent.resumed"):
        assert summary["types"][event_type] >= 1, summary["types"]

    schema = f"replay_{uuid.uuid4().hex[:8]}"
    from_kafka = cli(
        ledger.env, "replay", "--source", "kafka", "--into", schema, "--compare", "--json"
    )
    kafka = _summary(from_kafka)
    assert from_kafka.returncode == 0, kafka
    assert kafka["accepted"] == summary["accepted"]
    assert kafka["skipped"].get("AGENT_HALTED", 0) >= 1  # the demo's refused receipt
    assert kafka["written"] and kafka["diffs"] == []

    # the schema holds the rebuild; a second replay into it is refused
    again = cli(ledger.env, "replay", "--into", schema)
    assert again.returncode == 2 and "already holds rows" in again.stderr
    public = cli(ledger.env, "replay", "--into", "public")
    assert public.returncode == 2 and "never replaced" in public.stderr

    reported = _summary(cli(ledger.env, "replay", "--job", moments["job"], "--json"))
    assert reported["reported_types"]["run.started"] == 1
    assert reported["reported"] < reported["accepted"]


async def test_a_fresh_database_is_rebuilt_from_the_topic(
    flow: tuple[LedgerHarness, dict[str, Any]], fresh_database: str
) -> None:
    ledger, _ = flow
    env = dict(ledger.env) | {"CLAW_LEDGER_DATABASE_URL": fresh_database}
    result = cli(env, "replay", "--source", "kafka", "--into", "rebuilt", "--json")
    summary = _summary(result)
    assert result.returncode == 0, summary
    assert summary["trust_root_from"] == "bootstrap"
    assert summary["trust_root"] == ledger.admin.did
    conn = await ledger.connect()
    try:
        live_jobs = await conn.fetchval("SELECT count(*) FROM jobs")
    finally:
        await conn.close()
    import asyncpg

    fresh = await asyncpg.connect(fresh_database)
    try:
        assert await fresh.fetchval("SELECT count(*) FROM rebuilt.jobs") == live_jobs
        assert await fresh.fetchval("SELECT count(*) FROM jobs") == 0
    finally:
        await fresh.close()


def test_a_replay_of_the_topic_takes_the_recorded_trust_root_first(
    flow: tuple[LedgerHarness, dict[str, Any]], tmp_path: Path
) -> None:
    """The help's order: --trust-root, else the one init recorded, else the topic's
    first admin. A topic that also holds another ledger's events cannot choose."""
    ledger, _ = flow
    recorded = _summary(cli(ledger.env, "replay", "--source", "kafka", "--json"))
    assert recorded["trust_root_from"] == "ledger_meta"
    assert recorded["trust_root"] == ledger.admin.did

    nowhere = dict(ledger.env) | {"CLAW_LEDGER_DATABASE_URL": "postgresql://x@127.0.0.1:1/db"}
    unreachable = cli(nowhere, "replay", "--source", "kafka")
    assert unreachable.returncode == 2, unreachable.stderr
    assert "the ledger's recorded trust root cannot be read" in unreachable.stderr
    assert "--trust-root DID" in unreachable.stderr

    # no database at all: the events alone, from the topic's first admin
    events_only = {
        name: value
        for name, value in ledger.env.items()
        if name
        not in ("CLAW_LEDGER_DATABASE_URL", "CLAW_LEDGER_WRITER_URL", "CLAW_LEDGER_READER_URL")
    } | {"CLAW_LEDGER_STATE_DIR": str(tmp_path)}
    bootstrap = cli(events_only, "replay", "--source", "kafka", "--json")
    assert bootstrap.returncode == 0, bootstrap.stderr
    assert _summary(bootstrap)["trust_root_from"] == "bootstrap"


def test_state_at_before_and_after_a_halt(flow: tuple[LedgerHarness, dict[str, Any]]) -> None:
    ledger, moments = flow
    before = cli(ledger.env, "state", "at", moments["before_halt"].isoformat(), "--json")
    after = cli(ledger.env, "state", "at", moments["after_halt"].isoformat(), "--json")
    assert before.returncode == 0 and after.returncode == 0, before.stderr + after.stderr
    halted_before = {h["target"] for h in json.loads(before.stdout)["halted"]}
    halted_after = {h["target"] for h in json.loads(after.stdout)["halted"]}
    assert "*" not in halted_before and f"job:{moments['job']}" not in halted_before
    assert "*" in halted_after
    state = json.loads(before.stdout)
    assert state["active_policies"]
    assert state["events"] < json.loads(after.stdout)["events"]


def test_state_at_says_what_is_empty_and_when_nothing_was_recorded_yet(
    flow: tuple[LedgerHarness, dict[str, Any]],
) -> None:
    """An empty part is printed as such ("nothing halted" is the answer a responder
    asks for), and a moment before the ledger's first event says so, where it
    printed a bare "after 0 events"."""
    ledger, moments = flow
    before = cli(ledger.env, "state", "at", moments["before_halt"].isoformat())
    assert before.returncode == 0, before.stderr
    assert "\n  halted   none\n" in before.stdout  # the demo's halt was lifted by then
    assert "\n  policy   none active\n" not in before.stdout
    after = cli(ledger.env, "state", "at", moments["after_halt"].isoformat())
    assert "\n  halted   *  (incident 42)\n" in after.stdout
    assert "halted   none" not in after.stdout
    early = cli(ledger.env, "state", "at", "2000-01-01T00:00:00Z")
    assert early.returncode == 0, early.stderr
    assert early.stdout == (
        "state at 2000-01-01T00:00:00.000000Z: no event was recorded at or before it\n"
    )
    assert (
        json.loads(cli(ledger.env, "state", "at", "2000-01-01T00:00:00Z", "--json").stdout)[
            "events"
        ]
        == 0
    )


def test_a_replay_on_a_terminal_shows_its_progress(
    flow: tuple[LedgerHarness, dict[str, Any]],
) -> None:
    """A replay reads the whole ledger: minutes on a large one, so the terminal
    shows how far it is (events of the total); state at T is a replay too."""
    ledger, moments = flow
    code, out, shown = run_cli_on_a_terminal(ledger.env, "replay")
    assert code == 0, shown
    done = re.findall(r"replay\b.*?(\d+)/(\d+)", shown)
    assert done and done[-1][0] == done[-1][1], shown  # the bar ends full
    code, out, shown = run_cli_on_a_terminal(
        ledger.env, "state", "at", moments["before_halt"].isoformat()
    )
    assert code == 0, shown
    read, total = map(int, re.findall(r"replay\b.*?(\d+)/(\d+)", shown)[-1])
    assert out.startswith("state at ") and f"after {read:,} events" in out
    assert read < total  # it stopped at T
    # not on a terminal, or asked for JSON: no bar
    piped = cli(ledger.env, "replay")
    assert piped.returncode == 0 and "━" not in piped.stderr
    code, out, shown = run_cli_on_a_terminal(ledger.env, "replay", "--json")
    assert code == 0 and "━" not in shown and json.loads(out)["events"] == int(done[-1][0])


def test_an_audit_on_a_terminal_shows_each_stage(
    flow: tuple[LedgerHarness, dict[str, Any]],
) -> None:
    """An audit reads every event twice (columns and chains, then the verified
    rebuild) and then the whole log: each stage is a bar of its own, and each ends
    full, so a responder sees which pass a long audit is in and how far it is."""
    ledger, _ = flow
    report = json.loads(cli(ledger.env, "audit", "--json").stdout)
    assert report["ok"] and report["transparency_log"]["leaves"] > 0
    code, out, shown = run_cli_on_a_terminal(ledger.env, "audit")
    assert code == 0 and out.rstrip().endswith("OK"), shown
    expected = {
        "audit events": report["events"],
        "audit quarantine": report["quarantine"],
        "audit rebuild": report["events"],
        "audit log leaves": report["transparency_log"]["leaves"],
    }
    for stage, count in expected.items():
        done = re.findall(rf"{stage}\b.*?(\d+)/(\d+)", shown)
        assert done and done[-1] == (str(count), str(count)), (stage, shown)
    # asked for JSON: no bar, on a terminal too
    code, out, shown = run_cli_on_a_terminal(ledger.env, "audit", "--json")
    assert code == 0 and "━" not in shown and json.loads(out)["events"] == report["events"]


async def test_an_altered_projection_row_is_a_difference(
    flow: tuple[LedgerHarness, dict[str, Any]],
) -> None:
    ledger, moments = flow
    conn = await ledger.connect()
    try:
        original = await conn.fetchval(
            "SELECT reason FROM halts WHERE target = $1", f"job:{moments['job']}"
        )
        await conn.execute(
            "UPDATE halts SET reason = 'rewritten' WHERE target = $1", f"job:{moments['job']}"
        )
        try:
            result = cli(ledger.env, "replay", "--compare")
            audit = cli(ledger.env, "audit", "--json")
        finally:
            await conn.execute(
                "UPDATE halts SET reason = $2 WHERE target = $1", f"job:{moments['job']}", original
            )
    finally:
        await conn.close()
    assert result.returncode == 1
    assert f"DIFF: halts 'job:{moments['job']}': changed reason" in result.stdout
    assert "rewritten" in result.stdout
    assert audit.returncode == 1
    found = json.loads(audit.stdout)["problems"]
    problems = [p["problem"] for p in found]
    assert any(p.startswith("projection differs: halts") for p in problems), problems
    [mismatch] = [p for p in found if p["kind"] == "PROJECTION_MISMATCH"]
    assert (mismatch["table"], mismatch["row"]) == ("halts", f"job:{moments['job']}")


async def test_a_forged_row_stops_the_replay_and_is_named(
    ledger_servers: Any, ledger_settings: Any, tmp_path: Path
) -> None:
    ledger = await start_ledger(ledger_servers, ledger_settings, tmp_path, register_roles=False)
    ledger.processor.stop()
    forger = KeyPair.generate("forger")
    event = build_event("agent.halted", "halt:*", {"target": "*", "reason": "forged"}, forger)
    raw = sign_event(event, forger).to_bytes()
    conn = await ledger.connect()
    try:
        partition, seq, prev = await conn.fetchrow(
            "SELECT kafka_partition, ledger_seq, chain_hash FROM events WHERE kafka_topic = $1"
            " ORDER BY position DESC",
            ledger.topics.ingress,
        )
        envelope_sha = sha256_b64u(raw)
        link = chain_hash(prev, partition, seq + 1, event.event_id, envelope_sha)
        await conn.execute(
            "INSERT INTO events (event_id, event_type, stream, producer, occurred_at,"
            " payload_hash_b64u, envelope_sha256, envelope_raw, payload, kafka_topic,"
            " kafka_partition, kafka_offset, ledger_seq, prev_chain_hash, chain_hash)"
            " VALUES ($1::uuid, 'agent.halted', 'halt:*', $2, now(), $3, $4, $5, $6::jsonb,"
            " $7, $8, 1000000, $9, $10, $11)",
            event.event_id,
            forger.did,
            json.loads(raw)["payload_hash_b64u"],
            envelope_sha,
            raw,
            json.dumps(json.loads(raw)["payload"]),
            ledger.topics.ingress,
            partition,
            seq + 1,
            prev,
            link,
        )
    finally:
        await conn.close()
    result = cli(ledger.env, "replay", "--json")
    summary = _summary(result)
    assert result.returncode == 1
    (broken,) = summary["breaks"]
    assert broken["code"] == "UNKNOWN_SIGNER"
    assert broken["event_id"] == event.event_id
    assert broken["ledger_seq"] == seq + 1 and broken["partition"] == partition
    assert summary["accepted"] == 1  # the trust root's own registration, before the forgery
