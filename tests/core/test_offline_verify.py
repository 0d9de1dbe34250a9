"""ledger.offline_verify: each input kind, its steps in order, and the first failing code."""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

import pytest

from ledger.canonical import compact_json
from ledger.checkpoint import Checkpoint, NoteSigner, sign_checkpoint
from ledger.encoding import sha256_b64u
from ledger.envelope import sign_envelope
from ledger.offline_verify import (
    BUNDLE_STEPS,
    ENVELOPE_STEPS,
    InputKind,
    VerificationResult,
    parse_ledger_key,
    verify_bytes,
)
from tests.core import _bundles as b
from tests.core import _tlog_example as tlog

from ._helpers import BUNDLE_PASS_RAW, FIXED_TS, GOLDEN, bundle_pass, key, to_raw

GOLDEN_EVENT = (GOLDEN / "ledger_event_envelope.rfc8032-test1.key_registered.jcs.json").read_bytes()
CHECKPOINT = tlog.CHECKPOINT_FILE.read_bytes()
EXAMPLE: dict[str, Any] = json.loads(tlog.EXAMPLE_FILE.read_text(encoding="utf-8"))
LEDGER_DID = tlog.KEY.did
LEAF_FIELDS = ("partition", "ledger_seq", "event_id", "envelope_sha256", "chain_hash")


def verify(document: Any, **pins: Any) -> VerificationResult:
    raw = document if isinstance(document, bytes) else to_raw(document)
    return verify_bytes(raw, **pins)


def failed_at(result: VerificationResult) -> tuple[int, str, str]:
    """(step, name, code) of the failing step, which must be the last one run."""
    assert not result.valid
    failure = result.failure
    assert failure is not None and failure is result.checks[-1]
    assert all(check.ok for check in result.checks[:-1])
    assert [check.step for check in result.checks] == list(range(1, len(result.checks) + 1))
    assert result.reason_code == failure.code
    assert dict(result.facts) == {}
    return failure.step, failure.name, failure.code


# --- proof bundles ---------------------------------------------------------------------------


def test_the_conformance_vector_passes_every_step() -> None:
    result = verify_bytes(BUNDLE_PASS_RAW)
    assert result.kind is InputKind.PROOF_BUNDLE
    assert result.valid and result.reason_code == "OK"
    assert [c.name for c in result.checks] == list(BUNDLE_STEPS)
    assert all(c.ok and c.code == "OK" for c in result.checks)
    assert result.facts["bundle_id"] == "bundle_conformance_001"
    assert result.facts["run_id"] == "run_conformance_001"
    assert (result.facts["event_count"], result.facts["receipt_count"]) == (1, 1)


@pytest.mark.parametrize("envelope_type", [{}, [], ["proof_bundle"], 5, None], ids=repr)
def test_an_envelope_type_that_is_not_a_string_is_a_malformed_envelope(
    envelope_type: Any,
) -> None:
    """Any JSON value may stand there; an object or a list raised TypeError
    (unhashable) while the file's kind was told, before any step ran."""
    document = json.loads(BUNDLE_PASS_RAW)
    document["envelope_type"] = envelope_type
    result = verify(document)
    assert result.kind is InputKind.ENVELOPE
    assert failed_at(result) == (1, "envelope fields", "MALFORMED_ENVELOPE")
    assert result.failure is not None
    assert result.failure.detail == "envelope_type must be a string"


def test_a_bundle_with_a_receipt_for_each_model_call_passes() -> None:
    result = verify(b.good_bundle())
    assert result.valid, result.failure
    assert result.facts["agent_did"] == b.AGENT.did
    assert (result.facts["event_count"], result.facts["receipt_count"]) == (3, 2)
    assert result.checks[-1].detail == "model calls: 2, each with a receipt"


def test_a_chain_without_model_calls_needs_no_receipt() -> None:
    # a job chain of this ledger: lifecycle events only
    entries = b.chain(types=("run.manifest_approved", "run.started", "run.completed"))
    assert verify(b.sign_bundle(entries, [])).valid


def test_a_model_call_without_its_receipt_is_receipt_missing() -> None:
    result = verify(b.missing_receipt())
    assert failed_at(result) == (10, "model calls have receipts", "RECEIPT_MISSING")
    assert "event_chain[2]" in result.checks[-1].detail
    assert "1 of 2 model calls" in result.checks[-1].detail


