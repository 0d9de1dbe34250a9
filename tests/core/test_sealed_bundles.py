"""Sealed proof bundles (ledger/sealed_bundles.py): build, verify offline, and each tamper.

Every broken bundle below is re-signed after the change by the key that
signed the original (unless the break is the signature), so that exactly the
step under test fails, with its own reason code.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bench.sealing import ORIGIN, SyntheticRun, synthetic_run
from claw_ledger.cli.verify import command as verify_command
from ledger.bundles import envelope_bytes_document_order, sign_document_order
from ledger.canonical import parse_json_strict
from ledger.checkpoint import NoteSigner
from ledger.crypto import KeyPair
from ledger.encoding import b64u_encode
from ledger.envelope import signing_bytes
from ledger.errors import ReasonCode
from ledger.log_proofs import EventsNotLogged, MemoryProofSource
from ledger.offline_verify import BUNDLE_STEPS, VerificationResult, verify_bytes
from ledger.receipts import sign_receipt
from ledger.run_facts import kill_switch_view
from ledger.seal_verify import SEAL_STEPS
from ledger.sealed_bundles import SealedBundle, build_sealed_bundle
from ledger.wpc import sign_wpc

OUTSIDER = KeyPair.from_seed(bytes([99]) * 32, "outsider")


@pytest.fixture(scope="module")
def run() -> SyntheticRun:
    return synthetic_run(3, halt=True, denied_after_halt=2)


@pytest.fixture(scope="module")
def sealed(run: SyntheticRun) -> SealedBundle:
    return run.seal(trigger="halted:test")


def _verify(raw: bytes, ledger_did: str | None) -> VerificationResult:
    return verify_bytes(raw, ledger_key=ledger_did)


def _resigned(sealed: SealedBundle, edit: Callable[[dict[str, Any]], None], key: KeyPair) -> bytes:
    payload = copy.deepcopy(dict(parse_json_strict(sealed.raw)["payload"]))
    edit(payload)
    return envelope_bytes_document_order(sign_document_order("proof_bundle", payload, key))


def _failed(result: VerificationResult) -> tuple[str, str]:
    failure = result.failure
    assert failure is not None, "the bundle verified"
    return failure.code, failure.name


def _refusal(
    run: Any, sealed: SealedBundle, edit: Callable[[dict[str, Any]], None]
) -> tuple[str, str]:
    """The failure (code, step) once ``edit`` changed the bundle and the ledger re-signed it."""
    return _failed(_verify(_resigned(sealed, edit, run.ledger), run.ledger.did))


def test_a_sealed_bundle_verifies_offline(run: Any, sealed: SealedBundle) -> None:
    result = _verify(sealed.raw, run.ledger.did)
    assert result.valid, result.to_dict()
    names = [check.name for check in result.checks]
    assert names[-len(SEAL_STEPS) :] == list(SEAL_STEPS)
    facts = result.facts
    assert facts["sealed"] is True and facts["job_id"] == run.job_id
    assert facts["run_status"] == "halted"
    assert facts["counts"] == {
        "events": len(run.rows),
        "receipts": 3,
        "decisions_allowed": 3,
        "decisions_denied": 2,
        "halts": 1,
        "outputs": 0,
    }
    assert facts["checkpoint_size"] == len(run.rows)


def test_the_bundle_holds_hashes_never_the_token(run: Any, sealed: SealedBundle) -> None:
    seal = sealed.envelope.payload["seal"]
    assert set(seal["token"]) >= {"jti", "token_scope_hash_b64u", "token_sha256_b64u"}
    assert b"the token itself" not in sealed.raw
    assert seal["wpc_envelope"] == run.wpc_envelope
    assert seal["urm"]["policy"]["cst_scope_hash"] == seal["token"]["token_scope_hash_b64u"]


def test_the_kill_switch_view_shows_the_last_allowed_and_the_blocked_calls(
    sealed: SealedBundle,
) -> None:
    (view,) = kill_switch_view(sealed.facts)
    assert view["halt"]["target"] == "job:job-sealed-1"
    assert view["last_allowed"]["allowed"] is True
    last = max(d["order"] for d in sealed.facts.decisions if d["allowed"])
    assert view["last_allowed"]["order"] == last
    assert [d["reason_code"] for d in view["blocked"]] == ["AGENT_HALTED", "AGENT_HALTED"]
    assert all(d["policy_hash_b64u"] for d in view["blocked"])


def test_the_exported_bytes_are_the_bundle_hash(sealed: SealedBundle) -> None:
    import hashlib

    from ledger.encoding import b64u_encode

    assert sealed.bundle_hash_b64u == b64u_encode(hashlib.sha256(sealed.raw).digest())
    # the single-pass writer gives the bytes of the general one
    assert sealed.raw == envelope_bytes_document_order(sealed.envelope)


def test_without_the_ledger_key_the_verdict_fails_closed(sealed: SealedBundle) -> None:
    assert _failed(_verify(sealed.raw, None)) == (
        ReasonCode.CHECKPOINT_KEY_UNKNOWN,
        "checkpoint signed by the ledger key",
    )


def test_a_checkpoint_of_another_key_is_refused(sealed: SealedBundle) -> None:
    code, name = _failed(_verify(sealed.raw, OUTSIDER.did))
    assert code == ReasonCode.CHECKPOINT_KEY_UNKNOWN and name == SEAL_STEPS[1]


def test_a_forged_checkpoint_signature_is_refused(run: Any, sealed: SealedBundle) -> None:
    def forge(payload: dict[str, Any]) -> None:
        note = payload["seal"]["checkpoint"]
        text, _, line = note.rstrip("\n").rpartition("\n")
        prefix, _, signature = line.rpartition(" ")
        flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
        payload["seal"]["checkpoint"] = f"{text}\n{prefix} {flipped}\n"

    assert _refusal(run, sealed, forge) == (ReasonCode.CHECKPOINT_SIGNATURE_INVALID, SEAL_STEPS[1])


def test_a_proof_that_misses_the_checkpoint_is_refused(run: Any, sealed: SealedBundle) -> None:
    def break_proof(payload: dict[str, Any]) -> None:
        proof = payload["seal"]["events"][4]["proof_b64"]
        proof[0] = proof[-1] if proof[0] != proof[-1] else "A" * 43 + "="

    assert _refusal(run, sealed, break_proof) == (ReasonCode.INCLUSION_PROOF_INVALID, SEAL_STEPS[2])


def test_an_event_changed_after_it_was_logged_is_refused(run: Any, sealed: SealedBundle) -> None:
    def edit_event(payload: dict[str, Any]) -> None:
        event = payload["seal"]["events"][-1]
        event["envelope"] = event["envelope"].replace("AGENT_HALTED", "OK")

    assert _refusal(run, sealed, edit_event) == (ReasonCode.INCLUSION_PROOF_INVALID, SEAL_STEPS[2])


def test_a_signer_neither_agent_nor_ledger_is_refused(run: Any, sealed: SealedBundle) -> None:
    def outsider(payload: dict[str, Any]) -> None:
        payload["agent_did"] = OUTSIDER.did

    raw = _resigned(sealed, outsider, OUTSIDER)
    assert _failed(_verify(raw, run.ledger.did)) == (
        ReasonCode.BUNDLE_SIGNER_NOT_ALLOWED,
        SEAL_STEPS[3],
    )


def _agent_sealed(run: SyntheticRun, *, leave_out: tuple[str, ...] = ()) -> bytes:
    """The run sealed by its own agent (the runtime key), leaving out the events
    of the ``leave_out`` types: each one it keeps is proven in the ledger's tree."""
    source = run.source()
    checkpoint = source.sign()
    kept = [
        event
        for event in run.logged(source, checkpoint)
        if json.loads(event.envelope)["payload"]["event_type"] not in leave_out
    ]
    agent = run.keys["runtime"]
    return build_sealed_bundle(
        run.job_id,
        kept,
        checkpoint,
        agent,
        trigger="demand:agent",
        sealed_at="2026-12-04T00:00:00Z",
    ).raw


