"""Deny early, allow late (ADR 0025) on the real broker, database and processor:
a halt or revocation seen on the control lane denies before the ledger commits
it, a resume acts only once committed, a forged halt does nothing, and a seen
halt the ledger refuses is lifted.

Two helpers hold the control lane back: :func:`_start_ingress_only_ledger`
starts a ledger whose processor runs ``--lanes ingress`` (what is published on
``<prefix>.control`` stays *seen*), and :func:`_commit` hands an envelope to
that processor: the same bytes on the ingress topic, which accepts any type
(ADR 0024).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from bench.early import BACKLOG_BODY
from claw_ledger.authorizing import AuthorizeService
from ledger.authorize import Decision
from ledger.crypto import KeyPair
from ledger.errors import ReasonCode
from ledger.events import NewEvent, sign_event_bytes
from ledger.roles import Role
from producers.sdk import LedgerProducer, sign_many
from storage.projection_queries import halt_status
from tests.fixtures_ledger import LedgerHarness, start_ledger
from tests.integration._authorize import (
    WPC,
    decide_until,
    issue,
    publish_wpc,
    recorded_decisions,
    request,
    running_job,
    service,
)

pytestmark = pytest.mark.integration


async def _start_ingress_only_ledger(
    ledger_servers: Any, ledger_settings: Any, tmp_path: Path
) -> LedgerHarness:
    """A ledger whose processor reads the ingress lane only: control events stay seen."""
    return await start_ledger(ledger_servers, ledger_settings, tmp_path, lanes="ingress")


async def _commit(ledger: LedgerHarness, raw: bytes, stream: str) -> None:
    """Have the processor decide on exactly these bytes (commit or quarantine)."""
    await ledger.publish_raw(raw, stream, topic=ledger.topics.ingress)


async def _publish_control(ledger: LedgerHarness, raw: bytes, stream: str) -> None:
    """The bytes on the control lane, where the authorize service reads them."""
    assert ledger.settings.kafka_bootstrap
    async with LedgerProducer(ledger.settings.kafka_bootstrap, ledger.topics.control) as producer:
        await (await producer.send_raw(raw, stream))


def _signed(
    key: KeyPair, event_type: str, stream: str, body: dict[str, Any], **kw: Any
) -> tuple[str, bytes]:
    return sign_event_bytes(key, event_type, stream, body, **kw)


def _halt(key: KeyPair, target: str, reason: str, **kw: Any) -> tuple[str, bytes]:
    """``agent.halted`` of ``target`` on its stream, signed by ``key``: (event id, bytes)."""
    return _signed(
        key, "agent.halted", f"halt:{target}", {"target": target, "reason": reason}, **kw
    )


def _early_service(ledger: LedgerHarness, **kw: Any) -> AuthorizeService:
    from dataclasses import replace

    authorize = service(ledger, **kw)
    authorize.config = replace(authorize.config, control_topic=ledger.topics.control)
    return authorize


async def _until(check: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


def _is(code: ReasonCode, state: str | None = None) -> Any:
    return lambda d: d.reason_code is code and (state is None or d.halt_state == state)


async def test_a_seen_halt_denies_before_commit_and_a_resume_acts_only_once_committed(
    ledger_servers: Any, ledger_settings: Any, tmp_path: Path
) -> None:
    ledger = await _start_ingress_only_ledger(ledger_servers, ledger_settings, tmp_path)
    authorize = _early_service(ledger)
    decisions: list[Decision] = []

    async def ask(job: Any, token: str | None = None) -> Decision:
        decisions.append(await authorize.decide(request(job, token=token)))
        return decisions[-1]

    try:
        wpc = await publish_wpc(ledger, WPC)
        job, other = await running_job(ledger, wpc), await running_job(ledger, wpc)
        await authorize.start()
        assert (await ask(job)).allowed
        operator = ledger.keys[Role.OPERATOR]
        target = f"job:{job.job_id}"
        halt_id, halt = _halt(operator, target, "incident")
        await _publish_control(ledger, halt, f"halt:{target}")
        seen = await decide_until(lambda: ask(job), lambda d: not d.allowed)
        assert seen.reason_code is ReasonCode.AGENT_HALTED
        assert (seen.halt_target, seen.halt_state, seen.seen_event_id) == (target, "seen", halt_id)
        assert (await ask(other)).allowed  # the halt covers its own job only
        # a resume seen on the lane does not re-allow anything before it commits
        body = {"target": target, "reason": "over", "policy_hash_b64u": wpc}
        resume_id, resume = _signed(operator, "agent.resumed", f"halt:{target}", body)
        await _publish_control(ledger, resume, f"halt:{target}")
        await _until(lambda: authorize.seen.counts["ignored"] >= 1)
        still = await ask(job)
        assert (still.reason_code, still.halt_state) == (ReasonCode.AGENT_HALTED, "seen")
        # a seen token revocation denies the other job's token before commit
        revoke_id, revoke = _signed(
            operator, "token.revoked", f"token:{other.jti}", {"jti": other.jti, "reason": "leak"}
        )
        await _publish_control(ledger, revoke, f"token:{other.jti}")
        revoked = await decide_until(lambda: ask(other), lambda d: not d.allowed)
        assert (revoked.reason_code, revoked.seen_event_id) == (ReasonCode.TOKEN_REVOKED, revoke_id)
        assert authorize.view.state.tokens[other.jti]["status"] == "active"  # not committed
        # the ledger commits the halt: the committed state takes over
        await _commit(ledger, halt, f"halt:{target}")
        assert (await ledger.verdict(halt_id))["status"] == "committed"
        committed = await decide_until(lambda: ask(job), lambda d: d.halt_state == "committed")
        assert committed.reason_code is ReasonCode.TOKEN_REVOKED  # the halt revoked it
        assert (committed.halt_target, committed.seen_event_id) == (target, None)
        assert halt_id not in authorize.seen
        # `halts` counts the calls this halt denied, those denied before it committed too
        denied = [d for d in decisions if not d.allowed and d.halt_target == target]
        early = [d for d in denied if d.seen_event_id == halt_id]
        assert len(early) >= 2 and len(denied) > len(early)
        await recorded_decisions(ledger, [d.decision_id for d in denied])
        async with ledger.connection() as conn:
            (status,) = await halt_status(conn, target=target)
        assert status["calls_denied_since"] == len(denied), (len(early), len(denied))
        # the resume commits; a token issued after it, under the resumed WPC, runs
        await _commit(ledger, resume, f"halt:{target}")
        assert (await ledger.verdict(resume_id))["status"] == "committed"
        token, _, _ = await issue(ledger, job.job_id, wpc)
        back = await decide_until(lambda: ask(job, token), lambda d: d.allowed)
        assert back.allowed, back
    finally:
        await authorize.stop()
        ledger.processor.stop()
    assert authorize.seen.counts["committed"] == 1 and authorize.seen.counts["lifted"] == 0
    rows = await recorded_decisions(ledger, [seen.decision_id, revoked.decision_id])
    assert rows[seen.decision_id]["halt_state"] == "seen"
    assert rows[seen.decision_id]["seen_event_id"] == halt_id
    assert rows[revoked.decision_id]["seen_event_id"] == revoke_id
    assert rows[revoked.decision_id]["reason_code"] == "TOKEN_REVOKED"


async def test_forged_halts_have_no_effect(running_ledger: LedgerHarness) -> None:
    ledger = running_ledger
    wpc = await publish_wpc(ledger, WPC | {"purpose": "forged"})
    job, marker = await running_job(ledger, wpc), await running_job(ledger, wpc)
    revoked_operator = await ledger.register_key(Role.OPERATOR)
    body = {"did": revoked_operator.did, "reason": "lost"}
    verdict = await ledger.publish(ledger.admin, "key.revoked", f"key:{revoked_operator.did}", body)
    assert verdict["status"] == "committed", verdict
    authorize = _early_service(ledger)
    await authorize.start()
    try:
        assert (await authorize.decide(request(job))).allowed
        target = f"job:{job.job_id}"
        forgers = [KeyPair.generate("outsider"), revoked_operator, ledger.keys[Role.RUNTIME]]
        for key in forgers:
            _, raw = _halt(key, target, "forged")
            await _publish_control(ledger, raw, f"halt:{target}")
        _, raw = _halt(ledger.keys[Role.OPERATOR], target, "forged")
        tampered = raw.replace(b"forged", b"Forged")
        await _publish_control(ledger, tampered, f"halt:{target}")
        # a valid halt of another job, published after them: once it denies, all were read
        marked = f"job:{marker.job_id}"
        _, raw = _halt(ledger.keys[Role.OPERATOR], marked, "marker")
        await _publish_control(ledger, raw, f"halt:{marked}")
        halted = await decide_until(
            lambda: authorize.decide(request(marker)), lambda d: not d.allowed
        )
        # the marker's halt, as read on the lane, or committed (its full stop then
        # revoked the job's token too)
        assert halted.halt_target == marked, halted
        assert halted.reason_code in (ReasonCode.AGENT_HALTED, ReasonCode.TOKEN_REVOKED), halted
        # the forged halts' streams may sit on other partitions than the marker's,
        # which the follower reads in no mutual order: wait until all were read
        deadline = time.monotonic() + 30
        while authorize.seen.counts["refused"] < len(forgers) + 1:
            assert time.monotonic() < deadline, authorize.seen.counts
            await asyncio.sleep(0.05)
        assert authorize.seen.counts["refused"] == len(forgers) + 1
        after = await authorize.decide(request(job))
        assert after.allowed, after
    finally:
        await authorize.stop()


async def test_a_seen_halt_the_ledger_refuses_is_lifted_and_says_so(
    ledger_servers: Any, ledger_settings: Any, tmp_path: Path
) -> None:
    ledger = await _start_ingress_only_ledger(ledger_servers, ledger_settings, tmp_path)
    authorize = _early_service(ledger)
    try:
        job = await running_job(ledger, await publish_wpc(ledger, WPC))
        operator = await ledger.register_key(Role.OPERATOR)
        await authorize.start()
        target = f"job:{job.job_id}"
        halt_id, halt = _halt(operator, target, "x")
        await _publish_control(ledger, halt, f"halt:{target}")
        seen = await decide_until(lambda: authorize.decide(request(job)), lambda d: not d.allowed)
        assert (seen.halt_state, seen.seen_event_id) == ("seen", halt_id)
        # the signer is revoked on the ledger before the halt reaches it
        revoke_id, revoke = _signed(
            ledger.admin,
            "key.revoked",
            f"key:{operator.did}",
            {"did": operator.did, "reason": "stolen"},
        )
        await _commit(ledger, revoke, f"key:{operator.did}")
        assert (await ledger.verdict(revoke_id))["status"] == "committed"
        await _until(lambda: authorize.view.state.keys[operator.did].revoked)
        # undecided by the ledger, the seen halt stays in force: denying is safe
        still = await authorize.decide(request(job))
        assert (still.halt_state, still.seen_event_id) == ("seen", halt_id)
        await _commit(ledger, halt, f"halt:{target}")
        assert (await ledger.verdict(halt_id))["status"] == "quarantined"
        lifted = await decide_until(lambda: authorize.decide(request(job)), lambda d: d.allowed)
        assert lifted.allowed and lifted.seen_event_id is None
        [lift] = authorize.seen.lifted
        assert lift.control.event_id == halt_id and lift.denied >= 2
        assert lift.reason.startswith("SIGNER_REVOKED")
        assert authorize.status()["control_lane"]["recent_lifts"][0]["event_id"] == halt_id
        # a seen halt whose event id the ledger holds with other content: lifted too
        used_id, used_raw = _halt(ledger.keys[Role.OPERATOR], "job:elsewhere", "first")
        await _commit(ledger, used_raw, "halt:job:elsewhere")
        used = await ledger.verdict(used_id)
        assert used["status"] == "committed"
        _, conflict = _halt(ledger.keys[Role.OPERATOR], target, "second", event_id=used_id)
        await _publish_control(ledger, conflict, f"halt:{target}")
        await _until(lambda: authorize.seen.counts["lifted"] == 2)
        assert "DUPLICATE_EVENT_CONFLICT" in authorize.seen.lifted[-1].reason
        assert (await authorize.decide(request(job))).allowed
    finally:
        await authorize.stop()
        ledger.processor.stop()
    rows = await recorded_decisions(ledger, [seen.decision_id, still.decision_id])
    assert {r["seen_event_id"] for r in rows.values()} == {halt_id}
    conn = await ledger.connect()
    try:
        reason = await conn.fetchval(
            "SELECT reason_code FROM quarantine WHERE event_id = $1", halt_id
        )
    finally:
        await conn.close()
    assert reason == "SIGNER_REVOKED"


async def test_a_halt_behind_an_ingress_backlog_denies_and_survives_a_processor_kill(
    ledger_servers: Any, ledger_settings: Any, tmp_path: Path
) -> None:
    ledger = await _start_ingress_only_ledger(ledger_servers, ledger_settings, tmp_path)
    # freshness is checked before a seen halt (step 0 of formats §12): the bound must
    # outlast a commit cycle of the processor chewing the backlog on a busy machine
    # (1 s did not always), and the kill below is noticed once it has passed
    authorize = _early_service(ledger, max_staleness=5.0)
    backlog = 30_000
    try:
        job = await running_job(ledger, await publish_wpc(ledger, WPC))
        await authorize.start()
        assert (await authorize.decide(request(job))).allowed
        await _publish_backlog(ledger, backlog)
        target = f"job:{job.job_id}"
        halt_id, halt = _halt(ledger.keys[Role.OPERATOR], target, "runaway")
        await _publish_control(ledger, halt, f"halt:{target}")
        denied = await decide_until(
            lambda: authorize.decide(request(job)), lambda d: d.reason_code is not ReasonCode.OK
        )
        committed_then = await ledger.committed_count("policy.attested")
        assert denied.reason_code is ReasonCode.AGENT_HALTED
        assert (denied.halt_state, denied.seen_event_id) == ("seen", halt_id)
        # the decision came while the backlog was still queued ahead of the processor
        assert committed_then < backlog
        ledger.processor.kill()
        stale = await decide_until(
            lambda: authorize.decide(request(job)), _is(ReasonCode.STATE_STALE)
        )
        assert stale.reason_code is ReasonCode.STATE_STALE
        # a new authorize process starts from the lane's committed positions: it sees it too
        fresh = _early_service(ledger)
        ledger.processor.start()
        await fresh.start()
        try:
            again = await decide_until(
                lambda: fresh.decide(request(job)),
                lambda d: d.reason_code is not ReasonCode.STATE_STALE,
                timeout=120,
            )
            assert (again.reason_code, again.seen_event_id) == (ReasonCode.AGENT_HALTED, halt_id)
        finally:
            await fresh.stop()
        after = await decide_until(
            lambda: authorize.decide(request(job)),
            lambda d: d.reason_code is not ReasonCode.STATE_STALE,
            timeout=120,
        )
        assert (after.reason_code, after.halt_state) == (ReasonCode.AGENT_HALTED, "seen")
    finally:
        await authorize.stop()
        ledger.processor.stop()


async def _publish_backlog(ledger: LedgerHarness, count: int) -> None:
    """``count`` ordinary events (the policy attestations of :mod:`bench.early`'s backlog)
    queued on the ingress lane."""
    runtime = ledger.keys[Role.RUNTIME]
    # signed first, sent at once: the whole backlog is queued before the halt
    signed = sign_many(
        runtime,
        (
            NewEvent("policy.attested", f"openclaw-policy:w{i % 64}", BACKLOG_BODY)
            for i in range(count)
        ),
    )
    assert ledger.settings.kafka_bootstrap
    async with LedgerProducer(ledger.settings.kafka_bootstrap, ledger.topics.ingress) as producer:
        await producer.send_raw_many(signed)