def test_a_receipt_of_another_run_is_a_binding_mismatch() -> None:
    result = verify(b.receipt_of_another_run())
    assert failed_at(result) == (9, "receipt bindings to the chain", "RECEIPT_BINDING_MISMATCH")
    assert result.checks[-1].detail.startswith("receipts[1]")


def test_a_receipt_bound_to_an_event_outside_the_chain_is_a_binding_mismatch() -> None:
    def rebind(payload: dict[str, Any]) -> None:
        payload["receipts"][0] = b.receipt("B" * 43, n=5)

    assert failed_at(verify(b.resigned(rebind)))[2] == "RECEIPT_BINDING_MISMATCH"


def test_a_broken_chain_link_is_a_hash_mismatch_of_the_chain() -> None:
    result = verify(b.broken_link())
    assert failed_at(result) == (8, "event chain links and entry hashes", "HASH_MISMATCH")
    assert "event_chain[2] does not link" in result.checks[-1].detail


def test_an_edited_chain_entry_is_a_hash_mismatch_of_the_chain() -> None:
    def edit(payload: dict[str, Any]) -> None:
        payload["event_chain"][0]["event_type"] = "run.edited"

    result = verify(b.resigned(edit))
    assert failed_at(result)[:2] == (8, "event chain links and entry hashes")
    assert "event_chain[0].event_hash_b64u" in result.checks[-1].detail


def test_a_bundle_signed_by_another_key_is_an_agent_mismatch() -> None:
    result = verify(b.signed_by_outsider())
    assert failed_at(result) == (
        6,
        "signer is the bundle's agent_did",
        "PROOF_BUNDLE_AGENT_MISMATCH",
    )


def test_an_unexpected_agent_is_an_agent_mismatch() -> None:
    assert verify(b.good_bundle(), agent=b.AGENT.did).valid
    result = verify(b.good_bundle(), agent=b.OUTSIDER.did)
    assert failed_at(result)[::2] == (6, "PROOF_BUNDLE_AGENT_MISMATCH")


def test_a_tampered_payload_is_a_hash_mismatch_of_the_payload() -> None:
    tampered = bundle_pass()
    tampered["payload"]["event_chain"][0]["event_type"] = "edited"
    assert failed_at(verify(tampered)) == (4, "payload hash", "HASH_MISMATCH")


def test_a_bad_signature_is_signature_invalid() -> None:
    forged = b.good_bundle()
    # a real signature by the agent, of other bytes
    forged["signature_b64u"] = b.missing_receipt()["signature_b64u"]
    assert failed_at(verify(forged)) == (5, "signer and signature", "SIGNATURE_INVALID")


def test_a_chain_entry_of_the_wrong_shape_fails_at_the_schema_step() -> None:
    def edit(payload: dict[str, Any]) -> None:
        del payload["event_chain"][1]["run_id"]

    result = verify(b.resigned(edit))
    assert failed_at(result) == (3, "payload schema", "SCHEMA_VALIDATION_FAILED")
    assert result.checks[-1].detail == "event_chain[1] lacks run_id"


def test_a_tampered_receipt_fails_at_the_receipt_step() -> None:
    def edit(payload: dict[str, Any]) -> None:
        payload["receipts"][0]["payload"]["tokens_output"] = 1

    result = verify(b.resigned(edit))
    assert failed_at(result) == (7, "receipt envelopes", "HASH_MISMATCH")
    assert result.checks[-1].detail.startswith("receipts[0]")


@pytest.mark.parametrize(
    ("edit", "step", "code"),
    [
        (lambda d: d.pop("issued_at"), 1, "MALFORMED_ENVELOPE"),
        (lambda d: d.update(envelope_version="2"), 2, "UNKNOWN_ENVELOPE_VERSION"),
        (lambda d: d.update(algorithm="ES256"), 2, "UNKNOWN_ALGORITHM"),
        (lambda d: d["payload"].update(bundle_version="2"), 3, "SCHEMA_VALIDATION_FAILED"),
        (lambda d: d.update(signer_did="did:web:example.com"), 5, "INVALID_DID_FORMAT"),
    ],
)
def test_envelope_failures_of_a_bundle_stop_at_their_step(edit: Any, step: int, code: str) -> None:
    document = bundle_pass()
    edit(document)
    assert failed_at(verify(document)) == (step, BUNDLE_STEPS[step - 1], code)


# --- single envelopes --------------------------------------------------------------------------


