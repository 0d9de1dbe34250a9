"""C2SP signed notes and tlog checkpoints, signed with Ed25519 keys.

A checkpoint (c2sp.org/tlog-checkpoint) is the note text::

    <origin>\\n<tree size, decimal>\\n<base64 root hash>\\n[<extension line>\\n ...]

and a signed note (c2sp.org/signed-note) is that text, a blank line, then one
line per signature: ``— <key name> <base64(key id (4 bytes) || signature)>``,
with key id = SHA-256(key name || 0x0A || 0x01 || Ed25519 public key)[:4].
The same rules as golang.org/x/mod/sumdb/note, so its verifier keys
(``<name>+<key id hex>+<base64(0x01 || public key)>``) work here too.

Parsing is strict: a note that is not exactly what a signer writes is
refused, with stable reason codes (``CHECKPOINT_*``).
"""

from __future__ import annotations

import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from ledger.crypto import KeyPair, did_from_public_key, public_key_from_did
from ledger.errors import CheckpointError, ReasonCode

__all__ = [
    "ALG_ED25519",
    "MAX_NOTE_BYTES",
    "MAX_NOTE_SIGNATURES",
    "Checkpoint",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "SignedNote",
    "note_key_id",
    "open_checkpoint",
    "open_note",
    "parse_note",
    "sign_checkpoint",
    "sign_note",
]

#: signature type byte of Ed25519 in signed notes
ALG_ED25519 = 0x01
#: the spec asks verifiers to accept at least 16; Go's verifier stops at 100
MAX_NOTE_SIGNATURES = 100
#: a checkpoint is a few hundred bytes; this bounds the work spent on hostile input
MAX_NOTE_BYTES = 64 * 1024
_SIG_PREFIX = "— "
_MAX_TREE_SIZE = 2**64 - 1
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


def _malformed(detail: str) -> CheckpointError:
    return CheckpointError(ReasonCode.CHECKPOINT_MALFORMED, detail)


def _b64_decode(text: str, what: str) -> bytes:
    """Standard base64 with padding, and only its canonical spelling."""
    if not _BASE64.fullmatch(text):
        raise _malformed(f"{what} is not standard base64")
    decoded = binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    if _b64_encode(decoded) != text:
        raise _malformed(f"{what} is not canonical base64")
    return decoded


