"""The control lane (ADR 0024) on the real broker and database: halts, resumes and
revocations travel on ``<prefix>.control``, consumed ahead of the ingress backlog
by a consumer of their own, with the same verification, exactly-once commit and
per-(topic, partition) hash chains."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from ledger.crypto import KeyPair
from ledger.events import build_event, sign_event
from ledger.roles import Role
from producers.sdk import LedgerProducer, NewEvent, RawEvent, sign_many
from tests.fixtures_ledger import LedgerHarness, ProcessorProcess, run_cli, start_ledger
from tests.integration._kill_switch import Flow

pytestmark = pytest.mark.integration

#: ordinary events queued ahead of the halt (the issue's figure; smaller for a quick run)
BACKLOG = int(os.environ.get("CLAW_LEDGER_TEST_BACKLOG", "200000"))


def _attestation(n: int, run: str) -> NewEvent:
    return NewEvent(
        "policy.attested",
        f"openclaw-policy:{run}-{n % 64}",
        {
            "ok": True,
            "policy_hash": None,
            "workspace_hash": f"ws-{n}",
            "findings_hash": "f",
            "attestation_hash": f"a-{run}-{n}",
            "checked_at": "2026-11-30T00:00:00.000Z",
            "policy_path": "openclaw.policy.json5",
            "findings_count": 0,
        },
    )


def _sign_chunk(seed: bytes, start: int, count: int, run: str) -> list[RawEvent]:
    key = KeyPair.from_seed(seed)
    return sign_many(key, (_attestation(n, run) for n in range(start, start + count)))


def _presign(key: KeyPair, count: int, run: str) -> list[RawEvent]:
    """``count`` signed ``policy.attested`` events (ingress lane), by the SDK's bulk path."""
    seed = bytes(key.signing_key)
    step = max(1, count // 16)
    with ProcessPoolExecutor(max_workers=2) as pool:
        futures = [
            pool.submit(_sign_chunk, seed, start, min(step, count - start), run)
            for start in range(0, count, step)
        ]
        return [event for future in futures for event in future.result()]


async def _publish(producer: LedgerProducer, key: KeyPair, event: NewEvent) -> Any:
    return await producer.publish(key, event.event_type, event.stream, event.body)


def _bulk_producer(ledger: LedgerHarness) -> LedgerProducer:
    assert ledger.settings.kafka_bootstrap
    return LedgerProducer(
        ledger.settings.kafka_bootstrap, ledger.topics, linger_ms=10, max_batch_size=1024 * 1024
    )


async def _attested(conn: asyncpg.Connection) -> int:
    return int(
        await conn.fetchval("SELECT count(*) FROM events WHERE event_type = 'policy.attested'")
    )


async def _until(check: Any, timeout: float, what: str, ledger: LedgerHarness) -> Any:
    """Poll ``check()`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            print(ledger.processor.log_tail())
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _row(conn: asyncpg.Connection, table: str, event_id: str) -> asyncpg.Record | None:
    column = "event_id::text" if table == "events" else "event_id"
    return await conn.fetchrow(f"SELECT * FROM {table} WHERE {column} = $1", event_id)


async def test_a_halt_behind_a_backlog_commits_first_and_survives_a_crash(
    ledger_servers: Any, ledger_settings: Any, tmp_path: Path
) -> None:
    ledger = await start_ledger(ledger_servers, ledger_settings, tmp_path / "ledger")
    work = tmp_path / "work"
    work.mkdir()
    flow = Flow(ledger, work)
    try:
        job, _ = flow.started_job("agent:lane", flow.wpc("lane"))
        flow.ok(*flow.receipt(job))
        run = uuid.uuid4().hex[:8]
        backlog = _presign(ledger.keys[Role.RUNTIME], BACKLOG, run)
        forger = KeyPair.generate("operator")  # registered nowhere

        # everything queued while no processor runs: the backlog, then the halts
        ledger.processor.stop()
        async with _bulk_producer(ledger) as producer:
            for start in range(0, len(backlog), 5_000):
                sent = await producer.send_raw_many(backlog[start : start + 5_000])
                assert {p.topic for p in sent} == {ledger.topics.ingress}
            forged = await (
                await producer.send_envelope(
                    sign_event(
                        build_event(
                            "agent.halted", "halt:*", {"target": "*", "reason": "forged"}, forger
                        ),
                        forger,
                    )
                )
            )
            halt = await producer.publish(
                ledger.keys[Role.OPERATOR],
                "agent.halted",
                f"halt:job:{job}",
                {"target": f"job:{job}", "reason": "runaway gateway"},
            )
        assert forged.topic == halt.topic == ledger.topics.control
        ledger.processor.start()

        conn = await ledger.connect()
        try:
            committed = await _until(
                lambda: _row(conn, "events", halt.event_id), 120, "the halt", ledger
            )
            at_halt = await _attested(conn)
            # the halt did not wait for the backlog: most of it was still queued
            assert at_halt < BACKLOG // 2, at_halt
            assert committed["kafka_topic"] == ledger.topics.control
            refused = await _until(
                lambda: _row(conn, "quarantine", forged.event_id), 60, "the forgery", ledger
            )
            assert refused["reason_code"] == "UNKNOWN_SIGNER"
            assert refused["kafka_topic"] == ledger.topics.control
            assert await conn.fetchval("SELECT count(*) FROM halts WHERE target = '*'") == 0

            # a crash in the middle of the backlog
            await _until(
                lambda: _attested_at_least(conn, min(at_halt + 2_000, BACKLOG)),
                120,
                "more of the backlog",
                ledger,
            )
            at_kill = await _attested(conn)
            assert at_kill < BACKLOG, "the backlog drained before the processor could be killed"
            ledger.processor.kill()
            ledger.processor.start()
            await _until(
                lambda: _attested_at_least(conn, BACKLOG), 300, "the whole backlog", ledger
            )
            await asyncio.sleep(1.0)  # a re-delivery after the last batch would show now

            recorded = {
                r["event_id"]
                for r in await conn.fetch(
                    "SELECT event_id::text AS event_id FROM events"
                    " WHERE event_type = 'policy.attested'"
                )
            }
            assert await _attested(conn) == BACKLOG, "lost or doubled backlog events"
            assert recorded == {event.event_id for event in backlog}
            # commit order: the halt's ledger position precedes most of the backlog's
            ahead = await conn.fetchval(
                "SELECT count(*) FROM events WHERE event_type = 'policy.attested'"
                " AND position < $1",
                committed["position"],
            )
            assert ahead < BACKLOG // 2
            assert await conn.fetchval("SELECT active FROM halts WHERE target = $1", f"job:{job}")
            assert await conn.fetchval("SELECT count(*) FROM halts WHERE target = '*'") == 0
        finally:
            await conn.close()
        # the halt is still in force after the restart: the job's next receipt is refused
        flow.refused("AGENT_HALTED", *flow.receipt(job))
        audit = run_cli(ledger.env, "audit", "--json")
        report = json.loads(audit.stdout)
        assert audit.returncode == 0, report["problems"][:5]
        lanes = {name.rsplit("/", 1)[0] for name in report["partitions"]}
        assert lanes == {ledger.topics.ingress, ledger.topics.control}
    finally:
        ledger.processor.stop()


async def _attested_at_least(conn: asyncpg.Connection, count: int) -> bool:
    return await _attested(conn) >= count


async def test_a_lane_left_out_is_not_consumed_until_a_process_runs_it(
    ledger_servers: Any, ledger_settings: Any, tmp_path: Path
) -> None:
    ledger = await start_ledger(ledger_servers, ledger_settings, tmp_path, register_roles=False)
    processes: list[ProcessorProcess] = []
    try:
        operator = await ledger.register_key(Role.OPERATOR)
        runtime = await ledger.register_key(Role.RUNTIME)
        ledger.processor.stop()

        def processor(lanes: str) -> ProcessorProcess:
            process = ProcessorProcess(
                ledger.settings, tmp_path / f"{lanes}.log", ledger.processor.group, lanes=lanes
            )
            process.start()
            processes.append(process)
            return process

        processor("ingress")
        run = uuid.uuid4().hex[:8]
        async with ledger.producer() as producer:
            halt = await producer.publish(
                operator, "agent.halted", "halt:job:lane-a", {"target": "job:lane-a", "reason": "x"}
            )
            # an old producer that knows no lanes: a halt on the ingress topic
            old = producer.sign(
                operator, "agent.halted", "halt:job:lane-b", {"target": "job:lane-b", "reason": "y"}
            )
            late = await (
                await producer.send_raw(
                    old.to_bytes(),
                    "halt:job:lane-b",
                    str(old.payload["event_id"]),
                    topic=ledger.topics.ingress,
                )
            )
            # and an ordinary event sent to the control topic by hand
            [stray] = sign_many(runtime, [_attestation(0, run)])
            odd = await (
                await producer.send_raw(
                    stray.value, stray.stream, stray.event_id, topic=ledger.topics.control
                )
            )
            after = await _publish(producer, runtime, _attestation(1, run))
        assert halt.topic == odd.topic == ledger.topics.control
        assert late.topic == after.topic == ledger.topics.ingress
        # the ingress lane commits what was published after the halt ...
        assert (await ledger.verdict(after.event_id))["status"] == "committed"
        assert (await ledger.verdict(late.event_id))["status"] == "committed"  # wrong lane: kept
        conn = await ledger.connect()
        try:
            # ... and reads nothing of the control topic
            assert await _row(conn, "events", halt.event_id) is None
            assert await _row(conn, "events", odd.event_id) is None
            assert (
                await conn.fetchval(
                    "SELECT count(*) FROM consumer_positions WHERE topic = $1",
                    ledger.topics.control,
                )
                == 0
            )
        finally:
            await conn.close()

        processor("control")  # same group: the lane catches up where it stands
        for event_id in (halt.event_id, odd.event_id):
            assert (await ledger.verdict(event_id))["status"] == "committed"
        conn = await ledger.connect()
        try:
            topics = dict(
                await conn.fetch(
                    "SELECT event_id::text, kafka_topic FROM events"
                    " WHERE event_id = ANY($1::uuid[])",
                    [halt.event_id, odd.event_id, late.event_id],
                )
            )
            assert await conn.fetchval("SELECT count(*) FROM halts WHERE active") == 2
        finally:
            await conn.close()
        assert topics == {
            halt.event_id: ledger.topics.control,
            odd.event_id: ledger.topics.control,
            late.event_id: ledger.topics.ingress,
        }
        for process in processes:
            process.stop()

        # both lanes' chains audit clean, and replays of the ledger and of both
        # topics rebuild the live projections
        audit = run_cli(ledger.env, "audit", "--json")
        assert audit.returncode == 0, json.loads(audit.stdout)["problems"][:5]
        replayed = run_cli(ledger.env, "replay", "--compare", "--json")
        summary = json.loads(replayed.stdout)
        assert replayed.returncode == 0, summary
        assert summary["diffs"] == [] and summary["types"]["agent.halted"] == 2
        schema = f"lanes_{uuid.uuid4().hex[:8]}"
        from_topics = run_cli(
            ledger.env, "replay", "--source", "kafka", "--into", schema, "--compare", "--json"
        )
        kafka = json.loads(from_topics.stdout)
        assert from_topics.returncode == 0, kafka
        assert kafka["accepted"] == summary["accepted"] and kafka["diffs"] == []
    finally:
        for process in processes:
            process.stop()
        ledger.processor.stop()


async def test_producers_and_the_cli_route_each_event_to_its_lane(
    running_ledger: LedgerHarness,
) -> None:
    ledger = running_ledger
    target = f"job:route-{uuid.uuid4().hex[:8]}"
    halted = run_cli(
        ledger.env, "halt", target, "--reason", "routing", "--key", "operator", "--json"
    )
    assert halted.returncode == 0, halted.stderr
    halt = json.loads(halted.stdout)
    runtime = ledger.keys[Role.RUNTIME]
    run = uuid.uuid4().hex[:8]
    async with ledger.producer() as producer:
        attested = await _publish(producer, runtime, _attestation(0, run))
        # raw bytes carry their type: a resume sent without one still takes the control lane
        resume = producer.sign(
            ledger.keys[Role.OPERATOR],
            "agent.resumed",
            f"halt:{target}",
            {"target": target, "reason": "routing"},
        )
        raw = await (await producer.send_raw(resume.to_bytes(), f"halt:{target}"))
        junk = await (await producer.send_raw(b"not an envelope", "raw:lane"))
    assert halt["topic"] == raw.topic == ledger.topics.control
    assert attested.topic == junk.topic == ledger.topics.ingress
    assert (await ledger.verdict(attested.event_id))["status"] == "committed"
    conn = await ledger.connect()
    try:
        rows = dict(
            await conn.fetch(
                "SELECT event_id::text, kafka_topic FROM events WHERE event_id = ANY($1::uuid[])",
                [halt["event_id"], attested.event_id],
            )
        )
    finally:
        await conn.close()
    assert rows == {
        halt["event_id"]: ledger.topics.control,
        attested.event_id: ledger.topics.ingress,
    }