def test_the_golden_event_passes_with_its_producer_check() -> None:
    result = verify_bytes(GOLDEN_EVENT)
    assert result.kind is InputKind.LEDGER_EVENT and result.valid
    assert [c.name for c in result.checks] == [*ENVELOPE_STEPS, "producer is the signer"]
    assert result.facts["event_type"] == "key.registered"
    assert result.facts["payload_hash_b64u"] == "xIfipbEDhKB5HHjkoBp4KZ4O21Qj6m67gY1sMJsjKww"
    assert result.facts["envelope_sha256"] == sha256_b64u(GOLDEN_EVENT)


def _event(signer_seed: int, **over: Any) -> bytes:
    signer = key(signer_seed)
    payload = {
        "event_type": "key.registered",
        "event_id": "00000000-0000-4000-8000-000000000009",
        "stream": f"key:{signer.did}",
        "occurred_at": FIXED_TS,
        "producer": signer.did,
        "body": {"did": signer.did, "name": "x", "roles": ["admin"]},
    }
    payload.update(over)
    return sign_envelope("ledger_event", payload, signer, issued_at=FIXED_TS).to_bytes()


def test_an_event_whose_producer_is_not_its_signer_fails_the_last_step() -> None:
    result = verify_bytes(_event(31, producer=key(32).did))
    assert failed_at(result) == (6, "producer is the signer", "PRODUCER_MISMATCH")


def test_event_failures_follow_the_ingress_order() -> None:
    assert failed_at(verify_bytes(_event(31, event_type="key.renamed")))[::2] == (
        3,
        "UNKNOWN_EVENT_TYPE",
    )
    tampered = json.loads(GOLDEN_EVENT)
    tampered["payload"]["body"]["name"] = "other"
    assert failed_at(verify(tampered))[::2] == (4, "HASH_MISMATCH")
    oversized = GOLDEN_EVENT + b" " * (1 << 20)
    assert failed_at(verify_bytes(oversized))[::2] == (1, "OVERSIZED")


def test_wpc_and_receipt_envelopes_verify() -> None:
    golden = GOLDEN.parents[1] / "primitives" / "golden"
    wpc = verify_bytes((golden / "wpc_envelope.json").read_bytes())
    assert wpc.kind is InputKind.WPC and wpc.valid
    assert wpc.facts["policy_hash_b64u"] == "OMfo1i4Qvrnbfht-L-4Zl2ElG1U5xenjvTXgXgShVJ4"
    receipt = verify_bytes((golden / "gateway_receipt.json").read_bytes())
    assert receipt.kind is InputKind.GATEWAY_RECEIPT and receipt.valid
    assert receipt.facts["run_id"] == "job-golden"
    forged = json.loads((golden / "gateway_receipt.json").read_bytes())
    forged["signer_did"] = key(33).did
    assert failed_at(verify(forged)) == (5, "signer and signature", "SIGNATURE_INVALID")


def test_a_payload_that_cannot_be_hashed_fails_at_the_hash_step() -> None:
    # receipts keep unknown keys, so the schema passes and the hash step refuses the number
    document = b.receipt("C" * 43)
    document["payload"]["metadata"] = {"n": 2**60}
    raw = json.dumps(document).encode()
    assert failed_at(verify_bytes(raw)) == (4, "payload hash", "MALFORMED_ENVELOPE")


def test_json_of_no_known_type_fails_as_an_envelope() -> None:
    result = verify({**bundle_pass(), "envelope_type": "artifact_signature"})
    assert result.kind is InputKind.ENVELOPE
    assert failed_at(result) == (3, "payload schema", "UNKNOWN_ENVELOPE_TYPE")
    assert failed_at(verify([1, 2]))[::2] == (1, "MALFORMED_ENVELOPE")


# --- checkpoints and proofs --------------------------------------------------------------------


def test_a_checkpoint_without_a_pinned_key_fails_closed() -> None:
    result = verify_bytes(CHECKPOINT)
    assert result.kind is InputKind.CHECKPOINT
    assert failed_at(result) == (2, "ledger key pinned", "CHECKPOINT_KEY_UNKNOWN")
    assert "--ledger-key" in result.checks[-1].detail


