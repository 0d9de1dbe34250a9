"""C2SP signed notes and tlog checkpoints: golden files, the Go note rules, strict parsing."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ledger.checkpoint import (
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    note_key_id,
    open_checkpoint,
    open_note,
    parse_note,
    sign_checkpoint,
    sign_note,
)
from ledger.crypto import KeyPair
from ledger.errors import CheckpointError, ReasonCode
from ledger.merkle import leaf_hash, verify_consistency, verify_inclusion
from ledger.tlog import EventLeaf
from tests.core import _tlog_example as example

GO_CROSSCHECK = Path(__file__).resolve().parent / "go_crosscheck"
VERIFIER = NoteVerifier.from_did(example.ORIGIN, example.KEY.did)
OTHER_KEY = KeyPair.from_seed(bytes([7]) * 32)


# --- golden files ----------------------------------------------------------------------------


def test_golden_checkpoint_and_example_are_stable() -> None:
    assert example.signed_checkpoint() == example.CHECKPOINT_FILE.read_bytes()
    assert example.example_json() == example.EXAMPLE_FILE.read_text(encoding="utf-8")


def test_golden_checkpoint_verifies_with_the_ledger_did() -> None:
    checkpoint = open_checkpoint(
        example.CHECKPOINT_FILE.read_bytes(), [VERIFIER], origin=example.ORIGIN
    )
    assert checkpoint.size == 5
    assert checkpoint.extensions == ()
    golden = json.loads(example.EXAMPLE_FILE.read_text(encoding="utf-8"))
    assert (
        base64.b64encode(checkpoint.root_hash).decode() == golden["checkpoints"][1]["root_hash_b64"]
    )
    assert golden["signer_did"] == example.KEY.did
    assert NoteVerifier.from_verifier_key(golden["verifier_key"]) == VERIFIER


def test_golden_proofs_verify_from_the_checkpoints_alone() -> None:
    golden = json.loads(example.EXAMPLE_FILE.read_text(encoding="utf-8"))
    old, new = (
        open_checkpoint(cp["note"].encode(), [VERIFIER], origin=example.ORIGIN)
        for cp in golden["checkpoints"]
    )
    inclusion = golden["inclusion"]
    entry = golden["leaves"][inclusion["log_index"]]
    leaf = EventLeaf(
        entry["partition"],
        entry["ledger_seq"],
        entry["event_id"],
        entry["envelope_sha256"],
        entry["chain_hash"],
    )
    assert leaf.data().hex() == entry["leaf_data_hex"]
    proof = [base64.b64decode(h) for h in inclusion["proof_b64"]]
    verify_inclusion(inclusion["log_index"], new.size, leaf.hash(), proof, new.root_hash)
    consistency = [base64.b64decode(h) for h in golden["consistency"]["proof_b64"]]
    verify_consistency(old.size, new.size, old.root_hash, new.root_hash, consistency)


@pytest.mark.skipif(shutil.which("go") is None, reason="no Go toolchain on this machine")
def test_go_sumdb_note_and_tlog_accept_the_golden_files() -> None:
    # An independent implementation: golang.org/x/mod's note.Open, tlog.CheckRecord,
    # tlog.CheckTree and tlog.TreeHash over the same golden bytes.
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly -buildvcs=false"}

    def go(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["go", *args], cwd=GO_CROSSCHECK, capture_output=True, text=True, timeout=280, env=env
        )

    fetched = go("mod", "download")
    if fetched.returncode != 0:
        # the check needs golang.org/x/mod from the Go module proxy; without it there is
        # nothing to compare against (the Python checks above still run)
        pytest.skip(f"golang.org/x/mod could not be fetched: {fetched.stderr.strip()[:200]}")
    result = go("run", ".", str(example.EXAMPLE_FILE), str(example.CHECKPOINT_FILE))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# --- the Go sumdb note rules, as documented in golang.org/x/mod/sumdb/note -------------------

GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_SIGNED = (
    GO_TEXT + "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSN"
    "XgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
).encode()
GO_DOUBLY_SIGNED = (
    GO_SIGNED
    + (
        "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwn"
        "WLox33WWd1RvMc+QQ=\n"
    ).encode()
)
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY_B64 = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"  # 0x01 || seed


def test_go_documented_note_verifies_and_signs_byte_for_byte() -> None:
    verifier = NoteVerifier.from_verifier_key(GO_VKEY)
    assert verifier.key_id.hex() == "c74f20a3"
    assert verifier.verifier_key() == GO_VKEY
    note, signed_by = open_note(GO_SIGNED, [verifier])
    assert note.text == GO_TEXT
    assert signed_by == [verifier]
    seed = base64.b64decode(GO_SKEY_B64)[1:]
    signer = NoteSigner("PeterNeumann", KeyPair.from_seed(seed))
    assert signer.verifier == verifier
    assert sign_note(GO_TEXT, [signer]) == GO_SIGNED


def test_signatures_by_unknown_keys_are_ignored_but_one_trusted_is_needed() -> None:
    verifier = NoteVerifier.from_verifier_key(GO_VKEY)
    note, signed_by = open_note(GO_DOUBLY_SIGNED, [verifier])
    assert [s.name for s in note.signatures] == ["PeterNeumann", "EnochRoot"]
    assert signed_by == [verifier]
    with pytest.raises(CheckpointError) as caught:
        open_note(GO_DOUBLY_SIGNED, [VERIFIER])
    assert caught.value.code == ReasonCode.CHECKPOINT_KEY_UNKNOWN
    assert "PeterNeumann c74f20a3" in caught.value.detail


def test_key_id_is_the_spec_hash() -> None:
    public = example.KEY.public_key
    expected = hashlib.sha256(example.ORIGIN.encode() + b"\n\x01" + public).digest()[:4]
    assert note_key_id(example.ORIGIN, public) == expected == VERIFIER.key_id


@pytest.mark.parametrize(
    "vkey",
    [
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong id
        "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # not lowercase
        "PeterNeumann+c74f20a3+Ahpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # type 0x02
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",  # bad base64
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # space
        "PeterNeumann",
    ],
)
def test_bad_verifier_keys_are_refused(vkey: str) -> None:
    with pytest.raises(ValueError):
        NoteVerifier.from_verifier_key(vkey)


# --- strict parsing ----------------------------------------------------------------------------

GOLDEN = example.signed_checkpoint()
BODY, SIG_LINE = GOLDEN.split(b"\n\n")
SIG_B64 = SIG_LINE.split(b" ")[2].rstrip(b"\n")


def _set_padding_bit(b64: bytes) -> bytes:
    """The same bytes in a non-canonical spelling: a padding bit of the last character set."""
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    assert b64.endswith(b"=") and not b64.endswith(b"==")
    last = alphabet.index(b64[-2:-1])
    assert last & 0b11 == 0
    spelled = b64[:-2] + alphabet[last | 1 : (last | 1) + 1] + b"="
    assert base64.b64decode(spelled) == base64.b64decode(b64)
    return spelled


def _resign(text: bytes) -> bytes:
    """A note whose text is ``text``, validly signed: isolates the checkpoint body rules."""
    signature = example.KEY.sign(text)
    line = f"— {example.ORIGIN} " + base64.b64encode(VERIFIER.key_id + signature).decode()
    return text + b"\n" + line.encode() + b"\n"


@pytest.mark.parametrize(
    ("message", "why"),
    [
        (BODY + b"\n" + SIG_LINE, "no blank line"),
        (GOLDEN[:-1], "no final newline"),
        (GOLDEN + b"trailing", "trailing data"),
        (GOLDEN + b"\n", "trailing blank line"),
        (GOLDEN.replace(b"\n", b"\r\n"), "CRLF"),
        (GOLDEN.replace(b"\n5\n", b"\n5\t\n"), "a tab"),
        (GOLDEN.replace(b"demo\n", b"demo\xff\n"), "not UTF-8"),
        (GOLDEN.replace("— ".encode(), b"-- "), "not an em dash"),
        (GOLDEN.replace("— ".encode(), "—  ".encode()), "two spaces"),
        (GOLDEN.replace(SIG_B64, SIG_B64.rstrip(b"=")), "unpadded base64"),
        (GOLDEN.replace(SIG_B64, _set_padding_bit(SIG_B64)), "non-canonical base64 bits"),
        (GOLDEN.replace(SIG_B64, SIG_B64 + b" "), "a trailing space"),
        (GOLDEN.replace(b"demo " + SIG_B64, b"demo"), "no signature"),
        (GOLDEN.replace(SIG_B64, base64.b64encode(b"1234")), "signature too short"),
        (GOLDEN.replace(b"/demo ", b"/de+mo "), "a plus in the key name"),
        (BODY + b"\n\n", "no signature lines"),
        (BODY + b"\n\n" + (SIG_LINE + b"\n") * 101, "too many signatures"),
        (BODY + b"\n\n" + SIG_LINE + b"\n" + SIG_LINE + b"\n", "a trusted key twice"),
        (b"x" * 70_000 + b"\n\n" + SIG_LINE + b"\n", "oversized"),
        (_resign(b"claw-ledger.example/demo\n05\n" + BODY.split(b"\n")[2] + b"\n"), "leading 0"),
        (_resign(b"claw-ledger.example/demo\n+5\n" + BODY.split(b"\n")[2] + b"\n"), "sign"),
        (
            _resign("claw-ledger.example/demo\n５\n".encode() + BODY.split(b"\n")[2] + b"\n"),
            "digit",
        ),
        (_resign(b"o\n18446744073709551616\n" + BODY.split(b"\n")[2] + b"\n"), "over uint64"),
        (_resign(b"o\n5\n" + base64.b64encode(bytes(31)) + b"\n"), "a 31-byte root"),
        (_resign(b"o\n5\n" + BODY.split(b"\n")[2][:-2] + b"9=\n"), "non-canonical root"),
        (_resign(b"o\n5\n" + BODY.split(b"\n")[2] + b"\n\nextension\n"), "an empty extension"),
        (_resign(b"o\n5\n"), "no root line"),
        (_resign(b"\n5\n" + BODY.split(b"\n")[2] + b"\n"), "an empty origin"),
    ],
)
def test_malformed_notes_and_checkpoints_are_refused(message: bytes, why: str) -> None:
    with pytest.raises(CheckpointError) as caught:
        open_checkpoint(message, [VERIFIER])
    assert caught.value.code == ReasonCode.CHECKPOINT_MALFORMED, why


def test_resigning_keeps_the_helper_honest() -> None:
    # _resign makes valid notes: the cases above fail on the body, not on the signature
    assert _resign(BODY + b"\n") == GOLDEN
    body_with_extension = BODY + b"\nextension line\n"
    checkpoint = open_checkpoint(_resign(body_with_extension), [VERIFIER])
    assert checkpoint.extensions == ("extension line",)
    assert checkpoint.text().encode() == body_with_extension


def _flip_signature_bit(message: bytes, bit: int) -> bytes:
    raw = bytearray(base64.b64decode(SIG_B64))
    raw[4 + bit // 8] ^= 1 << (bit % 8)
    return message.replace(SIG_B64, base64.b64encode(bytes(raw)))


@pytest.mark.parametrize("bit", [0, 7, 100, 255, 511])
def test_a_flipped_signature_bit_is_refused(bit: int) -> None:
    with pytest.raises(CheckpointError) as caught:
        open_checkpoint(_flip_signature_bit(GOLDEN, bit), [VERIFIER])
    assert caught.value.code == ReasonCode.CHECKPOINT_SIGNATURE_INVALID


@pytest.mark.parametrize(
    ("old", "new"), [(b"\n5\n", b"\n6\n"), (b"demo\n", b"demp\n"), (b"=\n", b"=\nextra\n")]
)
def test_a_changed_text_is_refused(old: bytes, new: bytes) -> None:
    tampered = GOLDEN.replace(old, new, 1)
    assert tampered != GOLDEN
    with pytest.raises(CheckpointError) as caught:
        open_checkpoint(tampered, [VERIFIER])
    assert caught.value.code == ReasonCode.CHECKPOINT_SIGNATURE_INVALID


def test_a_truncated_signature_from_a_trusted_key_is_refused() -> None:
    short = base64.b64encode(base64.b64decode(SIG_B64)[:-1])
    with pytest.raises(CheckpointError) as caught:
        open_checkpoint(GOLDEN.replace(SIG_B64, short), [VERIFIER])
    assert caught.value.code == ReasonCode.CHECKPOINT_SIGNATURE_INVALID


def test_unknown_key_ids_and_names_are_refused_with_their_own_code() -> None:
    same_name_other_key = NoteVerifier(example.ORIGIN, OTHER_KEY.public_key)
    other_name_same_key = NoteVerifier("claw-ledger.example/other", example.KEY.public_key)
    for verifiers in ([same_name_other_key], [other_name_same_key], []):
        with pytest.raises(CheckpointError) as caught:
            open_checkpoint(GOLDEN, verifiers)
        assert caught.value.code == ReasonCode.CHECKPOINT_KEY_UNKNOWN


def test_a_cosigned_checkpoint_verifies_with_either_key() -> None:
    cosigner = NoteSigner("witness.example/w1", OTHER_KEY)
    checkpoint = Checkpoint.parse(BODY.decode() + "\n")
    both = sign_checkpoint(checkpoint, [NoteSigner(example.ORIGIN, example.KEY), cosigner])
    assert open_checkpoint(both, [VERIFIER]) == checkpoint
    assert open_checkpoint(both, [cosigner.verifier]) == checkpoint
    _, signed_by = open_note(both, [VERIFIER, cosigner.verifier])
    assert signed_by == [VERIFIER, cosigner.verifier]
    assert len(parse_note(both).signatures) == 2


def test_a_checkpoint_of_another_origin_is_refused() -> None:
    with pytest.raises(CheckpointError) as caught:
        open_checkpoint(GOLDEN, [VERIFIER], origin="claw-ledger.example/other")
    assert caught.value.code == ReasonCode.CHECKPOINT_ORIGIN_MISMATCH


def test_checkpoint_fields_are_validated_when_built() -> None:
    root = leaf_hash(b"")
    assert Checkpoint("o", 0, root).text() == "o\n0\n" + base64.b64encode(root).decode() + "\n"
    for args in (
        ("", 1, root),
        ("a\nb", 1, root),
        ("o", -1, root),
        ("o", 2**64, root),
        ("o", True, root),
        ("o", 1, root[:31]),
        ("o", 1, root, ("",)),
        ("o", 1, root, ("a\nb",)),
        ("o\t", 1, root),
    ):
        with pytest.raises(ValueError):
            Checkpoint(*args)
    with pytest.raises(ValueError):
        sign_note("no final newline", [NoteSigner(example.ORIGIN, example.KEY)])
    with pytest.raises(ValueError):
        sign_note("text\n", [NoteSigner("bad name", example.KEY)])
    with pytest.raises(ValueError):
        sign_note("text\n", [])


def test_two_trusted_keys_with_one_name_and_id_are_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="share name and key id"):
        open_note(GOLDEN, [VERIFIER, _same_id_other_key()])


def _same_id_other_key() -> NoteVerifier:
    """A verifier whose key id collides with the ledger key's (ids are only 32 bits)."""

    class Colliding(NoteVerifier):
        @property
        def key_id(self) -> bytes:
            return VERIFIER.key_id

    return Colliding(example.ORIGIN, OTHER_KEY.public_key)