def test_a_bundle_the_runs_agent_sealed_is_refused_unless_accepted(run: SyntheticRun) -> None:
    """Only the ledger holds every event of the run, so only its seal vouches that
    none was left out; the agent is the party the bundle is about."""
    raw = _agent_sealed(run)
    code, name = _failed(_verify(raw, run.ledger.did))
    assert (code, name) == (ReasonCode.BUNDLE_SIGNER_NOT_ALLOWED, SEAL_STEPS[3])
    failure = _verify(raw, run.ledger.did).failure
    assert failure is not None and "sealed by the run's agent" in failure.detail
    accepted = verify_bytes(raw, ledger_key=run.ledger.did, accept_agent_seal=True)
    assert accepted.valid, accepted.to_dict()
    assert accepted.facts["sealed_by"] == "agent"
    ledgers = _verify(run.seal().raw, run.ledger.did)
    assert ledgers.valid and ledgers.facts["sealed_by"] == "ledger"


def test_an_agent_seal_that_leaves_out_its_denials_and_halt_is_not_a_clean_bill(
    run: SyntheticRun, tmp_path: Path
) -> None:
    """Every event it keeps is the ledger's, so each step passes on what it holds:
    the verdict must not read as "no call was denied, nothing halted"."""
    raw = _agent_sealed(run, leave_out=("call.denied", "agent.halted"))
    bundle = tmp_path / "agent-sealed.json"
    bundle.write_bytes(raw)
    refused = CliRunner().invoke(verify_command, [str(bundle), "--ledger-key", run.ledger.did])
    assert refused.exit_code == 1, refused.output
    assert "INVALID (BUNDLE_SIGNER_NOT_ALLOWED)" in refused.output
    assert "--accept-agent-seal" in refused.output
    accepted = CliRunner().invoke(
        verify_command,
        [str(bundle), "--ledger-key", run.ledger.did, "--accept-agent-seal"],
    )
    assert accepted.exit_code == 0, accepted.output
    assert "0 denied" in accepted.output
    assert "sealed by the run's agent, not the ledger" in accepted.output
    assert "the counts above are the agent's" in accepted.output
    as_json = CliRunner().invoke(
        verify_command,
        [str(bundle), "--ledger-key", run.ledger.did, "--accept-agent-seal", "--json"],
    )
    facts = json.loads(as_json.output)["facts"]
    assert facts["sealed_by"] == "agent" and facts["counts"]["decisions_denied"] == 0
    # the ledger's own seal of the same run says what the agent's left out
    ledgers = tmp_path / "ledger-sealed.json"
    ledgers.write_bytes(run.seal().raw)
    whole = CliRunner().invoke(verify_command, [str(ledgers), "--ledger-key", run.ledger.did])
    assert whole.exit_code == 0 and "2 denied" in whole.output
    assert "sealed by the run's agent" not in whole.output