def _b64_encode(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def _valid_key_name(name: str) -> bool:
    return bool(name) and "+" not in name and not any(ch.isspace() for ch in name)


def note_key_id(name: str, public_key: bytes) -> bytes:
    """SHA-256(name || 0x0A || 0x01 || public key)[:4], the Ed25519 key id of signed notes."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()[:4]


@dataclass(frozen=True)
class NoteVerifier:
    """A trusted Ed25519 key under a name (for a log, the name is its origin)."""

    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        if not _valid_key_name(self.name):
            raise ValueError(f"not a note key name (empty, a space or '+'): {self.name!r}")
        if len(self.public_key) != 32:
            raise ValueError("an Ed25519 public key is 32 bytes")

    @property
    def key_id(self) -> bytes:
        return note_key_id(self.name, self.public_key)

    @property
    def did(self) -> str:
        return did_from_public_key(self.public_key)

    @classmethod
    def from_did(cls, name: str, did: str) -> NoteVerifier:
        """The ledger's registered ``did:key`` as a note verifier."""
        return cls(name, bytes(public_key_from_did(did)))

    @classmethod
    def from_verifier_key(cls, vkey: str) -> NoteVerifier:
        """Parse ``<name>+<key id hex>+<base64(0x01 || public key)>`` (the Go note format)."""
        name, _, rest = vkey.partition("+")
        key_id_hex, _, key_b64 = rest.partition("+")
        if not re.fullmatch(r"[0-9a-f]{8}", key_id_hex):
            raise ValueError("a verifier key is <name>+<8 hex digits>+<base64 key>")
        try:
            key = _b64_decode(key_b64, "the verifier key")
        except CheckpointError as exc:
            raise ValueError(exc.detail) from exc
        if len(key) != 33 or key[0] != ALG_ED25519:
            raise ValueError("only Ed25519 verifier keys (type 0x01) are supported")
        verifier = cls(name, key[1:])
        if verifier.key_id.hex() != key_id_hex:
            raise ValueError("the verifier key's id does not match its name and key")
        return verifier

    def verifier_key(self) -> str:
        """``<name>+<key id hex>+<base64(0x01 || public key)>``, as Go's note.NewVerifier reads."""
        encoded = _b64_encode(bytes([ALG_ED25519]) + self.public_key)
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def verify(self, text: bytes, signature: bytes) -> bool:
        try:
            VerifyKey(self.public_key).verify(text, signature)
        except (BadSignatureError, ValueError):
            return False
        return True


@dataclass(frozen=True)
class NoteSigner:
    """An Ed25519 key that signs notes under a name."""

    name: str
    key: KeyPair

    @property
    def verifier(self) -> NoteVerifier:
        return NoteVerifier(self.name, self.key.public_key)

    def sign(self, text: bytes) -> bytes:
        return self.key.sign(text)


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        return f"{_SIG_PREFIX}{self.name} {_b64_encode(self.key_id + self.signature)}\n"


@dataclass(frozen=True)
class SignedNote:
    """A parsed note. Its signatures are not verified yet: see :func:`open_note`."""

    text: str
    signatures: tuple[NoteSignature, ...]


def _check_note_text(text: str) -> None:
    if not text.endswith("\n"):
        raise _malformed("a note text ends with a newline")
    if any(ord(ch) < 0x20 and ch != "\n" for ch in text):
        raise _malformed("a note holds no control character other than newline")


def parse_note(message: bytes) -> SignedNote:
    """Split a signed note into its text and signature lines, refusing anything non-canonical."""
    if len(message) > MAX_NOTE_BYTES:
        raise _malformed(f"a note is at most {MAX_NOTE_BYTES} bytes")
    try:
        decoded = message.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _malformed("a note is UTF-8") from exc
    if any(ord(ch) < 0x20 and ch != "\n" for ch in decoded):
        raise _malformed("a note holds no control character other than newline")
    split = decoded.rfind("\n\n")
    if split < 0:
        raise _malformed("no blank line before the signatures")
    text, block = decoded[: split + 1], decoded[split + 2 :]
    if not block.endswith("\n"):
        raise _malformed("the signature block ends with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_NOTE_SIGNATURES:
        raise _malformed(f"more than {MAX_NOTE_SIGNATURES} signatures")
    signatures = []
    for line in lines:
        if not line.startswith(_SIG_PREFIX):
            raise _malformed(f"not a signature line: {line[:80]!r}")
        name, space, b64 = line[len(_SIG_PREFIX) :].partition(" ")
        if not space or not _valid_key_name(name):
            raise _malformed(f"bad key name in signature line: {line[:80]!r}")
        raw = _b64_decode(b64, f"the signature of {name!r}")
        if len(raw) < 5:
            raise _malformed(f"the signature of {name!r} is too short")
        signatures.append(NoteSignature(name, raw[:4], raw[4:]))
    return SignedNote(text, tuple(signatures))


def sign_note(text: str, signers: Sequence[NoteSigner]) -> bytes:
    """``text`` + blank line + one signature line per signer."""
    if not text.endswith("\n") or any(ord(ch) < 0x20 and ch != "\n" for ch in text):
        raise ValueError("a note text ends with a newline and holds no other control character")
    if not signers:
        raise ValueError("a signed note needs at least one signer")
    raw = text.encode("utf-8")
    lines = []
    for signer in signers:
        verifier = signer.verifier  # validates the name
        lines.append(NoteSignature(verifier.name, verifier.key_id, signer.sign(raw)).line())
    return raw + b"\n" + "".join(lines).encode("utf-8")


def _verifier_map(verifiers: Iterable[NoteVerifier]) -> dict[tuple[str, bytes], NoteVerifier]:
    known: dict[tuple[str, bytes], NoteVerifier] = {}
    for verifier in verifiers:
        slot = (verifier.name, verifier.key_id)
        if slot in known and known[slot].public_key != verifier.public_key:
            raise ValueError(f"two trusted keys share name and key id {slot[1].hex()}")
        known[slot] = verifier
    return known


def open_note(
    message: bytes, verifiers: Iterable[NoteVerifier]
) -> tuple[SignedNote, list[NoteVerifier]]:
    """Parse ``message`` and verify it; returns the note and the trusted keys that signed it.

    As the spec requires, signatures by unknown keys (name and key id not both
    known) are ignored, and a note is refused when no trusted key signed it
    (``CHECKPOINT_KEY_UNKNOWN``) or when a trusted key's signature fails
    (``CHECKPOINT_SIGNATURE_INVALID``). Stricter than Go's verifier: a second
    signature line from the same trusted key is refused, not skipped.
    """
    known = _verifier_map(verifiers)
    note = parse_note(message)
    text = note.text.encode("utf-8")
    signed_by: list[NoteVerifier] = []
    for signature in note.signatures:
        verifier = known.get((signature.name, signature.key_id))
        if verifier is None:
            continue
        if verifier in signed_by:
            raise _malformed(f"two signatures by {verifier.name} {signature.key_id.hex()}")
        if len(signature.signature) != 64 or not verifier.verify(text, signature.signature):
            raise CheckpointError(
                ReasonCode.CHECKPOINT_SIGNATURE_INVALID,
                f"the signature of {verifier.name} ({signature.key_id.hex()}) does not verify",
            )
        signed_by.append(verifier)
    if not signed_by:
        seen = ", ".join(f"{s.name} {s.key_id.hex()}" for s in note.signatures)
        trusted = ", ".join(f"{name} {key_id.hex()}" for name, key_id in known) or "none"
        raise CheckpointError(
            ReasonCode.CHECKPOINT_KEY_UNKNOWN,
            f"no signature by a trusted key: signed by {seen}; trusted: {trusted}",
        )
    return note, signed_by


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head: its origin, tree size and RFC 9162 root hash."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise ValueError("the origin is one non-empty line")
        if type(self.size) is not int or not 0 <= self.size <= _MAX_TREE_SIZE:
            raise ValueError(f"tree size {self.size!r} is not a uint64")
        if len(self.root_hash) != 32:
            raise ValueError("the root hash is 32 bytes")
        if any(not line or "\n" in line for line in self.extensions):
            raise ValueError("extension lines are non-empty single lines")
        if any(ord(ch) < 0x20 for ch in self.origin + "".join(self.extensions)):
            raise ValueError("a checkpoint holds no control character")

    def text(self) -> str:
        """The note text (body) of the checkpoint."""
        lines = [self.origin, str(self.size), _b64_encode(self.root_hash), *self.extensions]
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse a checkpoint body strictly: every field in its one canonical spelling."""
        _check_note_text(text)
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise _malformed("a checkpoint has an origin, a size and a root hash")
        origin, size_text, root_text, *extensions = lines
        if not origin:
            raise _malformed("the origin is empty")
        if not _DECIMAL.fullmatch(size_text) or int(size_text) > _MAX_TREE_SIZE:
            raise _malformed(f"the tree size {size_text[:30]!r} is not a canonical decimal")
        root = _b64_decode(root_text, "the root hash")
        if len(root) != 32:
            raise _malformed("the root hash is not 32 bytes")
        if any(not line for line in extensions):
            raise _malformed("an extension line is empty")
        return cls(origin, int(size_text), root, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signers: Sequence[NoteSigner]) -> bytes:
    """The signed note of ``checkpoint``; the log's key name should be its origin."""
    return sign_note(checkpoint.text(), signers)


def open_checkpoint(
    message: bytes, verifiers: Iterable[NoteVerifier], *, origin: str | None = None
) -> Checkpoint:
    """Verify a signed checkpoint and return it.

    ``origin``, when given, is the log the caller expects
    (``CHECKPOINT_ORIGIN_MISMATCH`` otherwise): a valid checkpoint of another
    log signed by the same key must not pass for this one.
    """
    note, _ = open_note(message, verifiers)
    checkpoint = Checkpoint.parse(note.text)
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointError(
            ReasonCode.CHECKPOINT_ORIGIN_MISMATCH,
            f"checkpoint of {checkpoint.origin!r}, expected {origin!r}",
        )
    return checkpoint
