"""Ed25519 keys, ``did:key`` identifiers and signatures (docs/formats.md §1)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import base58
from nacl.bindings import crypto_sign, crypto_sign_seed_keypair
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from ledger.errors import ConfigError, EnvelopeError, ReasonCode

__all__ = [
    "KeyPair",
    "did_from_public_key",
    "kid_for_public_key",
    "load_key",
    "public_key_from_did",
    "save_key",
    "verify_signature",
]

_ED25519_MULTICODEC = b"\xed\x01"
_DID_KEY_PREFIX = "did:key:z"
# base58btc alphabet only: base58.b58decode would quietly strip surrounding whitespace
_DID_KEY_RE = re.compile(r"did:key:z[1-9A-HJ-NP-Za-km-z]{1,64}")


def did_from_public_key(public_key: bytes) -> str:
    """``did:key:z`` + base58btc(0xed 0x01 ‖ public key)."""
    if len(public_key) != 32:
        raise ValueError("Ed25519 public keys are 32 bytes")
    return _DID_KEY_PREFIX + base58.b58encode(_ED25519_MULTICODEC + public_key).decode("ascii")


_did_cache: dict[str, VerifyKey] = {}


def public_key_from_did(did: str) -> VerifyKey:
    """The Ed25519 verify key named by a ``did:key``; ``INVALID_DID_FORMAT`` otherwise."""
    cached = _did_cache.get(did)
    if cached is not None:
        return cached
    if not isinstance(did, str) or not _DID_KEY_RE.fullmatch(did):
        raise EnvelopeError(ReasonCode.INVALID_DID_FORMAT, f"not an Ed25519 did:key: {did!r}")
    try:
        raw = base58.b58decode(did[len(_DID_KEY_PREFIX) :])
    except ValueError as exc:
        raise EnvelopeError(ReasonCode.INVALID_DID_FORMAT, f"bad base58 in {did!r}") from exc
    if len(raw) != 34 or raw[:2] != _ED25519_MULTICODEC:
        raise EnvelopeError(ReasonCode.INVALID_DID_FORMAT, f"not an Ed25519 did:key: {did!r}")
    key = VerifyKey(raw[2:])
    if len(_did_cache) > 10_000:
        _did_cache.clear()
    _did_cache[did] = key
    return key


def kid_for_public_key(public_key: bytes) -> str:
    """First 16 hex characters of SHA-256(public key) — the JWT ``kid`` (docs/formats.md §4)."""
    return hashlib.sha256(public_key).hexdigest()[:16]


def verify_signature(did: str, message: bytes, signature: bytes) -> bool:
    """True when ``signature`` is the signer's Ed25519 signature of ``message``."""
    key = public_key_from_did(did)
    try:
        key.verify(message, signature)
    except (BadSignatureError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class KeyPair:
    """An Ed25519 signing key and its ``did:key``.

    The public key, DID and kid are derived once per key and kept: a service
    signs every event with the same key, and base58 of the DID alone cost
    more than a tenth of each signature.
    """

    signing_key: SigningKey
    name: str = ""

    @classmethod
    def generate(cls, name: str = "") -> KeyPair:
        return cls(SigningKey.generate(), name)

    @classmethod
    def from_seed(cls, seed: bytes, name: str = "") -> KeyPair:
        return cls(SigningKey(seed), name)

    # cached_property writes the instance __dict__ directly, which a frozen
    # dataclass allows; the key itself never changes after construction
    @cached_property
    def public_key(self) -> bytes:
        return bytes(self.signing_key.verify_key)

    @cached_property
    def did(self) -> str:
        return did_from_public_key(self.public_key)

    @cached_property
    def kid(self) -> str:
        return kid_for_public_key(self.public_key)

    @cached_property
    def _secret(self) -> bytes:
        # libsodium's 64-byte secret key (seed ‖ public key), what crypto_sign takes
        return crypto_sign_seed_keypair(bytes(self.signing_key))[1]

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        # crypto_sign returns signature ‖ message; calling it directly skips
        # SigningKey.sign's encoder and SignedMessage wrapping
        return crypto_sign(message, self._secret)[:64]


def save_key(key: KeyPair, path: Path) -> None:
    """Write a key file readable only by its owner (0600); refuses to overwrite."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "kty": "OKP",
        "crv": "Ed25519",
        "name": key.name,
        "did": key.did,
        "seed_hex": bytes(key.signing_key).hex(),
    }
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError as exc:
        raise ConfigError(
            f"key file {path} already exists", hint="choose another name or delete it first"
        ) from exc
    with os.fdopen(fd, "w") as handle:
        json.dump(document, handle, indent=2)
        handle.write("\n")


def load_key(path: Path | str) -> KeyPair:
    """Read a key file written by :func:`save_key`."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        document = json.loads(path.read_text())
        seed = bytes.fromhex(document["seed_hex"])
        if len(seed) != 32:
            raise ValueError("an Ed25519 seed is 32 bytes")
    except FileNotFoundError as exc:
        raise ConfigError(
            f"no key file at {path}", hint="create one with `claw-ledger keys new NAME`"
        ) from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is not a claw-ledger key file") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"key file {path} is readable by others", hint=f"run `chmod 600 {path}`")
    key = KeyPair.from_seed(seed, str(document.get("name", "")))
    if document.get("did") not in (None, key.did):
        raise ConfigError(f"key file {path}: stored DID does not match the seed")
    return key