def test_a_receipt_not_recorded_for_the_run_is_refused(run: Any, sealed: SealedBundle) -> None:
    def swap_receipt(payload: dict[str, Any]) -> None:
        receipt = copy.deepcopy(payload["receipts"][0]["payload"])
        receipt["receipt_id"] = "rcpt-never-recorded"
        payload["receipts"][0] = sign_receipt(receipt, run.keys["gateway"]).to_dict()

    assert _refusal(run, sealed, swap_receipt) == (ReasonCode.BUNDLE_NOT_BOUND, SEAL_STEPS[4])


def _forge_first_receipt_signature(payload: dict[str, Any]) -> None:
    """The gateway's receipt as it is, signed by someone else under the gateway's name."""
    receipt = payload["receipts"][0]
    forged = OUTSIDER.sign(signing_bytes(receipt["payload_hash_b64u"]))
    receipt["signature_b64u"] = b64u_encode(forged)


def test_a_forged_receipt_signature_fails_at_the_receipt_step(
    run: Any, sealed: SealedBundle
) -> None:
    assert _refusal(run, sealed, _forge_first_receipt_signature) == (
        ReasonCode.SIGNATURE_INVALID,
        BUNDLE_STEPS[6],
    )


def test_a_forged_receipt_signature_is_the_first_failure_before_a_broken_chain(
    run: Any, sealed: SealedBundle
) -> None:
    def forge_and_break(payload: dict[str, Any]) -> None:
        _forge_first_receipt_signature(payload)
        payload["event_chain"][-1]["prev_hash_b64u"] = "B" * 43

    assert _refusal(run, sealed, forge_and_break) == (
        ReasonCode.SIGNATURE_INVALID,
        BUNDLE_STEPS[6],
    )


