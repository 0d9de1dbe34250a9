"""A sealed bundle's inclusion proofs checked in a forked child while this process
parses and checks the rest (``verify_bytes(..., background=forked)``).

The verdict must be the one verifying in one process gives, whatever is wrong
with the bundle and wherever; and the child is a real process that is reaped
(or killed) in every case.
"""

from __future__ import annotations

import asyncio
import copy
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import claw_ledger.background
import ledger.offline_verify
from bench.sealing import ORIGIN, synthetic_run
from claw_ledger.background import Child, can_fork, forked
from ledger.bundles import envelope_bytes_document_order, sign_document_order
from ledger.canonical import parse_json_strict
from ledger.checkpoint import NoteSigner
from ledger.encoding import sha256_b64u
from ledger.errors import ReasonCode
from ledger.log_proofs import MemoryProofSource
from ledger.offline_verify import VerificationResult, verify_bytes
from ledger.seal_verify import SEAL_STEPS, inclusion_answer

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork"),
    # Python 3.12+ warns when a process with threads forks (see the fixture below)
    pytest.mark.filterwarnings("ignore:.*multi-threaded.*fork:DeprecationWarning"),
]

#: the real check, for the test that is about it
_can_fork_alone = can_fork


@pytest.fixture(autouse=True)
def fork_despite_idle_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    # the test process may hold idle threads that earlier tests left behind (thread
    # pools); the children here run pure code and take no lock, so they fork anyway
    monkeypatch.setattr(claw_ledger.background, "can_fork", lambda: hasattr(os, "fork"))


@pytest.fixture(scope="module")
def run() -> Any:
    return synthetic_run(40, halt=True, denied_after_halt=3)


@pytest.fixture(scope="module")
def raw(run: Any) -> bytes:
    sealed: bytes = run.seal(trigger="halted:test").raw
    return sealed


@pytest.fixture(autouse=True)
def every_bundle_is_large(monkeypatch: pytest.MonkeyPatch) -> None:
    # a bundle this small is checked in one process unless told otherwise
    monkeypatch.setattr(ledger.offline_verify, "BACKGROUND_FROM_BYTES", 1)


class Recording:
    """:func:`forked`, remembering each child it started."""

    def __init__(self) -> None:
        self.children: list[Child[Any]] = []

    def __call__(self, work: Callable[[], Any]) -> Child[Any]:
        child = forked(work)
        assert child._pid, "no child was forked"
        self.children.append(child)
        return child


def _both(run: Any, raw: bytes) -> tuple[VerificationResult, VerificationResult, Recording]:
    background = Recording()
    alone = verify_bytes(raw, ledger_key=run.ledger.did)
    beside = verify_bytes(raw, ledger_key=run.ledger.did, background=background)
    return alone, beside, background


def _resigned(run: Any, raw: bytes, edit: Callable[[dict[str, Any]], None]) -> bytes:
    payload = copy.deepcopy(dict(parse_json_strict(raw)["payload"]))
    edit(payload)
    return envelope_bytes_document_order(sign_document_order("proof_bundle", payload, run.ledger))


def _steps(result: VerificationResult) -> dict[str, Any]:
    return result.to_dict()


def test_a_valid_bundle_verifies_alike_and_the_child_is_reaped(run: Any, raw: bytes) -> None:
    alone, beside, background = _both(run, raw)
    assert alone.valid and beside.valid
    assert _steps(beside) == _steps(alone)
    (child,) = background.children
    assert child._pid == 0  # waited for: no zombie left
    assert inclusion_answer(raw) is not None


def _break_proof(index: int) -> Callable[[dict[str, Any]], None]:
    def edit(payload: dict[str, Any]) -> None:
        proof = payload["seal"]["events"][index]["proof_b64"]
        proof[0] = proof[-1] if proof[0] != proof[-1] else "A" * 43 + "="

    return edit


def _unparsable(run: Any, index: int) -> Callable[[dict[str, Any]], None]:
    """Event ``index`` logged as bytes that are no JSON (a log the ledger never
    writes): its leaf and proof are right, so only the parse finds it."""

    def edit(payload: dict[str, Any]) -> None:
        rows = copy.deepcopy(run.rows)
        rows[index].update(envelope="{not json", envelope_sha256=sha256_b64u(b"{not json"))
        source = MemoryProofSource(NoteSigner(ORIGIN, run.ledger))
        source.extend(rows)
        checkpoint = source.sign()
        ids = [row["event_id"] for row in rows]
        proofs = asyncio.run(source.prove(ids, checkpoint))
        payload["seal"]["checkpoint"] = checkpoint.note
        payload["seal"]["events"] = [
            {"envelope": row["envelope"], **proofs[row["event_id"]].to_dict()} for row in rows
        ]

    return edit


