"""A processor with a tiny control cache decides exactly as one holding every row.

The same signed events (a run lifecycle with tokens, jobs, receipts, halts,
revocations and refusals of every kind the bounded tables take part in) go
through a processor holding the control plane whole and one whose ``tokens``
and ``jobs`` caches keep a single row between batches (ADR 0020). Both must
give every record the outcome the pure pipeline gives it, and leave the same
projection rows. On Postgres and on the memory store.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest
import pytest_asyncio

from consumers.processor import VerifyingProcessor
from ledger import control_reads
from ledger.batch import IngressRecord
from ledger.control_reads import ScopeRead
from ledger.crypto import KeyPair
from ledger.errors import ControlPlaneTamperedError
from ledger.receipts import sign_receipt
from ledger.verify import Accepted, Rejected
from storage.memory import MemoryLedgerStore
from storage.migrate import migrate
from storage.postgres import PostgresLedgerStore
from storage.protocol import ControlQuery, ControlStart, LedgerStore
from tests.core._helpers import receipt_payload
from tests.primitives._support import ROLES, Ledger, ts

GROUP, TOPIC = "verifier", "ingress"


class RecordingLedger(Ledger):
    """The primitives' driver, keeping every message it signed and its verdict code."""

    def __init__(self) -> None:
        super().__init__()
        self.raws: list[bytes] = []
        self.codes: list[str] = []
        for attr in ROLES:
            kp: KeyPair = getattr(self.keys, attr)
            body = {"did": kp.did, "name": attr, "roles": [r.value for r in ROLES[attr]]}
            # the base driver holds these keys already: only the record needs them
            self.sign(self.keys.admin, "key.registered", f"key:{kp.did}", body)
            self.codes.append("OK")

    def sign(self, *args: Any, **kw: Any) -> bytes:
        raw = super().sign(*args, **kw)
        self.raws.append(raw)
        return raw

    def submit(self, *args: Any, **kw: Any) -> Accepted | Rejected:
        outcome = super().submit(*args, **kw)
        self.codes.append("OK" if isinstance(outcome, Accepted) else outcome.code.value)
        return outcome


def _receipt(ledger: Ledger, job_id: str, nonce: str) -> dict[str, Any]:
    job = ledger.state.jobs[job_id]
    payload = receipt_payload(
        {
            "run_id": job["run_id"],
            "event_hash_b64u": job["event_chain"][-1]["event_hash_b64u"],
            "nonce": nonce,
            "policy_hash": job["wpc_hash_b64u"],
            "token_scope_hash_b64u": job["token_scope_hash_b64u"],
        },
        timestamp=ts(90),
    )
    envelope = sign_receipt(payload, ledger.keys.gateway, issued_at=ts(90))
    return {"job_id": job_id, "receipt_envelope_json": envelope.to_bytes().decode()}


def _started(ledger: Ledger, job_id: str, jti: str) -> tuple[KeyPair, str, str, dict[str, Any]]:
    """The ``run.started`` of ``job_id`` with token ``jti``, as ``ok``/``refused`` arguments."""
    urm = ledger.state.jobs[job_id]["urm_hash_b64u"] if job_id in ledger.state.jobs else "A" * 43
    body = {"job_id": job_id, "urm_hash_b64u": urm, "cst_jti": jti}
    return ledger.keys.runtime, "run.started", f"job:{job_id}", body


def _recorded(ledger: Ledger, job_id: str, nonce: str) -> tuple[KeyPair, str, str, dict[str, Any]]:
    """A ``receipt.recorded`` for ``job_id``, as ``ok``/``refused`` arguments."""
    return ledger.keys.gateway, "receipt.recorded", f"job:{job_id}", _receipt(ledger, job_id, nonce)


