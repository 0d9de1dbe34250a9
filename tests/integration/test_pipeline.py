"""End to end on the real broker and database: producer → Kafka → the
``claw-ledger processor run`` process → Postgres."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import asyncpg
import pytest

from ledger.canonical import jcs
from ledger.crypto import KeyPair
from ledger.encoding import b64u_encode
from ledger.envelope import format_timestamp, sign_envelope
from ledger.errors import EventError, TokenError
from ledger.events import build_event, sign_event, sign_event_bytes
from ledger.roles import Role
from ledger.tokens import build_claims, issue_token
from tests.fixtures_ledger import LedgerHarness, run_cli

pytestmark = pytest.mark.integration


def _halt_event(key: KeyPair, **overrides: Any) -> dict[str, Any]:
    event = build_event(
        "agent.halted", f"halt:job:{uuid.uuid4()}", {"target": "*", "reason": "drill"}, key
    )
    document = sign_event(event, key).to_dict()
    document.update(overrides)
    return document


def _resign(document: dict[str, Any], key: KeyPair) -> dict[str, Any]:
    """Re-sign a (modified) payload so that only the intended defect remains."""
    return sign_envelope(document["envelope_type"], document["payload"], key).to_dict()


async def _bad_inputs(ledger: LedgerHarness) -> list[tuple[str, bytes, str | None]]:
    """(expected reason code, raw bytes, event id) for every kind of bad input."""
    operator = ledger.keys[Role.OPERATOR]
    stranger = KeyPair.generate("stranger")
    cases: list[tuple[str, bytes, str | None]] = []

    def add(code: str, document: dict[str, Any] | bytes) -> None:
        raw = document if isinstance(document, bytes) else jcs(document)
        event_id = None
        if isinstance(document, dict) and isinstance(document.get("payload"), dict):
            event_id = document["payload"].get("event_id")
        cases.append((code, raw, event_id))

    add("MALFORMED_JSON", b'{"envelope_version": "1", ')
    add("MALFORMED_JSON", b"\xff\xfe not utf-8")
    add("OVERSIZED", b'{"pad":"' + b"x" * (1_048_576 + 10) + b'"}')
    missing = _halt_event(operator)
    del missing["signature_b64u"]
    add("MALFORMED_ENVELOPE", missing)
    add("UNKNOWN_ENVELOPE_VERSION", _halt_event(operator, envelope_version="2"))
    add("UNKNOWN_HASH_ALGORITHM", _halt_event(operator, hash_algorithm="SHA-1"))
    add("UNKNOWN_ALGORITHM", _halt_event(operator, algorithm="ES256"))
    tampered = _halt_event(operator)
    tampered["payload"]["body"]["reason"] = "tampered after signing"
    add("HASH_MISMATCH", tampered)
    bad_sig = _halt_event(operator)
    bad_sig["signature_b64u"] = b64u_encode(b"\x00" * 64)
    add("SIGNATURE_INVALID", bad_sig)
    add("UNKNOWN_SIGNER", _halt_event(stranger))
    add("ROLE_NOT_ALLOWED", _halt_event(ledger.keys[Role.GATEWAY]))
    schema = _halt_event(operator)
    schema["payload"]["body"]["target"] = 42
    add("SCHEMA_VALIDATION_FAILED", _resign(schema, operator))
    # an impossible date once crashed the processor on every restart (a poison pill)
    impossible_date = _halt_event(operator)
    impossible_date["payload"]["occurred_at"] = "2026-02-30T00:00:00Z"
    add("SCHEMA_VALIDATION_FAILED", _resign(impossible_date, operator))
    unknown_type = _halt_event(operator)
    unknown_type["payload"]["event_type"] = "agent.vanished"
    add("UNKNOWN_EVENT_TYPE", _resign(unknown_type, operator))
    # revoked signer: register, revoke, then publish
    revoked = KeyPair.generate("revoked")
    await ledger.register(revoked, "revoked", "operator")
    verdict = await ledger.publish(
        ledger.admin, "key.revoked", f"key:{revoked.did}", {"did": revoked.did, "reason": "test"}
    )
    assert verdict["status"] == "committed"
    add("SIGNER_REVOKED", _halt_event(revoked))
    return cases


async def test_every_bad_input_is_quarantined_with_its_code_and_nothing_is_lost(
    running_ledger: LedgerHarness,
) -> None:
    ledger = running_ledger
    async with ledger.connection() as conn:
        before_events = await conn.fetchval("SELECT count(*) FROM events")
        before_q = await conn.fetchval("SELECT count(*) FROM quarantine")
    cases = await _bad_inputs(ledger)
    before_events += 2  # the revoked key's registration and revocation
    for _, raw, _ in cases:
        await ledger.publish_raw(raw)
    # the processor is still alive and still accepts good events afterwards
    await ledger.halt("job:after-bad-input", "still running")
    assert ledger.processor.alive()

    rows = await ledger.wait_quarantine_count(before_q + len(cases))
    new_rows = rows[before_q:]
    by_raw = {bytes(r["raw"]): r for r in new_rows}
    for code, raw, event_id in cases:
        row = by_raw.get(raw)
        assert row is not None, f"{code}: raw bytes not kept in quarantine"
        assert row["reason_code"] == code, (code, row["detail"])
        assert row["detail"]
        if event_id is not None:
            assert row["event_id"] == event_id
    async with ledger.connection() as conn:
        after_events = await conn.fetchval("SELECT count(*) FROM events")
        ids = [e for _, _, e in cases if e]
        leaked = await conn.fetchval(
            "SELECT count(*) FROM events WHERE event_id::text = ANY($1::text[])", ids
        )
    assert leaked == 0
    assert after_events == before_events + 1  # only the good event


async def test_the_quarantine_gives_back_refused_bytes_exactly_with_their_topic(
    running_ledger: LedgerHarness,
) -> None:
    """Bytes that are not UTF-8 came back with replacement characters: not what was
    sent. And a partition and offset without the topic name no message."""
    ledger = running_ledger
    marker = uuid.uuid4().hex
    not_utf8 = b"\xff\xfe" + marker.encode() + b"\x80 not utf-8"
    text = f'{{"not an envelope": "{marker} \u00e9"}}'.encode()
    async with ledger.connection() as conn:
        last = await conn.fetchval("SELECT coalesce(max(id), 0) FROM quarantine")
        before = await conn.fetchval("SELECT count(*) FROM quarantine")
    for raw in (not_utf8, text):
        await ledger.publish_raw(raw)
    await ledger.wait_quarantine_count(before + 2)
    listed = run_cli(ledger.env, "quarantine", "--after", str(last), "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)["rows"]
    assert [(r["raw_encoding"], r["kafka_topic"]) for r in rows] == [
        ("base64", ledger.topics.ingress),
        ("utf-8", ledger.topics.ingress),
    ]
    assert base64.b64decode(rows[0]["raw"]) == not_utf8
    assert rows[1]["raw"].encode("utf-8") == text


@pytest.mark.parametrize(
    "sub", [" agent:spaced", "agent:trailing ", "agent with-a-space", "a" * 301]
)
async def test_a_token_whose_subject_no_halt_can_name_is_refused(
    running_ledger: LedgerHarness, sub: str
) -> None:
    """A halt names a subject as `sub:<1-300 non-whitespace>`, and authorize trims
    the subject: a token for " agent:x" escaped the halt of `sub:agent:x` at the
    ledger (its tokens were not revoked, its runs started, its receipts recorded)
    while authorize treated it as that subject. The issuer's own signed event is
    refused, not just the SDK's call."""
    ledger = running_ledger
    issuer = ledger.keys[Role.ISSUER]
    claims = build_claims(
        sub="agent:placeholder", aud="clawproxy", scope=["tools:read"], ttl_seconds=600
    )
    issued = issue_token(claims | {"sub": sub}, issuer)
    body = issued.event_body(issuer.did)
    assert body["sub"] == sub
    with pytest.raises(EventError, match="SCHEMA_VALIDATION_FAILED: sub"):  # before sending
        sign_event_bytes(issuer, "token.issued", f"token:{issued.jti}", body)
    event_id = str(uuid.uuid4())
    payload = {
        "event_type": "token.issued",
        "event_id": event_id,
        "stream": f"token:{issued.jti}",
        "occurred_at": format_timestamp(),
        "producer": issuer.did,
        "body": body,
    }
    await ledger.publish_raw(sign_envelope("ledger_event", payload, issuer).to_bytes())
    verdict = await ledger.verdict(event_id)
    assert verdict["status"] == "quarantined", verdict
    assert verdict["reason_code"] == "SCHEMA_VALIDATION_FAILED"
    # the SDK's claims trim the subject as the scope hash does; what trimming cannot mend
    # is refused when the claims are built
    if sub.strip() != sub:
        fixed = build_claims(sub=sub, aud="clawproxy", scope=["tools:read"], ttl_seconds=600)
        assert fixed["sub"] == sub.strip()
    else:
        with pytest.raises(TokenError, match="cannot be halted as a subject"):
            build_claims(sub=sub, aud="clawproxy", scope=["tools:read"], ttl_seconds=600)


