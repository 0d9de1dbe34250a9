"""An attacker with the ledger's own database URL, as the owner, bypassing the
append-only triggers: ``claw-ledger audit`` finds every kind of change, and a
restarted processor refuses control-plane rows it did not write; a second
consumer group is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from ledger.roles import Role
from ledger.tokens import build_claims, issue_token
from tests.fixtures_ledger import LedgerHarness, ProcessorProcess, start_ledger
from tests.fixtures_ledger import run_cli as _cli

pytestmark = pytest.mark.integration


def _audit(ledger: LedgerHarness) -> tuple[int, dict[str, Any]]:
    result = _cli(ledger.env, "audit", "--json")
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


async def _owner(ledger: LedgerHarness) -> asyncpg.Connection:
    """A connection that skips every trigger (what only the owner can do)."""
    conn = await ledger.connect()
    await conn.execute("SET session_replication_role = replica")
    return conn


async def _halt(ledger: LedgerHarness, target: str, reason: str) -> None:
    operator = ledger.keys[Role.OPERATOR]
    body = {"target": target, "reason": reason}
    verdict = await ledger.publish(operator, "agent.halted", f"halt:{target}", body)
    assert verdict["status"] == "committed", verdict


async def test_audit_finds_every_kind_of_changed_row(
    ledger_servers: Any, ledger_settings: Any, tmp_path: Path
) -> None:
    ledger = await start_ledger(ledger_servers, ledger_settings, tmp_path)
    try:
        for n in range(12):
            await _halt(ledger, f"job:tamper-{n}", f"r{n}")
        await ledger.publish_raw(b"not json")
        await ledger.publish_raw(b'{"also": "refused"}')
        await ledger.wait_quarantine_count(2)
        code, clean = _audit(ledger)
        assert code == 0 and clean["problems"] == [], clean["problems"]
        assert clean["quarantine"] == 2
        assert set(clean["control_digests"].values()) == {"ok"}
    finally:
        ledger.processor.stop()

    conn = await _owner(ledger)
    try:
        rows = await conn.fetch(
            "SELECT position, kafka_partition AS p, ledger_seq AS seq, kafka_topic, kafka_offset"
            " FROM events WHERE stream LIKE 'halt:job:tamper-%' ORDER BY position"
        )
        # a partition with four halts of its own: two swap seqs, one is deleted
        by_partition: dict[int, list[Any]] = {}
        for row in rows:
            by_partition.setdefault(row["p"], []).append(row)
        chain = max(by_partition.values(), key=len)
        assert len(chain) >= 4, "the halts should spread over few partitions"
        swap_a, swap_b, _, deleted = chain[-4:]
        assert swap_b["seq"] == swap_a["seq"] + 1
        chain_rows = {r["position"] for r in (swap_a, swap_b, deleted)}
        single = [r for r in rows if r["position"] not in chain_rows][:7]
        columns = {
            "payload": "payload = jsonb_set(payload, '{body,reason}', '\"forged\"')",
            "event_type": "event_type = 'agent.resumed'",
            "stream": "stream = 'halt:job:forged'",
            "producer": "producer = 'did:key:z6MkForged'",
            "occurred_at": "occurred_at = occurred_at + interval '1 hour'",
            "payload_hash_b64u": "payload_hash_b64u = reverse(payload_hash_b64u)",
            "envelope_sha256": "envelope_sha256 = reverse(envelope_sha256)",
        }
        changed: dict[str, Any] = {}
        for (column, assignment), row in zip(columns.items(), single, strict=True):
            await conn.execute(
                f"UPDATE events SET {assignment} WHERE position = $1", row["position"]
            )
            changed[column] = row
        # the envelope itself, on a row of its own (the chain link covers its bytes)
        [raw_row] = [r for r in rows if r["position"] not in chain_rows][7:8]
        await conn.execute(
            "UPDATE events SET envelope_raw = convert_to(replace(convert_from(envelope_raw,"
            " 'UTF8'), '\"reason\":\"r', '\"reason\":\"x'), 'UTF8') WHERE position = $1",
            raw_row["position"],
        )
        for position, seq in ((swap_a["position"], -1), (swap_b["position"], swap_a["seq"])):
            await conn.execute(
                "UPDATE events SET ledger_seq = $2 WHERE position = $1", position, seq
            )
        await conn.execute(
            "UPDATE events SET ledger_seq = $2 WHERE position = $1",
            swap_a["position"],
            swap_b["seq"],
        )
        await conn.execute("DELETE FROM events WHERE position = $1", deleted["position"])
        first_q, second_q = await conn.fetch("SELECT id FROM quarantine ORDER BY id")
        await conn.execute("UPDATE quarantine SET raw = 'shorter' WHERE id = $1", first_q["id"])
        await conn.execute(
            "UPDATE quarantine SET reason_code = 'FORGIVEN' WHERE id = $1", second_q["id"]
        )
        # a refusal invented for an event the ledger accepted
        await conn.execute(
            "INSERT INTO quarantine (reason_code, detail, raw, raw_size, kafka_topic,"
            " kafka_partition, kafka_offset) VALUES ('SIGNATURE_INVALID', 'forged', 'x', 1,"
            " $1, $2, $3)",
            rows[0]["kafka_topic"],
            rows[0]["p"],
            rows[0]["kafka_offset"],
        )
    finally:
        await conn.close()

    code, report = _audit(ledger)
    assert code == 1
    found = {(p["kind"], p["partition"], p["ledger_seq"], p["column"]) for p in report["problems"]}
    for column, row in changed.items():
        assert ("COLUMN_MISMATCH", row["p"], row["seq"], column) in found, column
    # each lane's topic has chains of its own: a partition and seq name a row with its topic
    located = {
        (p["kind"], p["column"]): (p["topic"], p["row"])
        for p in report["problems"]
        if p["kind"] == "COLUMN_MISMATCH"
    }
    for column, row in changed.items():
        assert located[("COLUMN_MISMATCH", column)] == (row["kafka_topic"], row["position"])
    untopical = [p for p in report["problems"] if p["table"] == "events" and not p["topic"]]
    assert not untopical, untopical
    # by partition too: the row with the altered envelope has a payload mismatch of its own
    at_payload = (changed["payload"]["p"], changed["payload"]["seq"])
    payload = next(
        p
        for p in report["problems"]
        if p["column"] == "payload" and (p["partition"], p["ledger_seq"]) == at_payload
    )
    assert "forged" in payload["found"] and "forged" not in payload["expected"]
    at_raw = (raw_row["p"], raw_row["seq"])
    assert ("SIGNATURE_INVALID", *at_raw, "envelope_raw") in found
    assert ("CHAIN_BROKEN", *at_raw, "chain_hash") in found
    assert ("COLUMN_MISMATCH", *at_raw, "envelope_sha256") in found
    assert ("COLUMN_MISMATCH", *at_raw, "payload") in found  # the column kept the old body
    p = swap_a["p"]
    assert ("CHAIN_BROKEN", p, swap_a["seq"], "prev_chain_hash") in found
    assert ("CHAIN_BROKEN", p, swap_b["seq"], "chain_hash") in found
    missing = [
        x
        for x in report["problems"]
        if x["kind"] == "ROW_MISSING" and x["partition"] == p and x["expected"] == deleted["seq"]
    ]
    assert missing, report["problems"]
    by_kind = {(x["kind"], x["row"]) for x in report["problems"] if x["table"] != "events"}
    assert ("QUARANTINE_SIZE_MISMATCH", first_q["id"]) in by_kind
    assert ("QUARANTINE_REASON_UNKNOWN", second_q["id"]) in by_kind
    assert any(k == "COORDINATES_DUPLICATE" for k, _ in by_kind)
    assert set(report["control_digests"].values()) == {"ok"}
    text = _cli(ledger.env, "audit")
    assert text.returncode == 1 and "COLUMN_MISMATCH" in text.stdout
    stream = changed["stream"]
    assert (
        f"COLUMN_MISMATCH partition {stream['kafka_topic']}/{stream['p']} seq {stream['seq']}"
        f" stream (position {stream['position']})"
    ) in text.stdout


async def test_a_processor_refuses_control_rows_changed_behind_its_back(
    ledger_servers: Any, ledger_settings: Any, tmp_path: Path
) -> None:
    ledger = await start_ledger(ledger_servers, ledger_settings, tmp_path)
    try:
        await _halt(ledger, "job:stays-halted", "incident")
        issuer = ledger.keys[Role.ISSUER]
        issued = issue_token(
            build_claims(sub="agent:alpha", aud="clawproxy", scope=["tools:read"]), issuer
        )
        jti = issued.jti
        for event_type, body in (
            ("token.issued", issued.event_body(issuer.did)),
            ("token.revoked", {"jti": jti, "reason": "leaked"}),
        ):
            verdict = await ledger.publish(issuer, event_type, f"token:{jti}", body)
            assert verdict["status"] == "committed", verdict
    finally:
        ledger.processor.stop()
    assert _audit(ledger)[0] == 0

    conn = await ledger.connect()  # projections have no triggers: any writer can do this
    try:
        await conn.execute("UPDATE halts SET active = false WHERE target = 'job:stays-halted'")
        await conn.execute("UPDATE tokens SET status = 'active' WHERE jti = $1", jti)
    finally:
        await conn.close()

    restarted = _cli(
        ledger.env, "processor", "run", "--group", ledger.processor.group, "--no-status"
    )
    assert restarted.returncode == 2, restarted.stderr
    assert "halts, tokens" in restarted.stderr and "claw-ledger audit" in restarted.stderr

    code, report = _audit(ledger)
    assert code == 1
    # both the digests and the rebuild from the events see each changed table
    assert {(p["kind"], p["table"]) for p in report["problems"]} == {
        ("DIGEST_MISMATCH", "halts"),
        ("DIGEST_MISMATCH", "tokens"),
        ("PROJECTION_MISMATCH", "halts"),
        ("PROJECTION_MISMATCH", "tokens"),
    }
    assert report["control_digests"] == {
        "keys": "ok",
        "policies": "ok",
        "tokens": "mismatch",
        "jobs": "ok",
        "halts": "mismatch",
    }

    # put the rows back as the ledger wrote them: the processor starts again
    conn = await ledger.connect()
    try:
        await conn.execute("UPDATE halts SET active = true WHERE target = 'job:stays-halted'")
        await conn.execute("UPDATE tokens SET status = 'revoked' WHERE jti = $1", jti)
    finally:
        await conn.close()
    again = ProcessorProcess(ledger.settings, tmp_path / "again.log", ledger.processor.group)
    again.start()
    try:
        await _halt(ledger, "job:after-restore", "still obeyed")
    finally:
        again.stop()
    assert _audit(ledger)[0] == 0


async def test_audit_reports_altered_and_missing_rows(
    ledger_servers: Any, ledger_settings: Any, tmp_path: Path
) -> None:
    ledger = await start_ledger(ledger_servers, ledger_settings, tmp_path)
    try:
        operator = ledger.keys[Role.OPERATOR]
        for n in range(6):
            verdict = await ledger.publish(
                operator,
                "agent.halted",
                "halt:job:audit",
                {"target": "job:audit", "reason": f"r{n}"},
            )
            assert verdict["status"] == "committed"
        clean = _cli(ledger.env, "audit", "--json")
        assert clean.returncode == 0, clean.stdout
        conn = await ledger.connect()
        try:
            partition, last_seq = await conn.fetchrow(
                "SELECT kafka_partition, max(ledger_seq) FROM events"
                " WHERE stream = 'halt:job:audit' GROUP BY kafka_partition"
            )
            # only a superuser who disables the guard can do this: that is what audit is for
            await conn.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
            await conn.execute(
                "UPDATE events SET envelope_raw = convert_to(replace("
                "convert_from(envelope_raw, 'UTF8'), '\"r2\"', '\"r9\"'), 'UTF8')"
                " WHERE stream = 'halt:job:audit'"
            )
            altered = _cli(ledger.env, "audit", "--json")
            await conn.execute(
                "DELETE FROM events WHERE kafka_partition = $1 AND ledger_seq = $2",
                partition,
                last_seq,
            )
            truncated = _cli(ledger.env, "audit", "--json")
            await conn.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")
        finally:
            await conn.close()
        assert altered.returncode == 1
        problems = {p["problem"] for p in json.loads(altered.stdout)["problems"]}
        assert "chain hash mismatch" in problems
        assert "envelope does not verify" in problems
        assert truncated.returncode == 1
        tail = json.loads(truncated.stdout)["problems"]
        assert any(p["problem"].startswith(f"chain ends at seq {last_seq - 1}") for p in tail)
    finally:
        ledger.processor.stop()


async def test_a_second_consumer_group_is_refused(running_ledger: Any) -> None:
    result = _cli(running_ledger.env, "processor", "run", "--group", "intruder", "--no-status")
    assert result.returncode == 2
    assert f"--group {running_ledger.processor.group}" in result.stderr