def scenario() -> RecordingLedger:
    """Every bounded-table read the rules make, accepted and refused."""
    ledger = RecordingLedger()
    k = ledger.keys
    tokens: dict[str, dict[str, Any]] = {}
    for n in range(1, 6):
        job = f"job-{n}"
        wpc, tokens[job], _ = ledger.approved_job(job)
    for job in ("job-1", "job-2", "job-3"):
        ledger.ok(*_started(ledger, job, tokens[job]["jti"]))
    ledger.ok(*_recorded(ledger, "job-1", "n-1"))
    again = _receipt(ledger, "job-1", "n-2")
    ledger.ok(k.gateway, "receipt.recorded", "job:job-1", again)
    ledger.refused(k.gateway, "receipt.recorded", "job:job-1", again)
    # a revoked token stops its job's receipts (the token is named in the job's row)
    jti2 = tokens["job-2"]["jti"]
    ledger.ok(k.issuer, "token.revoked", f"token:{jti2}", {"jti": jti2, "reason": "leak"})
    ledger.refused(k.issuer, "token.revoked", f"token:{jti2}", {"jti": jti2, "reason": "again"})
    ledger.refused(*_recorded(ledger, "job-2", "n-3"))
    # a halt of the token's subject (named in the token's row) stops a start; a partial
    # one (model egress only) revokes no token (a full stop is the test below)
    alpha = "sub:agent:alpha"
    halt = {"target": alpha, "reason": "x", "tools": False}
    ledger.ok(k.operator, "agent.halted", f"halt:{alpha}", halt)
    ledger.refused(*_started(ledger, "job-4", tokens["job-4"]["jti"]))
    ledger.refused(*_recorded(ledger, "job-3", "n-4"))
    resume = {"target": alpha, "reason": "y", "policy_hash_b64u": wpc}
    ledger.ok(k.operator, "agent.resumed", f"halt:{alpha}", resume)
    ledger.ok(*_started(ledger, "job-4", tokens["job-4"]["jti"]))
    # unknown rows: a job, a token, a revocation of nothing
    ledger.refused(*_started(ledger, "job-9", "nope-1"))
    ledger.refused(*_started(ledger, "job-5", "unknown-jti"))
    ledger.refused(k.issuer, "token.revoked", "token:nope-2", {"jti": "nope-2", "reason": "r"})
    ledger.refused(k.issuer, "token.issued", f"token:{tokens['job-1']['jti']}", tokens["job-1"])
    # a job approved, started and given a receipt close together
    _, t6, _ = ledger.approved_job("job-6")
    ledger.ok(*_started(ledger, "job-6", t6["jti"]))
    ledger.ok(*_recorded(ledger, "job-6", "n-5"))
    outputs = [{"name": "report.pdf", "sha256": "ab" * 32}]
    done = {"job_id": "job-1", "outputs": outputs}
    ledger.ok(k.runtime, "run.completed", "job:job-1", done, at=ts(120))
    ledger.refused(k.runtime, "run.completed", "job:job-1", done, at=ts(121))
    ledger.refused(*_recorded(ledger, "job-1", "n-6"))
    ledger.refused(k.runtime, "run.completed", "job:job-5", dict(done, job_id="job-5"))
    return ledger


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.integration), "memory"])
def databases(request: pytest.FixtureRequest) -> tuple[str, str] | None:
    """Two database URLs (the second not migrated yet), ``None`` for the memory store."""
    if request.param == "memory":
        return None
    return request.getfixturevalue("fresh_database"), request.getfixturevalue("empty_database")


@pytest_asyncio.fixture(loop_scope="session")
async def two_stores(
    databases: tuple[str, str] | None,
) -> AsyncIterator[tuple[LedgerStore, LedgerStore]]:
    """Two empty ledgers of the same kind."""
    if databases is None:
        yield MemoryLedgerStore(), MemoryLedgerStore()
        return
    await migrate(databases[1])
    stores = [await PostgresLedgerStore.open(url, max_size=4) for url in databases]
    yield stores[0], stores[1]
    for store in stores:
        await store.close()