async def test_conflicting_duplicate_id_is_quarantined_and_exact_duplicate_is_a_no_op(
    running_ledger: LedgerHarness,
) -> None:
    ledger = running_ledger
    operator = ledger.keys[Role.OPERATOR]
    event = build_event(
        "agent.halted", "halt:job:dup", {"target": "job:dup", "reason": "a"}, operator
    )
    first = sign_event(event, operator).to_bytes()
    await ledger.publish_raw(first, "halt:job:dup")
    assert (await ledger.verdict(event.event_id))["status"] == "committed"
    await ledger.publish_raw(first, "halt:job:dup")  # the same bytes again
    conflicting = build_event(
        "agent.halted",
        "halt:job:dup",
        {"target": "job:dup", "reason": "b"},
        operator,
        event_id=event.event_id,
    )
    await ledger.publish_raw(sign_event(conflicting, operator).to_bytes(), "halt:job:dup")
    # a marker event on the same stream: once it is committed, both earlier ones were handled
    marker = await ledger.publish(
        operator, "agent.halted", "halt:job:dup", {"target": "job:dup", "reason": "marker"}
    )
    assert marker["status"] == "committed"
    async with ledger.connection() as conn:
        count = await conn.fetchval(
            "SELECT count(*) FROM events WHERE event_id = $1::uuid", event.event_id
        )
        reasons = await conn.fetch(
            "SELECT reason_code FROM quarantine WHERE event_id = $1", event.event_id
        )
    assert count == 1
    assert [r["reason_code"] for r in reasons] == ["DUPLICATE_EVENT_CONFLICT"]