def _both_edits(*edits: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def edit(payload: dict[str, Any]) -> None:
        for one in edits:
            one(payload)

    return edit


PROOF, PARSE = ReasonCode.INCLUSION_PROOF_INVALID, ReasonCode.SCHEMA_VALIDATION_FAILED


def parse_only(run: Any) -> Callable[[dict[str, Any]], None]:
    return _unparsable(run, 7)


@pytest.mark.parametrize(
    ("make_edit", "code", "index"),
    [
        (lambda run: _break_proof(7), PROOF, 7),
        (parse_only, PARSE, 7),
        # the first failing event decides, whichever half finds it
        (lambda run: _both_edits(_unparsable(run, 9), _break_proof(5)), PROOF, 5),
        (lambda run: _both_edits(_unparsable(run, 5), _break_proof(9)), PARSE, 5),
        # at one event the proof comes before the parse
        (lambda run: _both_edits(_unparsable(run, 6), _break_proof(6)), PROOF, 6),
    ],
    ids=["proof", "parse", "proof-first", "parse-first", "same-event"],
)
def test_a_broken_bundle_fails_alike(
    run: Any, raw: bytes, make_edit: Any, code: ReasonCode, index: int
) -> None:
    broken = _resigned(run, raw, make_edit(run))
    alone, beside, background = _both(run, broken)
    assert alone.failure is not None
    assert (alone.failure.code, alone.failure.name) == (code, SEAL_STEPS[2])
    assert alone.failure.detail.startswith(f"seal.events[{index}]")
    assert _steps(beside) == _steps(alone)
    # a proof that fails is never answered (it is worked out where it is reported)
    proofs_hold = make_edit is parse_only
    assert (inclusion_answer(broken) is not None) == proofs_hold
    assert background.children and all(child._pid == 0 for child in background.children)


def test_a_failure_before_the_proofs_stops_the_child(run: Any, raw: bytes) -> None:
    def forge_checkpoint(payload: dict[str, Any]) -> None:
        note = payload["seal"]["checkpoint"]
        payload["seal"]["checkpoint"] = note.replace(note.split("\n")[1], "999", 1)

    broken = _resigned(run, raw, forge_checkpoint)
    alone, beside, background = _both(run, broken)
    assert alone.failure is not None and alone.failure.name == SEAL_STEPS[1]
    assert _steps(beside) == _steps(alone)
    assert background.children and all(child._pid == 0 for child in background.children)


def test_an_answer_about_another_tree_is_not_taken(
    run: Any, raw: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = _resigned(run, raw, _break_proof(3))

    class Lying:
        def result(self) -> Any:
            return 1, b"\x00" * 32  # "all proven", in a tree of size 1

        def cancel(self) -> None:
            pass

    result = verify_bytes(broken, ledger_key=run.ledger.did, background=lambda work: Lying())
    assert result.failure is not None
    assert (result.failure.code, result.failure.name) == (
        ReasonCode.INCLUSION_PROOF_INVALID,
        SEAL_STEPS[2],
    )


def test_small_bundles_stay_in_one_process(
    run: Any, raw: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger.offline_verify, "BACKGROUND_FROM_BYTES", len(raw) + 1)
    background = Recording()
    assert verify_bytes(raw, ledger_key=run.ledger.did, background=background).valid
    assert background.children == []


# --- the child process itself ---------------------------------------------------------


def test_a_child_answers_from_another_process() -> None:
    child = forked(os.getpid)
    answer = child.result()
    assert isinstance(answer, int) and answer != os.getpid()


def test_a_child_that_raises_gives_no_answer() -> None:
    def fails() -> int:
        raise RuntimeError("no")

    assert forked(fails).result() is None


def test_a_child_that_dies_gives_no_answer() -> None:
    assert forked(lambda: os._exit(3)).result() is None


def test_cancel_kills_a_child_still_at_work() -> None:
    child = forked(lambda: time.sleep(60))
    pid = child._pid
    assert pid
    started = time.monotonic()
    child.cancel()
    assert time.monotonic() - started < 30
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped already


def test_a_fork_that_fails_leaves_the_work_here(
    run: Any, raw: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_process() -> int:
        raise BlockingIOError("fork: resource temporarily unavailable")

    monkeypatch.setattr("claw_ledger.background.os.fork", no_process)
    child = forked(os.getpid)
    assert not child._pid and child.result() is None
    result = verify_bytes(raw, ledger_key=run.ledger.did, background=forked)
    assert _steps(result) == _steps(verify_bytes(raw, ledger_key=run.ledger.did))


def test_no_fork_while_another_thread_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(claw_ledger.background, "can_fork", _can_fork_alone)
    release = threading.Event()
    thread = threading.Thread(target=release.wait)
    thread.start()
    try:
        assert not can_fork()
        child = forked(os.getpid)
        assert not child._pid
        assert child.result() is None  # the caller does the work itself
    finally:
        release.set()
        thread.join()