async def _run(
    store: LedgerStore, raws: Sequence[bytes], cache_size: int | None, batch: int
) -> tuple[list[str], VerifyingProcessor]:
    """Feed ``raws`` in batches; the outcome code of each, in order."""
    processor = VerifyingProcessor(
        store, group=GROUP, topic=TOPIC, trust_root=None, control_cache_size=cache_size
    )
    await store.set_trust_root(KeyPair.from_seed(bytes([1]) * 32).did)
    await processor.start()
    codes: dict[int, str] = {}
    records = [IngressRecord(0, offset, raw) for offset, raw in enumerate(raws)]
    for start in range(0, len(records), batch):
        report = await processor.process(records[start : start + batch])
        codes.update({a.record.offset: "OK" for a in report.accepted})
        codes.update({q.record.offset: q.code for q in report.quarantined})
    return [codes[offset] for offset in range(len(raws))], processor


async def _projections(store: LedgerStore) -> str:
    _, state = await store.load_state_snapshot(None)
    tables = {t: getattr(state, t) for t in ("policies", "tokens", "jobs", "halts")}
    tables["keys"] = {did: record.row().values for did, record in state.keys.items()}
    return json.dumps(tables, sort_keys=True, default=str)


@pytest.mark.parametrize("batch", [1, 4, 64])
async def test_a_one_row_cache_decides_as_the_whole_control_plane(
    two_stores: tuple[LedgerStore, LedgerStore], batch: int
) -> None:
    ledger = scenario()
    whole, bounded = two_stores
    expected = ledger.codes
    assert "TOKEN_REVOKED" in expected and "AGENT_HALTED" in expected
    assert "JOB_UNKNOWN" in expected and "TOKEN_UNKNOWN" in expected
    codes_whole, _ = await _run(whole, ledger.raws, None, batch)
    codes_bounded, processor = await _run(bounded, ledger.raws, 1, batch)
    assert codes_whole == expected
    assert codes_bounded == expected
    assert await _projections(whole) == await _projections(bounded)
    # every read was listed before planning: no plan was thrown away
    assert processor.control_replans == 0
    for table in ("tokens", "jobs"):
        assert getattr(processor.control.state, table).cached() <= 1


@pytest.mark.parametrize("batch", [1, 64])
async def test_a_full_stop_loads_the_whole_token_table_for_its_batch(
    two_stores: tuple[LedgerStore, LedgerStore], batch: int
) -> None:
    """A full-stop halt revokes every token in its scope: the bounded processor
    plans it with the whole token table (fetched up front: nothing is planned
    twice), then trims back to its capacity."""
    ledger = RecordingLedger()
    k = ledger.keys
    jtis = []
    for n in range(1, 5):
        _, body, _ = ledger.approved_job(f"job-{n}")
        jtis.append(body["jti"])
    ledger.ok(k.operator, "agent.halted", "halt:*", {"target": "*", "reason": "stop"})
    assert all(ledger.state.tokens[j]["status"] == "revoked" for j in jtis)
    whole, bounded = two_stores
    codes_whole, _ = await _run(whole, ledger.raws, None, batch)
    codes_bounded, processor = await _run(bounded, ledger.raws, 1, batch)
    assert codes_whole == codes_bounded == ledger.codes
    assert await _projections(whole) == await _projections(bounded)
    assert processor.control_replans == 0 and processor.control.whole_table_reads > 0
    assert processor.control.state.tokens.cached() <= 1  # type: ignore[attr-defined]


def _tokens_of_several_scopes() -> RecordingLedger:
    """Jobs of agent:alpha, tokens of agent:beta (one bound to job-2), one revoked."""
    ledger = RecordingLedger()
    for n in range(1, 4):
        ledger.approved_job(f"job-{n}")
    ledger.started_job("job-4")
    for job in (None, None, "job-2"):
        ledger.issue(job=job, sub="agent:beta")
    gone = ledger.issue(job="job-2", sub="agent:gamma")
    revoke = {"jti": gone["jti"], "reason": "leak"}
    ledger.ok(ledger.keys.issuer, "token.revoked", f"token:{gone['jti']}", revoke)
    return ledger