def test_receipts_the_seal_proves_are_not_verified_again(
    run: Any, sealed: SealedBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ledger.bundles

    checked: list[tuple[str, ...]] = []

    def counting(*signature: str) -> bool:
        checked.append(signature)
        return True

    monkeypatch.setattr(ledger.bundles, "signature_verifies", counting)
    assert _verify(sealed.raw, run.ledger.did).valid
    assert checked == []
    # a seal that fails proves nothing: every receipt is checked, in order, first
    assert not _verify(sealed.raw, OUTSIDER.did).valid
    assert len(checked) == 3


def test_a_chain_entry_not_on_the_ledger_is_refused(run: Any, sealed: SealedBundle) -> None:
    def drop_receipts_and_entry(payload: dict[str, Any]) -> None:
        payload["receipts"] = []
        payload["event_chain"] = payload["event_chain"][:1]

    assert _refusal(run, sealed, drop_receipts_and_entry) == (
        ReasonCode.BUNDLE_NOT_BOUND,
        SEAL_STEPS[4],
    )


def test_another_urm_is_refused(run: Any, sealed: SealedBundle) -> None:
    def edit_urm(payload: dict[str, Any]) -> None:
        payload["seal"]["urm"]["execution"]["sandbox_mode"] = "off"

    assert _refusal(run, sealed, edit_urm) == (ReasonCode.BUNDLE_URM_MISMATCH, SEAL_STEPS[5])


def test_another_wpc_is_refused(run: Any, sealed: SealedBundle) -> None:
    other = dict(run.wpc_envelope["payload"], issuer="someone-else")

    def swap_wpc(payload: dict[str, Any]) -> None:
        payload["seal"]["wpc_envelope"] = sign_wpc(other, run.keys["policy-admin"]).to_dict()

    assert _refusal(run, sealed, swap_wpc) == (ReasonCode.BUNDLE_WPC_MISMATCH, SEAL_STEPS[6])


def test_another_scope_hash_is_refused(run: Any, sealed: SealedBundle) -> None:
    def swap_scope(payload: dict[str, Any]) -> None:
        payload["seal"]["token"]["token_scope_hash_b64u"] = "B" * 43

    assert _refusal(run, sealed, swap_scope) == (ReasonCode.BUNDLE_SCOPE_MISMATCH, SEAL_STEPS[7])


def test_a_hidden_denial_is_refused(run: Any, sealed: SealedBundle) -> None:
    def hide(payload: dict[str, Any]) -> None:
        payload["seal"]["decisions"] = payload["seal"]["decisions"][:-1]

    assert _refusal(run, sealed, hide) == (ReasonCode.BUNDLE_NOT_BOUND, SEAL_STEPS[8])


def test_an_authorized_model_call_without_receipt_is_refused() -> None:
    broken = synthetic_run(2, halt=False, unreceipted=1, job_id="job-unreceipted")
    raw = broken.seal().raw
    assert _failed(_verify(raw, broken.ledger.did)) == (
        ReasonCode.BUNDLE_RECEIPT_MISSING,
        SEAL_STEPS[9],
    )


def test_an_unknown_seal_member_is_refused(run: Any, sealed: SealedBundle) -> None:
    def extra(payload: dict[str, Any]) -> None:
        payload["seal"]["inclusions"] = []

    assert _refusal(run, sealed, extra) == (ReasonCode.SCHEMA_VALIDATION_FAILED, SEAL_STEPS[0])


def test_a_change_without_resigning_fails_the_clawsig_steps(run: Any, sealed: SealedBundle) -> None:
    document = parse_json_strict(sealed.raw)
    document["payload"]["seal"]["run_status"] = "completed"
    raw = json.dumps(document, separators=(",", ":")).encode()
    assert _failed(_verify(raw, run.ledger.did))[0] == ReasonCode.HASH_MISMATCH


def test_events_beyond_the_checkpoint_wait(run: Any) -> None:
    source = MemoryProofSource(NoteSigner(ORIGIN, run.ledger))
    source.extend(run.rows[:-1])
    checkpoint = source.sign()
    with pytest.raises(EventsNotLogged) as caught:
        asyncio.run(source.prove([r["event_id"] for r in run.rows], checkpoint))
    assert caught.value.missing == (run.rows[-1]["event_id"],)


def test_the_memory_source_refuses_a_partial_view(run: Any) -> None:
    source = MemoryProofSource(NoteSigner(ORIGIN, run.ledger))
    with pytest.raises(ValueError, match="expected 1"):
        source.extend(run.rows[1:])
    assert source.size == 0


def test_verify_cli_json_and_exit_codes(run: Any, sealed: SealedBundle, tmp_path: Any) -> None:
    path = tmp_path / "sealed.json"
    path.write_bytes(sealed.raw)
    runner = CliRunner()
    ok = runner.invoke(verify_command, [str(path), "--ledger-key", run.ledger.did, "--json"])
    assert ok.exit_code == 0, ok.output
    document = json.loads(ok.output)
    assert document["valid"] is True and document["reason_code"] == "OK"
    assert [c["name"] for c in document["checks"]][-len(SEAL_STEPS) :] == list(SEAL_STEPS)
    text = runner.invoke(verify_command, [str(path)])
    assert text.exit_code == 1
    assert "CHECKPOINT_KEY_UNKNOWN" in text.output and "--ledger-key" in text.output
    assert " 12. checkpoint signed by the ledger key" in text.output
    valid = runner.invoke(verify_command, [str(path), "--ledger-key", run.ledger.did])
    assert valid.exit_code == 0 and "sealed proof bundle of run job-sealed-1" in valid.output


def test_stored_bytes_are_parsed_with_number_tracking() -> None:
    from ledger.canonical import parse_json_stored

    assert parse_json_stored(b'{"a":[1,2]}') == ({"a": [1, 2]}, True)
    assert parse_json_stored(b'{"a":1.5}') == ({"a": 1.5}, False)
    assert parse_json_stored(b'{"a":9007199254740993}')[1] is False
    with pytest.raises(ValueError):
        parse_json_stored(b'{"a":NaN}')