async def test_the_database_itself_refuses_to_change_ledger_rows(
    running_ledger: LedgerHarness,
) -> None:
    async with running_ledger.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM events") > 0
        for sql in (
            "UPDATE events SET stream = 'x:y'",
            "DELETE FROM events",
            "TRUNCATE events",
            "UPDATE quarantine SET reason_code = 'OK'",
            "DELETE FROM quarantine",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(sql)


async def test_verified_and_quarantine_topics_receive_the_outcomes(
    running_ledger: LedgerHarness,
) -> None:

    ledger = running_ledger
    operator = ledger.keys[Role.OPERATOR]
    marker = f"job:topic-{uuid.uuid4()}"
    good = await ledger.publish(
        operator, "agent.halted", f"halt:{marker}", {"target": marker, "reason": "fwd"}
    )
    assert good["status"] == "committed"
    bogus = b'{"not": "an envelope", "marker": "' + marker.encode() + b'"}'
    await ledger.publish_raw(bogus, f"halt:{marker}")
    seen_verified = seen_quarantine = False
    consumer = ledger.outcome_consumer()
    await consumer.start()
    try:
        import time

        deadline = time.monotonic() + 60
        while not (seen_verified and seen_quarantine) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, messages in batch.items():
                for message in messages:
                    if marker.encode() not in message.value:
                        continue
                    if tp.topic == ledger.topics.verified:
                        payload = json.loads(message.value)["payload"]
                        assert payload["event_id"] == good["event_id"]
                        seen_verified = True
                    else:
                        assert dict(message.headers)["reason_code"] == b"MALFORMED_ENVELOPE"
                        seen_quarantine = True
    finally:
        await consumer.stop()
    assert seen_verified and seen_quarantine