@pytest.mark.parametrize("target", ["job:job-2", "job:job-4", "sub:agent:beta"])
@pytest.mark.parametrize("batch", [1, 64])
async def test_a_full_stop_of_a_job_or_a_subject_reads_its_scope_not_the_whole_table(
    two_stores: tuple[LedgerStore, LedgerStore], target: str, batch: int
) -> None:
    """The tokens a halt of ``job:J`` or ``sub:S`` revokes are read by their scope
    (an index), so a ledger of a million tokens never comes whole into memory."""
    ledger = _tokens_of_several_scopes()
    before = {jti for jti, t in ledger.state.tokens.items() if t["status"] == "active"}
    ledger.ok(
        ledger.keys.operator, "agent.halted", f"halt:{target}", {"target": target, "reason": "x"}
    )
    after = {jti for jti, t in ledger.state.tokens.items() if t["status"] == "active"}
    assert after and after < before  # some tokens revoked, some out of scope
    whole, bounded = two_stores
    codes_whole, _ = await _run(whole, ledger.raws, None, batch)
    codes_bounded, processor = await _run(bounded, ledger.raws, 1, batch)
    assert codes_whole == codes_bounded == ledger.codes
    assert await _projections(whole) == await _projections(bounded)
    assert processor.control_replans == 0 and processor.control.whole_table_reads == 0
    assert processor.control.state.tokens.cached() <= 1  # type: ignore[attr-defined]