@pytest.mark.parametrize("pin", [LEDGER_DID, EXAMPLE["verifier_key"]])
def test_a_checkpoint_signed_by_the_pinned_key_passes(pin: str) -> None:
    result = verify_bytes(CHECKPOINT, ledger_key=pin)
    assert result.valid, result.failure
    assert dict(result.facts) == {
        "origin": tlog.ORIGIN,
        "tree_size": 5,
        "root_hash_b64": "x5BFxO/CG6P6dAaLYwas5Cfj2GmNnROX6U+ohA4WYQ8=",
        "signer_did": LEDGER_DID,
    }


def test_a_checkpoint_signed_by_another_key_is_refused() -> None:
    other = NoteSigner(tlog.ORIGIN, key(34))
    forged = sign_checkpoint(Checkpoint(tlog.ORIGIN, 5, b"\x01" * 32), [other])
    result = verify_bytes(forged, ledger_key=LEDGER_DID)
    assert failed_at(result) == (3, "signature by the ledger key", "CHECKPOINT_KEY_UNKNOWN")


def test_a_bad_signature_of_the_ledger_key_is_checkpoint_signature_invalid() -> None:
    # the ledger key's signature line, moved onto another tree head
    signature_block = CHECKPOINT[CHECKPOINT.rindex(b"\n\n") :]
    forged = Checkpoint(tlog.ORIGIN, 6, b"\x02" * 32).text().encode() + signature_block[1:]
    result = verify_bytes(forged, ledger_key=LEDGER_DID)
    assert failed_at(result)[::2] == (3, "CHECKPOINT_SIGNATURE_INVALID")


def test_the_origin_is_checked_when_pinned() -> None:
    signer = NoteSigner(tlog.ORIGIN, tlog.KEY)
    other_log = sign_checkpoint(Checkpoint("other.example/log", 1, b"\x03" * 32), [signer])
    result = verify_bytes(other_log, ledger_key=LEDGER_DID, origin=tlog.ORIGIN)
    assert failed_at(result) == (4, "origin", "CHECKPOINT_ORIGIN_MISMATCH")
    assert verify_bytes(CHECKPOINT, ledger_key=LEDGER_DID, origin=tlog.ORIGIN).valid


@pytest.mark.parametrize(
    "broken",
    [CHECKPOINT.replace(b"\n5\n", b"\n05\n"), CHECKPOINT.replace(b"\n", b"\r\n")],
    ids=["leading-zero", "crlf"],
)
def test_a_malformed_note_fails_at_the_syntax_step(broken: bytes) -> None:
    result = verify_bytes(broken, ledger_key=LEDGER_DID)
    assert result.kind is InputKind.CHECKPOINT
    assert failed_at(result)[::2] == (1, "CHECKPOINT_MALFORMED")


def proof_file(**over: Any) -> dict[str, Any]:
    leaf = EXAMPLE["leaves"][2]
    document: dict[str, Any] = {
        "checkpoint": EXAMPLE["checkpoints"][1]["note"],
        "inclusion": [
            {
                "log_index": 2,
                "leaf": {name: leaf[name] for name in LEAF_FIELDS},
                "proof_b64": list(EXAMPLE["inclusion"]["proof_b64"]),
            },
            {
                "log_index": 2,
                "leaf_hash_b64": leaf["leaf_hash_b64"],
                "proof_b64": list(EXAMPLE["inclusion"]["proof_b64"]),
            },
        ],
        "consistency": {
            "old_checkpoint": EXAMPLE["checkpoints"][0]["note"],
            "proof_b64": list(EXAMPLE["consistency"]["proof_b64"]),
        },
    }
    document.update(over)
    return document


def test_a_proof_file_with_valid_proofs_passes() -> None:
    result = verify(proof_file(), ledger_key=LEDGER_DID)
    assert result.valid, result.failure
    assert [c.name for c in result.checks][4:] == [
        "inclusion proof 1",
        "inclusion proof 2",
        "consistency proof",
    ]
    assert result.checks[-1].detail == "the tree of size 5 extends the one of size 3"


def test_an_inclusion_proof_for_another_leaf_is_invalid() -> None:
    document = proof_file()
    other = EXAMPLE["leaves"][1]
    document["inclusion"][0]["leaf"] = {name: other[name] for name in LEAF_FIELDS}
    result = verify(document, ledger_key=LEDGER_DID)
    assert failed_at(result) == (5, "inclusion proof 1", "INCLUSION_PROOF_INVALID")


