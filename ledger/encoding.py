"""Byte encodings and digests used everywhere (docs/formats.md §1)."""

from __future__ import annotations

import binascii
import hashlib
import re

__all__ = [
    "B64U_SHA256_CANONICAL_RE",
    "B64U_SHA256_RE",
    "CANONICAL_UUID_PATTERN",
    "CANONICAL_UUID_RE",
    "MAX_POSITION",
    "b64u_decode",
    "b64u_digest",
    "b64u_encode",
    "raw_as_text",
    "sha256_b64u",
    "sha256_hex",
]

#: A SHA-256 digest in base64url without padding is always 43 characters.
B64U_SHA256_RE = re.compile(r"^[A-Za-z0-9_-]{43}\Z")
#: use ``B64U_SHA256_RE.fullmatch``: ``$`` would accept a trailing newline

#: the same digest spelled canonically (what ``b64u_encode`` writes): the last of
#: its 43 characters carries 4 bits of the digest, so its 2 low bits are zero
B64U_SHA256_CANONICAL_RE = re.compile(r"[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]")

#: a UUID as ``str(uuid.UUID(...))`` spells it (lowercase, hyphenated): event ids
CANONICAL_UUID_PATTERN = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
CANONICAL_UUID_RE = re.compile(CANONICAL_UUID_PATTERN)

#: the largest ledger position, quarantine id or tree size: a signed 64-bit
#: integer, what a Postgres bigint holds (a larger one is refused as input)
MAX_POSITION = 2**63 - 1

_B64U_TEXT = re.compile(r"[A-Za-z0-9_-]*")
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


def b64u_encode(data: bytes) -> str:
    """base64url without padding (RFC 4648 §5)."""
    # binascii directly: this runs several times per ledger event
    return (
        binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE).rstrip(b"=").decode("ascii")
    )


def b64u_decode(text: str) -> bytes:
    """Decode unpadded base64url; raises ``ValueError`` on anything else."""
    if not _B64U_TEXT.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not base64url without padding")
    padded = (text + "=" * (-len(text) % 4)).encode("ascii").translate(_FROM_URLSAFE)
    return binascii.a2b_base64(padded, strict_mode=True)


def b64u_digest(text: str) -> bytes:
    """The 32 bytes of a digest that ``B64U_SHA256_CANONICAL_RE`` matched (in one step:
    the match is the check)."""
    return binascii.a2b_base64((text + "=").encode("ascii").translate(_FROM_URLSAFE))


def sha256_b64u(data: bytes) -> str:
    return b64u_encode(hashlib.sha256(data).digest())


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def raw_as_text(raw: bytes) -> dict[str, str]:
    """Bytes someone sent, exactly, in a JSON document: ``{"raw", "raw_encoding"}``,
    the text itself when it is UTF-8 (``utf-8``), else its standard base64
    (``base64``). A refused message can be anything, and replacing the bytes
    that are not UTF-8 would hand a reviewer something it never was."""
    try:
        return {"raw": raw.decode("utf-8"), "raw_encoding": "utf-8"}
    except UnicodeDecodeError:
        return {
            "raw": binascii.b2a_base64(raw, newline=False).decode("ascii"),
            "raw_encoding": "base64",
        }