async def test_a_scope_nobody_listed_is_read_whole_and_decided_the_same(
    two_stores: tuple[LedgerStore, LedgerStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(control_reads, "CONTROL_SCOPES", {})
    ledger = _tokens_of_several_scopes()
    halt = {"target": "sub:agent:beta", "reason": "x"}
    ledger.ok(ledger.keys.operator, "agent.halted", "halt:sub:agent:beta", halt)
    whole, bounded = two_stores
    codes_whole, _ = await _run(whole, ledger.raws, None, 64)
    codes_bounded, processor = await _run(bounded, ledger.raws, 1, 64)
    assert codes_whole == codes_bounded == ledger.codes
    assert await _projections(whole) == await _projections(bounded)
    assert processor.control_replans == 1 and processor.control.whole_table_reads == 1


async def test_read_control_gives_every_active_row_of_a_scope(
    two_stores: tuple[LedgerStore, LedgerStore],
) -> None:
    store, _ = two_stores
    ledger = _tokens_of_several_scopes()
    await _run(store, ledger.raws, 10, 64)
    version = await store.control_version()
    scopes = [
        ScopeRead("tokens", "sub:agent:beta", "sub", "agent:beta", "active"),
        ScopeRead("tokens", "job:job-2", "mission_id", "job-2", "active"),
    ]
    read = await store.read_control(ControlQuery(None, since=version, scopes=scopes))
    tokens = ledger.state.tokens

    def active(column: str, value: str) -> set[str]:
        return {j for j, t in tokens.items() if t[column] == value and t["status"] == "active"}

    beta, job_2 = read.scoped["tokens", "sub:agent:beta"], read.scoped["tokens", "job:job-2"]
    assert set(beta) == active("sub", "agent:beta") and len(beta) == 3
    assert set(job_2) == active("mission_id", "job-2") and len(job_2) == 2  # not the revoked one
    assert all(row == tokens[jti] for jti, row in beta.items())


async def test_a_read_the_batch_did_not_list_is_planned_again(
    two_stores: tuple[LedgerStore, LedgerStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = scenario()
    whole, bounded = two_stores
    # as an event type whose reads nobody listed: the safety net must still hold
    silent: Callable[..., Any] = control_reads.CONTROL_READS["agent.halted"]
    for event_type in ("run.started", "receipt.recorded", "token.revoked"):
        monkeypatch.setitem(control_reads.CONTROL_READS, event_type, silent)
    codes_whole, _ = await _run(whole, ledger.raws, None, 8)
    codes_bounded, processor = await _run(bounded, ledger.raws, 1, 8)
    assert codes_whole == codes_bounded == ledger.codes
    assert await _projections(whole) == await _projections(bounded)
    assert processor.control_replans > 0


async def test_a_row_another_processor_changed_is_read_again(
    two_stores: tuple[LedgerStore, LedgerStore],
) -> None:
    store, _ = two_stores
    ledger = RecordingLedger()
    _, token = ledger.started_job("job-1")
    setup = list(ledger.raws)
    first = _receipt(ledger, "job-1", "n-1")
    ledger.ok(ledger.keys.gateway, "receipt.recorded", "job:job-1", first)
    revoke = {"jti": token["jti"], "reason": "leak"}
    ledger.ok(ledger.keys.issuer, "token.revoked", f"token:{token['jti']}", revoke)
    second = _receipt(ledger, "job-1", "n-2")
    ledger.refused(ledger.keys.gateway, "receipt.recorded", "job:job-1", second)
    receipt_1, revocation, receipt_2 = ledger.raws[len(setup) :]

    codes, a = await _run(store, [*setup, receipt_1], 10, 64)
    assert set(codes) == {"OK"}
    cached = a.control.cache("tokens").peek(token["jti"])
    assert cached is not None and cached["status"] == "active"  # cached by a
    b = VerifyingProcessor(store, group=GROUP, topic=TOPIC, trust_root=None, control_cache_size=10)
    await b.start()
    assert len((await b.process([IngressRecord(1, 0, revocation)])).accepted) == 1
    # a's cached token is stale: the version moved, a forgets it and reads it again
    report = await a.process([IngressRecord(0, len(setup) + 1, receipt_2)])
    assert [q.code for q in report.quarantined] == ["TOKEN_REVOKED"]
    cached = a.control.cache("tokens").peek(token["jti"])
    assert cached is not None and cached["status"] == "revoked"


async def _reactivate_by_hand(store: LedgerStore, jti: str) -> None:
    """Behind the ledger's back: a revoked token made active again."""
    if isinstance(store, MemoryLedgerStore):
        store._projections["tokens"][jti][0]["status"] = "active"
        return
    assert isinstance(store, PostgresLedgerStore)
    async with store._pool.acquire() as conn:
        await conn.execute("UPDATE tokens SET status = 'active' WHERE jti = $1", jti)


async def _a_revoked_token(store: LedgerStore) -> tuple[RecordingLedger, dict[str, Any]]:
    """A job approved and its token revoked, all committed to ``store``."""
    ledger = RecordingLedger()
    _, token, _ = ledger.approved_job("job-1")
    revoke = {"jti": token["jti"], "reason": "leak"}
    ledger.ok(ledger.keys.issuer, "token.revoked", f"token:{token['jti']}", revoke)
    await _run(store, ledger.raws, 10, 64)
    return ledger, token


async def test_a_token_row_changed_by_hand_stops_the_start(
    two_stores: tuple[LedgerStore, LedgerStore],
) -> None:
    store, _ = two_stores
    _, token = await _a_revoked_token(store)
    # an honest restart streams the tokens and jobs through their digests
    await VerifyingProcessor(store, group=GROUP, topic=TOPIC, trust_root=None).start()
    await _reactivate_by_hand(store, token["jti"])
    restarted = VerifyingProcessor(store, group=GROUP, topic=TOPIC, trust_root=None)
    with pytest.raises(ControlPlaneTamperedError, match="tokens") as refused:
        await restarted.start()
    assert set(refused.value.tables) == {"tokens"}
    # the whole control plane is still checked when the tables are held whole
    whole = VerifyingProcessor(
        store, group=GROUP, topic=TOPIC, trust_root=None, control_cache_size=None
    )
    with pytest.raises(ControlPlaneTamperedError, match="tokens"):
        await whole.start()


async def test_read_control_gives_rows_absent_keys_and_what_changed(
    two_stores: tuple[LedgerStore, LedgerStore],
) -> None:
    store, _ = two_stores
    ledger = RecordingLedger()
    _, token, _ = ledger.approved_job("job-1")
    _, held = await _run(store, ledger.raws, 10, 64)
    version = await store.control_version()
    whole = ("keys", "policies", "halts", "shadows")
    wanted = {"tokens": {token["jti"], "no-such-jti"}, "jobs": {"job-1"}}
    read = await store.read_control(ControlQuery(None, since=version, whole=whole, wanted=wanted))
    assert read.version == version and read.changed is None and read.changed_keys == {}
    assert set(read.rows["tokens"]) == {token["jti"]}  # an absent key has no row
    assert read.rows["tokens"][token["jti"]]["status"] == "active"
    assert "control_version" not in read.rows["jobs"]["job-1"]
    assert read.rows["jobs"]["job-1"] == held.control.cache("jobs").peek("job-1")

    revoke = {"jti": token["jti"], "reason": "leak"}
    ledger.ok(ledger.keys.issuer, "token.revoked", f"token:{token['jti']}", revoke)
    halt = {"target": "job:job-1", "reason": "drill"}
    ledger.ok(ledger.keys.operator, "agent.halted", "halt:job:job-1", halt)
    start = len(ledger.raws) - 2
    records = [IngressRecord(0, start + i, raw) for i, raw in enumerate(ledger.raws[start:])]
    assert len((await held.process(records)).accepted) == 2
    read = await store.read_control(ControlQuery(None, since=version, whole=whole))
    assert read.version == version + 1 and read.changed is not None  # one commit
    assert read.changed_keys == {"tokens": [token["jti"]], "jobs": []}
    assert set(read.changed.halts) == {"job:job-1"} and read.changed.keys == {}
    assert read.changed.trust_root == ledger.keys.admin.did
    started = await store.open_control_state(None, whole=whole)
    assert started.version == version + 1 and started.state.tokens == {}
    assert started.streamed == {
        "tokens": started.stored["tokens"],
        "jobs": started.stored["jobs"],
    }


@pytest.mark.parametrize("tampered", [True, False])
async def test_a_background_check_holds_back_only_batches_that_read_tokens_or_jobs(
    two_stores: tuple[LedgerStore, LedgerStore], tampered: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _ = two_stores
    ledger, token = await _a_revoked_token(store)
    if tampered:
        await _reactivate_by_hand(store, token["jti"])
    offset = len(ledger.raws)
    # a partial halt (a full stop revokes tokens, so it reads and writes that table)
    halt = {"target": "job:job-7", "reason": "drill", "tools": False}
    ledger.ok(ledger.keys.operator, "agent.halted", "halt:job:job-7", halt)
    ledger.issue(job="job-2")
    halt_raw, issue_raw = ledger.raws[offset:]

    # the stream is held until the first batch is committed, as on a big ledger
    streamed = asyncio.Event()
    real_open = store.open_control_state

    async def slow_open(trust_root: str | None, **kw: Any) -> ControlStart:
        if kw.get("stream", True):
            await streamed.wait()
        return await real_open(trust_root, **kw)

    monkeypatch.setattr(store, "open_control_state", slow_open)
    processor = VerifyingProcessor(
        store, group=GROUP, topic=TOPIC, trust_root=None, control_check="background"
    )
    await processor.start()  # consumes at once: the token and job digests stream meanwhile
    # a batch that reads neither tokens nor jobs does not wait for them
    assert len((await processor.process([IngressRecord(0, offset, halt_raw)])).accepted) == 1
    assert not processor.control_checked
    streamed.set()
    issue = [IngressRecord(0, offset + 1, issue_raw)]
    if tampered:
        with pytest.raises(ControlPlaneTamperedError, match="tokens"):
            await processor.process(issue)
        assert (await store.load_positions(GROUP, TOPIC))[0].next_offset == offset + 1
        assert not processor.control_checked
        # once the check has failed, no batch of any kind is committed
        later = {"target": "job:job-8", "reason": "drill", "tools": False}
        ledger.ok(ledger.keys.operator, "agent.halted", "halt:job:job-8", later)
        with pytest.raises(ControlPlaneTamperedError, match="tokens"):
            await processor.process([IngressRecord(0, offset + 1, ledger.raws[-1])])
    else:
        assert len((await processor.process(issue)).accepted) == 1
        assert processor.control_checked
