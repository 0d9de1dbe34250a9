"""Offline verification of a signed checkpoint, bare or in a proof file.

A C2SP signed note (docs/transparency.md) whose signer must be the ledger key
the reviewer pins (without a pin the check fails: fail closed), then each
inclusion proof and the consistency proof the proof file holds, as numbered
steps (:class:`~ledger.verification_report.Steps`).
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from typing import Any

from ledger.checkpoint import Checkpoint, NoteVerifier, open_note, parse_note
from ledger.errors import CheckpointError, ProofError, ReasonCode, RejectedError
from ledger.log_proofs import b64_hash
from ledger.merkle import verify_consistency, verify_inclusion
from ledger.tlog import EventLeaf
from ledger.verification_report import InputKind, Steps, VerificationResult

__all__ = ["parse_ledger_key", "verify_checkpoint", "verify_proof_file"]

_PROOF_FILE_KEYS = frozenset({"checkpoint", "inclusion", "consistency"})
_INCLUSION_KEYS = frozenset({"log_index", "leaf", "leaf_hash_b64", "proof_b64"})
_CONSISTENCY_KEYS = frozenset({"old_checkpoint", "proof_b64"})
_LEAF_KEYS = frozenset({"partition", "ledger_seq", "event_id", "envelope_sha256", "chain_hash"})


def parse_ledger_key(value: str) -> tuple[bytes, str | None]:
    """The public key and key name (or ``None``) of a ``--ledger-key``.

    A ``did:key``, or a note verifier key ``<name>+<key id>+<base64 key>``
    (docs/transparency.md §3), whose name is then the origin. ``ValueError``
    when it is neither.
    """
    if value.startswith("did:"):
        from ledger.crypto import public_key_from_did

        try:
            return bytes(public_key_from_did(value)), None
        except RejectedError as exc:
            raise ValueError(exc.detail) from exc
    verifier = NoteVerifier.from_verifier_key(value)
    return verifier.public_key, verifier.name


def _schema(detail: str) -> RejectedError:
    return RejectedError(ReasonCode.SCHEMA_VALIDATION_FAILED, detail)


def _proof_list(value: Any, code: ReasonCode, where: str) -> list[bytes]:
    if not isinstance(value, list):
        raise _schema(f"{where}.proof_b64 must be a list of base64 hashes")
    return [b64_hash(item, code, f"{where}.proof_b64[{i}]") for i, item in enumerate(value)]


def _check_keys(value: Any, allowed: frozenset[str], where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _schema(f"{where} must be an object")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise _schema(f"{where} has unknown member(s) {unknown}; known: {sorted(allowed)}")
    return value


def _inclusion(entry: Any, where: str, checkpoint: Checkpoint) -> str:
    entry = _check_keys(entry, _INCLUSION_KEYS, where)
    index = entry.get("log_index")
    if type(index) is not int or index < 0:
        raise _schema(f"{where}.log_index must be an integer >= 0")
    if ("leaf" in entry) == ("leaf_hash_b64" in entry):
        raise _schema(f"{where} gives exactly one of leaf and leaf_hash_b64")
    if "leaf" in entry:
        fields = entry["leaf"]
        if not isinstance(fields, Mapping) or set(fields) != _LEAF_KEYS:
            raise ProofError(ReasonCode.LEAF_MALFORMED, f"{where}.leaf has {sorted(_LEAF_KEYS)}")
        hashed = EventLeaf(**fields).hash()
    else:
        hashed = b64_hash(entry["leaf_hash_b64"], ReasonCode.INCLUSION_PROOF_INVALID, where)
    proof = _proof_list(entry.get("proof_b64"), ReasonCode.INCLUSION_PROOF_INVALID, where)
    verify_inclusion(index, checkpoint.size, hashed, proof, checkpoint.root_hash)
    return f"leaf {index} is in the tree of size {checkpoint.size}"


def _consistency(value: Any, verifier: NoteVerifier, checkpoint: Checkpoint) -> str:
    value = _check_keys(value, _CONSISTENCY_KEYS, "consistency")
    note = value.get("old_checkpoint")
    if not isinstance(note, str):
        raise _schema("consistency.old_checkpoint must be the older signed checkpoint's text")
    opened, _ = open_note(note.encode("utf-8"), [verifier])
    old = Checkpoint.parse(opened.text)
    if old.origin != checkpoint.origin:
        raise CheckpointError(
            ReasonCode.CHECKPOINT_ORIGIN_MISMATCH,
            f"the older checkpoint is of {old.origin!r}, not {checkpoint.origin!r}",
        )
    proof = _proof_list(value.get("proof_b64"), ReasonCode.CONSISTENCY_PROOF_INVALID, "consistency")
    verify_consistency(old.size, checkpoint.size, old.root_hash, checkpoint.root_hash, proof)
    return f"the tree of size {checkpoint.size} extends the one of size {old.size}"


def verify_checkpoint(
    note: bytes, proofs: Mapping[str, Any] | None, ledger_key: str | None, origin: str | None
) -> VerificationResult:
    """The steps for the signed note ``note``: its syntax, the pinned key, the
    signature, the origin, then each proof of ``proofs`` (a proof file's members)."""
    steps = Steps(InputKind.CHECKPOINT)
    try:
        parsed = parse_note(note)
        checkpoint = Checkpoint.parse(parsed.text)
    except CheckpointError as exc:
        steps.fail("signed note and checkpoint syntax", exc.code, exc.detail)
        return steps.result()
    steps.ok("signed note and checkpoint syntax")
    signers = ", ".join(f"{s.name} {s.key_id.hex()}" for s in parsed.signatures)
    if ledger_key is None:
        steps.fail(
            "ledger key pinned",
            ReasonCode.CHECKPOINT_KEY_UNKNOWN,
            f"the signer is not pinned, so nothing says this is the ledger's checkpoint"
            f" (signed by {signers}); pass the ledger's key with --ledger-key",
        )
        return steps.result()
    try:
        public_key, key_name = parse_ledger_key(ledger_key)
    except ValueError as exc:
        steps.fail("ledger key pinned", ReasonCode.INVALID_DID_FORMAT, str(exc))
        return steps.result()
    expected_origin = origin or key_name
    verifier = NoteVerifier(expected_origin or checkpoint.origin, public_key)
    steps.ok("ledger key pinned", f"{verifier.did} as {verifier.name} {verifier.key_id.hex()}")
    try:
        open_note(note, [verifier])
    except CheckpointError as exc:
        steps.fail("signature by the ledger key", exc.code, exc.detail)
        return steps.result()
    steps.ok("signature by the ledger key")
    if expected_origin is not None and checkpoint.origin != expected_origin:
        steps.fail(
            "origin",
            ReasonCode.CHECKPOINT_ORIGIN_MISMATCH,
            f"checkpoint of {checkpoint.origin!r}, expected {expected_origin!r}",
        )
        return steps.result()
    steps.ok("origin", checkpoint.origin if expected_origin else "not pinned: see --origin")
    for index, entry in enumerate((proofs or {}).get("inclusion") or ()):
        name = f"inclusion proof {index + 1}"
        try:
            steps.ok(name, _inclusion(entry, f"inclusion[{index}]", checkpoint))
        except RejectedError as exc:
            steps.fail(name, exc.code, exc.detail)
            return steps.result()
    if proofs is not None and "consistency" in proofs:
        try:
            steps.ok("consistency proof", _consistency(proofs["consistency"], verifier, checkpoint))
        except RejectedError as exc:
            steps.fail("consistency proof", exc.code, exc.detail)
            return steps.result()
    return steps.result(
        {
            "origin": checkpoint.origin,
            "tree_size": checkpoint.size,
            "root_hash_b64": binascii.b2a_base64(checkpoint.root_hash, newline=False).decode(),
            "signer_did": verifier.did,
        }
    )


def verify_proof_file(
    document: Mapping[str, Any], ledger_key: str | None, origin: str | None
) -> VerificationResult:
    """A proof file (docs/transparency.md §8): its shape, then :func:`verify_checkpoint`."""
    try:
        _check_keys(document, _PROOF_FILE_KEYS, "the proof file")
        if not isinstance(document["checkpoint"], str):
            raise _schema("checkpoint must be the signed checkpoint's text")
        if not isinstance(document.get("inclusion", []), list):
            raise _schema("inclusion must be a list of inclusion proofs")
    except RejectedError as exc:
        steps = Steps(InputKind.CHECKPOINT)
        steps.fail("proof file shape", exc.code, exc.detail)
        return steps.result()
    note = document["checkpoint"].encode("utf-8")
    return verify_checkpoint(note, document, ledger_key, origin)
