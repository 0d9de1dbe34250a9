"""Ed25519 keys, did:key, kid, signatures and key files (formats.md §1, §4)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import base58
import pytest

from ledger.crypto import (
    KeyPair,
    did_from_public_key,
    kid_for_public_key,
    load_key,
    public_key_from_did,
    save_key,
    verify_signature,
)
from ledger.errors import ConfigError, EnvelopeError, ReasonCode

from ._helpers import EXAMPLES, RFC8032_TEST1_DID, key

#: RFC 8032 §7.1, TEST 1-3: (secret key, public key, message, signature), all hex
RFC8032_VECTORS = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
]


@pytest.mark.parametrize(("seed", "public", "message", "signature"), RFC8032_VECTORS)
def test_rfc8032_vectors(seed: str, public: str, message: str, signature: str) -> None:
    pair = KeyPair.from_seed(bytes.fromhex(seed))
    assert pair.public_key.hex() == public
    signed = pair.sign(bytes.fromhex(message))
    assert signed.hex() == signature
    assert len(signed) == 64
    assert verify_signature(pair.did, bytes.fromhex(message), signed)
    # the same signature does not verify another message
    assert not verify_signature(pair.did, bytes.fromhex(message) + b"\x00", signed)


def test_rfc8032_test1_matches_examples_json() -> None:
    example = EXAMPLES["rfc8032_test1"]
    pair = KeyPair.from_seed(bytes.fromhex(example["seed_hex"]))
    assert pair.public_key.hex() == example["public_hex"]
    assert pair.did == example["did_key"] == RFC8032_TEST1_DID
    assert pair.sign(b"").hex() == example["signature_of_empty_message_hex"]


def test_did_key_layout() -> None:
    pair = key(1)
    did = did_from_public_key(pair.public_key)
    assert did.startswith("did:key:z6Mk")  # every Ed25519 did:key starts like this
    raw = base58.b58decode(did[len("did:key:z") :])
    assert raw == b"\xed\x01" + pair.public_key
    assert bytes(public_key_from_did(did)) == pair.public_key


def test_did_round_trip_for_many_keys() -> None:
    seen = set()
    for n in range(1, 60):
        pair = key(n)
        assert bytes(public_key_from_did(pair.did)) == pair.public_key
        seen.add(pair.did)
    assert len(seen) == 59


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_did_from_public_key_refuses_wrong_length(length: int) -> None:
    with pytest.raises(ValueError):
        did_from_public_key(b"\x01" * length)


def _did_with(raw: bytes) -> str:
    return "did:key:z" + base58.b58encode(raw).decode("ascii")


_PUB = bytes.fromhex(RFC8032_VECTORS[0][1])


@pytest.mark.parametrize(
    "did",
    [
        "",
        "did:key:",
        "did:key:z",
        "did:web:example.com",
        "did:key:6MktwupdmLXVVqTzCw4i46r4uGyosGXRnR3XjN4Zq7oMMsw",  # no multibase 'z'
        "did:key:u" + RFC8032_TEST1_DID[len("did:key:z") :],  # other multibase
        "DID:KEY:" + RFC8032_TEST1_DID[len("did:key:") :],
        "did:key:z6Mktwupdm0XVVqTzCw4i46r4uGyosGXRnR3XjN4Zq7oMMsw",  # '0' not base58
        "did:key:z6MktwupdmOXVVqTzCw4i46r4uGyosGXRnR3XjN4Zq7oMMsw",  # 'O' not base58
        "did:key:z6MktwupdmlXVVqTzCw4i46r4uGyosGXRnR3XjN4Zq7oMMsw",  # 'l' not base58
        "did:key:z6Mktwupdmé",
        _did_with(b"\xec\x01" + _PUB),  # X25519 multicodec
        _did_with(b"\xe7\x01" + _PUB[:33] + b"\x00"),  # secp256k1 multicodec
        _did_with(b"\xed\x00" + _PUB),
        _did_with(b"\xed\x01" + _PUB[:31]),  # key too short
        _did_with(b"\xed\x01" + _PUB + b"\x00"),  # key too long
        _did_with(_PUB),  # no multicodec at all
        RFC8032_TEST1_DID[:-1],
        RFC8032_TEST1_DID + "1",
    ],
)
def test_public_key_from_did_refuses(did: str) -> None:
    with pytest.raises(EnvelopeError) as info:
        public_key_from_did(did)
    assert info.value.code is ReasonCode.INVALID_DID_FORMAT


@pytest.mark.parametrize("did", [None, 42, b"did:key:z6Mk"])
def test_public_key_from_did_refuses_non_strings(did: object) -> None:
    with pytest.raises(EnvelopeError) as info:
        public_key_from_did(did)  # type: ignore[arg-type]
    assert info.value.code is ReasonCode.INVALID_DID_FORMAT


@pytest.mark.parametrize("suffix", ["\n", " ", "\t"])
def test_public_key_from_did_refuses_trailing_whitespace(suffix: str) -> None:
    with pytest.raises(EnvelopeError) as info:
        public_key_from_did(RFC8032_TEST1_DID + suffix)
    assert info.value.code is ReasonCode.INVALID_DID_FORMAT


def test_verify_signature_false_for_wrong_key_or_bad_signature() -> None:
    signer, other = key(1), key(2)
    signature = signer.sign(b"message")
    assert verify_signature(signer.did, b"message", signature)
    assert not verify_signature(other.did, b"message", signature)
    assert not verify_signature(signer.did, b"message", signature[:63])
    assert not verify_signature(signer.did, b"message", b"\x00" * 64)
    with pytest.raises(EnvelopeError):
        verify_signature("did:key:zzz", b"message", signature)


def test_kid_for_public_key() -> None:
    # first 16 hex of SHA-256 of the RFC 8032 test 1 public key, computed with `sha256sum`
    assert kid_for_public_key(_PUB) == "21fe31dfa154a261"
    pair = KeyPair.from_seed(bytes.fromhex(RFC8032_VECTORS[0][0]))
    assert pair.kid == "21fe31dfa154a261"
    kids = {key(n).kid for n in range(1, 40)}
    assert len(kids) == 39
    assert all(len(k) == 16 and set(k) <= set("0123456789abcdef") for k in kids)


def test_generated_keys_differ_and_sign() -> None:
    a, b = KeyPair.generate("a"), KeyPair.generate("b")
    assert a.did != b.did
    assert a.name == "a"
    assert verify_signature(a.did, b"x", a.sign(b"x"))


# --- key files --------------------------------------------------------------------------


def test_save_key_writes_0600_and_round_trips(tmp_path: Path) -> None:
    pair = key(7, "runtime-1")
    path = tmp_path / "keys" / "runtime-1.json"
    save_key(pair, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = json.loads(path.read_text())
    assert document["did"] == pair.did
    assert document["seed_hex"] == (bytes([7]) * 32).hex()
    assert document["kty"] == "OKP" and document["crv"] == "Ed25519"
    loaded = load_key(path)
    assert loaded.did == pair.did
    assert loaded.name == "runtime-1"
    assert loaded.sign(b"m") == pair.sign(b"m")


def test_save_key_0600_even_with_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        save_key(key(1), tmp_path / "k.json")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k.json").stat().st_mode) == 0o600


def test_save_key_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    save_key(key(1), path)
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="already exists"):
        save_key(key(2), path)
    assert path.read_bytes() == before
    assert load_key(path).did == key(1).did


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o620, 0o602, 0o610, 0o601])
def test_load_key_refuses_group_or_world_access(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "k.json"
    save_key(key(1), path)
    path.chmod(mode)
    with pytest.raises(ConfigError, match="readable by others") as info:
        load_key(path)
    assert info.value.hint is not None and "chmod 600" in info.value.hint


def test_load_key_accepts_0400(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    save_key(key(1), path)
    path.chmod(0o400)
    assert load_key(path).did == key(1).did


def test_load_key_detects_did_seed_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    save_key(key(1), path)
    document = json.loads(path.read_text())
    document["did"] = key(2).did
    path.write_text(json.dumps(document))
    with pytest.raises(ConfigError, match="does not match the seed"):
        load_key(path)


def test_load_key_without_did_field_derives_it(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    path.write_text(json.dumps({"seed_hex": (bytes([3]) * 32).hex()}))
    path.chmod(0o600)
    assert load_key(path).did == key(3).did


def test_load_key_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no key file"):
        load_key(tmp_path / "absent.json")


@pytest.mark.parametrize(
    "content",
    ["not json", "[]", '"x"', "{}", '{"seed_hex": "zz"}', '{"seed_hex": 5}'],
)
def test_load_key_refuses_non_key_files(tmp_path: Path, content: str) -> None:
    path = tmp_path / "k.json"
    path.write_text(content)
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="not a claw-ledger key file"):
        load_key(path)


@pytest.mark.parametrize("seed_hex", ["00" * 31, "00" * 33, ""])
def test_load_key_refuses_wrong_seed_length_with_config_error(
    tmp_path: Path, seed_hex: str
) -> None:
    path = tmp_path / "k.json"
    path.write_text(json.dumps({"seed_hex": seed_hex}))
    path.chmod(0o600)
    with pytest.raises(ConfigError):
        load_key(path)