def test_an_inclusion_proof_not_reaching_the_checkpoint_is_invalid() -> None:
    # a valid proof of leaf 2, but against the older, smaller tree
    document = proof_file(checkpoint=EXAMPLE["checkpoints"][0]["note"])
    document.pop("consistency")
    assert failed_at(verify(document, ledger_key=LEDGER_DID))[::2] == (
        5,
        "INCLUSION_PROOF_INVALID",
    )
    document = proof_file()
    document["inclusion"][1]["log_index"] = 3
    assert failed_at(verify(document, ledger_key=LEDGER_DID))[::2] == (
        6,
        "INCLUSION_PROOF_INVALID",
    )


def test_a_bad_consistency_proof_is_invalid() -> None:
    document = proof_file()
    document["consistency"]["proof_b64"] = list(reversed(EXAMPLE["consistency"]["proof_b64"]))
    result = verify(document, ledger_key=LEDGER_DID)
    assert failed_at(result) == (7, "consistency proof", "CONSISTENCY_PROOF_INVALID")


def test_an_older_checkpoint_by_another_key_is_refused() -> None:
    other = NoteSigner(tlog.ORIGIN, key(35))
    old = sign_checkpoint(Checkpoint(tlog.ORIGIN, 3, b"\x04" * 32), [other]).decode()
    document = proof_file()
    document["consistency"]["old_checkpoint"] = old
    assert failed_at(verify(document, ledger_key=LEDGER_DID))[::2] == (
        7,
        "CHECKPOINT_KEY_UNKNOWN",
    )


def test_a_proof_file_of_the_wrong_shape_is_refused() -> None:
    misspelt = proof_file()
    misspelt["inclusions"] = misspelt.pop("inclusion")
    result = verify(misspelt, ledger_key=LEDGER_DID)
    assert failed_at(result) == (1, "proof file shape", "SCHEMA_VALIDATION_FAILED")
    bad_leaf = proof_file()
    del bad_leaf["inclusion"][0]["leaf"]["chain_hash"]
    assert failed_at(verify(bad_leaf, ledger_key=LEDGER_DID))[::2] == (5, "LEAF_MALFORMED")
    bad_hash = proof_file()
    bad_hash["inclusion"][1]["proof_b64"][0] = "not base64"
    assert failed_at(verify(bad_hash, ledger_key=LEDGER_DID))[::2] == (
        6,
        "INCLUSION_PROOF_INVALID",
    )


def test_a_proof_file_still_needs_the_pinned_key() -> None:
    assert failed_at(verify(proof_file()))[::2] == (2, "CHECKPOINT_KEY_UNKNOWN")


def test_ledger_keys_are_dids_or_note_verifier_keys() -> None:
    assert parse_ledger_key(LEDGER_DID) == (tlog.KEY.public_key, None)
    assert parse_ledger_key(EXAMPLE["verifier_key"]) == (tlog.KEY.public_key, tlog.ORIGIN)
    for bad in ("did:web:example.com", "not a key", "name+0000+AA=="):
        with pytest.raises(ValueError):
            parse_ledger_key(bad)


# --- unreadable input and the result ------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", [b"", b"\x00\xff binary", b"{not json", b'{"a":1,"a":2}', b"[" * 100_000]
)
def test_unreadable_input_is_its_own_kind(raw: bytes) -> None:
    result = verify_bytes(raw)
    assert result.kind is InputKind.UNREADABLE
    assert failed_at(result) == (1, "read input", "MALFORMED_JSON")


def test_the_result_is_frozen_and_serialisable() -> None:
    result = verify_bytes(BUNDLE_PASS_RAW)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.kind = InputKind.WPC  # type: ignore[misc]
    with pytest.raises(TypeError):
        result.facts["bundle_id"] = "other"  # type: ignore[index]
    document = json.loads(compact_json(result.to_dict()))
    assert document["valid"] is True and document["reason_code"] == "OK"
    assert document["kind"] == "proof_bundle"
    assert document["checks"][0] == {
        "step": 1,
        "name": "envelope fields",
        "ok": True,
        "code": "OK",
        "detail": "",
    }
    assert copy.deepcopy(document) == document


def test_a_verifier_bug_is_a_verdict_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    import ledger.offline_verify as module

    def broken(document: Any, **options: Any) -> Any:
        raise KeyError("bug")

    monkeypatch.setattr(module, "verify_proof_bundle", broken)
    result = verify_bytes(BUNDLE_PASS_RAW)
    assert failed_at(result) == (1, "verification", "INTERNAL_ERROR")
    assert "KeyError" in result.checks[0].detail
