"""The clawsig v1 signed envelope (docs/formats.md §2).

The envelope is kept apart from its payload (as in TUF's ``Envelope``): the
payload is hashed as received, and the signature covers exactly the bytes
produced by :func:`signing_bytes`. Verification works on a parsed JSON value
whose key order is that of the bytes received; it never re-serialises a
payload in a different order.

Verification runs the clawsig verifier's numbered steps, in its order; the
first failure decides the reason code:

1. every envelope field is present             → ``MALFORMED_ENVELOPE``
2. envelope version, hash and signature algorithm are known
3. the payload matches the schema of its envelope type → ``SCHEMA_VALIDATION_FAILED``
4. the payload hash matches                   → ``HASH_MISMATCH``
5. the signer DID is valid and the signature verifies
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import TYPE_CHECKING, Any, NamedTuple

from ledger.attributes import attributes
from ledger.canonical import compact_json, holds_index_keys, jcs, plain_jcs
from ledger.crypto import KeyPair, public_key_from_did
from ledger.encoding import b64u_decode, b64u_encode
from ledger.errors import EnvelopeError, LedgerError, ReasonCode
from ledger.javascript import js_property_order

if TYPE_CHECKING:
    from nacl.signing import VerifyKey

__all__ = [
    "ENVELOPE_FIELDS",
    "SIGNATURE_DOES_NOT_VERIFY",
    "PayloadSchema",
    "SignedEnvelope",
    "envelope_bytes",
    "format_epoch",
    "format_timestamp",
    "payload_hash_b64u",
    "sign_envelope",
    "signature_verifies",
    "signatures_verify",
    "signing_bytes",
    "verify_envelope",
]

ENVELOPE_VERSION = "1"
HASH_ALGORITHM = "SHA-256"
SIGNATURE_ALGORITHM = "Ed25519"

ENVELOPE_FIELDS: tuple[str, ...] = (
    "envelope_version",
    "envelope_type",
    "payload",
    "payload_hash_b64u",
    "hash_algorithm",
    "signature_b64u",
    "algorithm",
    "signer_did",
    "issued_at",
)

_ENVELOPE_FIELD_SET = frozenset(ENVELOPE_FIELDS)
_STRING_FIELDS = tuple(name for name in ENVELOPE_FIELDS if name != "payload")
_string_fields = itemgetter(*_STRING_FIELDS)
_ONLY_STR = {str}

#: Validates a payload of one envelope type; raises on failure (what it returns is not used).
PayloadSchema = Callable[[Mapping[str, Any]], object]


class _Second(NamedTuple):
    epoch: int
    text: str  # "2026-02-12T00:00:00"


_last_second = _Second(-1, "")


def format_timestamp(moment: datetime | None = None) -> str:
    """RFC 3339 UTC with milliseconds, e.g. ``2026-02-12T00:00:00.000Z``."""
    if moment is not None:
        return moment.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
    now = time.time()
    epoch = int(now)
    return f"{_second_text(epoch)}.{int((now - epoch) * 1000):03d}Z"


def _second_text(epoch: int) -> str:
    """``2026-02-12T00:00:00`` for ``epoch``: "now" is stamped on every signed event
    and decision, so the date part is formatted once a second."""
    global _last_second
    second = _last_second
    if second.epoch != epoch:
        second = _last_second = _Second(
            epoch, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch))
        )
    return second.text


def format_epoch(seconds: float) -> str:
    """``format_timestamp(datetime.fromtimestamp(seconds, UTC))``, byte for byte,
    without the datetime (decisions stamp one per call)."""
    # datetime rounds the fraction to microseconds (half to even), then
    # isoformat truncates to milliseconds: the same steps, same result
    fraction, whole = math.modf(seconds)
    micros = round(fraction * 1_000_000)
    epoch = int(whole)
    if micros >= 1_000_000:
        epoch, micros = epoch + 1, micros - 1_000_000
    if seconds < 0 or micros < 0:
        return format_timestamp(datetime.fromtimestamp(seconds, UTC))
    return f"{_second_text(epoch)}.{micros // 1000:03d}Z"


def payload_hash_b64u(payload: Any, *, plain_numbers: bool = False) -> str:
    """b64u(SHA-256(compact JSON of the payload in document order))."""
    return b64u_encode(hashlib.sha256(compact_json(payload, plain_numbers=plain_numbers)).digest())


def signing_bytes(payload_hash: str) -> bytes:
    """The exact bytes an envelope signature covers: the UTF-8 of the hash string."""
    return payload_hash.encode("utf-8")


@dataclass(frozen=True, slots=True)
class SignedEnvelope:
    """A verified (or freshly signed) clawsig envelope."""

    envelope_type: str
    payload: Mapping[str, Any]
    payload_hash_b64u: str
    signature_b64u: str
    signer_did: str
    issued_at: str
    envelope_version: str = ENVELOPE_VERSION
    hash_algorithm: str = HASH_ALGORITHM
    algorithm: str = SIGNATURE_ALGORITHM
    #: set by verification: the payload as ``JSON.stringify`` writes it (what was hashed)
    payload_json: bytes | None = field(default=None, compare=False, repr=False)
    #: set by signing: the payload's bytes, so the wire form needs no second pass
    #: (RFC 8785, or JavaScript's order where array-index keys make them differ)
    payload_jcs: bytes | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return attributes(self, *ENVELOPE_FIELDS)

    def to_bytes(self) -> bytes:
        """JCS bytes of the whole envelope: what producers put on the wire."""
        if self.payload_jcs is not None and self.envelope_version == ENVELOPE_VERSION:
            try:
                return envelope_bytes(
                    self.envelope_type,
                    self.payload_jcs,
                    self.payload_hash_b64u,
                    self.signature_b64u,
                    self.signer_did,
                    self.issued_at,
                    hash_algorithm=self.hash_algorithm,
                    algorithm=self.algorithm,
                )
            except UnicodeEncodeError:
                pass  # a lone surrogate in a field: jcs refuses it with its own error
        return jcs(self.to_dict())


_encode_string = json.encoder.encode_basestring  # JCS string form for what UTF-8 can encode


_DEFAULT_HEAD = '{"algorithm":"' + SIGNATURE_ALGORITHM + '","envelope_type":'
_DEFAULT_VERSION_AND_HASH = (
    ',"envelope_version":"' + ENVELOPE_VERSION + '","hash_algorithm":"' + HASH_ALGORITHM + '"'
)


def envelope_bytes(
    envelope_type: str,
    payload_jcs: bytes,
    payload_hash: str,
    signature_b64u: str,
    signer_did: str,
    issued_at: str,
    *,
    hash_algorithm: str = HASH_ALGORITHM,
    algorithm: str = SIGNATURE_ALGORITHM,
) -> bytes:
    """RFC 8785 bytes of a v1 envelope around already-canonical payload bytes.

    Every other field is a string under a fixed ASCII key, so the key order is
    the one below and each value needs only string escaping. Raises
    ``UnicodeEncodeError`` for a lone surrogate (not JSON text).
    """
    if algorithm == SIGNATURE_ALGORITHM and hash_algorithm == HASH_ALGORITHM:
        head = _DEFAULT_HEAD + _encode_string(envelope_type) + _DEFAULT_VERSION_AND_HASH
    else:
        head = (
            '{"algorithm":' + _encode_string(algorithm)
            + ',"envelope_type":' + _encode_string(envelope_type)
            + ',"envelope_version":"' + ENVELOPE_VERSION
            + '","hash_algorithm":' + _encode_string(hash_algorithm)
        )  # fmt: skip
    head += ',"issued_at":' + _encode_string(issued_at) + ',"payload":'
    tail = (
        ',"payload_hash_b64u":' + _encode_string(payload_hash)
        + ',"signature_b64u":' + _encode_string(signature_b64u)
        + ',"signer_did":' + _encode_string(signer_did)
        + "}"
    )  # fmt: skip
    return head.encode("utf-8") + payload_jcs + tail.encode("utf-8")


def sign_envelope(
    envelope_type: str,
    payload: Mapping[str, Any],
    key: KeyPair,
    *,
    issued_at: str | None = None,
) -> SignedEnvelope:
    """Sign ``payload``. The payload is first put in JCS order so that the
    document-order hash and the canonical hash agree (docs/formats.md §2).

    A plain payload (:func:`ledger.canonical.plain_jcs`) is canonicalised once:
    those bytes are hashed, and :meth:`SignedEnvelope.to_bytes` embeds them.
    Anything else (floats, say) takes the reference canonicaliser and the
    verifier's own hash, so what cannot verify is refused here.

    A key JavaScript holds as an array index ("0", "17") is the one case where
    the orders cannot agree: JavaScript lists such keys first, whatever the
    bytes said. That payload is written and hashed in JavaScript's order, so
    that ``JSON.stringify`` of its parse, and its document order, both verify.
    """
    fast = plain_jcs(payload)
    payload_jcs: bytes | None
    if fast is None or holds_index_keys(fast[1]):
        canonical_payload = json.loads(jcs(payload))
        payload_bytes = compact_json(canonical_payload)
        digest = b64u_encode(hashlib.sha256(payload_bytes).digest())
        payload_jcs = None
        if holds_index_keys(payload_bytes):
            canonical_payload = js_property_order(canonical_payload)
            payload_jcs = payload_bytes
    else:
        canonical_payload, payload_jcs = fast
        digest = b64u_encode(hashlib.sha256(payload_jcs).digest())
    signature = key.sign(signing_bytes(digest))
    return SignedEnvelope(
        envelope_type=envelope_type,
        payload=canonical_payload,
        payload_hash_b64u=digest,
        signature_b64u=b64u_encode(signature),
        signer_did=key.did,
        issued_at=issued_at or format_timestamp(),
        payload_jcs=payload_jcs,
    )


#: the detail of a ``SIGNATURE_INVALID`` refusal of step 5
SIGNATURE_DOES_NOT_VERIFY = "signature does not verify for signer_did"


def _signature_verifies(verify_key: VerifyKey, payload_hash: str, signature_b64u: str) -> bool:
    try:
        verify_key.verify(signing_bytes(payload_hash), b64u_decode(signature_b64u))
    except Exception:  # nacl raises BadSignatureError or ValueError; bad base64 ValueError
        return False
    return True


def signature_verifies(signer_did: str, payload_hash: str, signature_b64u: str) -> bool:
    """Step 5 alone: ``signature_b64u`` is ``signer_did``'s Ed25519 signature of
    ``payload_hash`` (already checked against the payload). Stateless, so it
    can run in another process; a bad DID does not verify."""
    try:
        verify_key = public_key_from_did(signer_did)
    except EnvelopeError:
        return False
    return _signature_verifies(verify_key, payload_hash, signature_b64u)


def signatures_verify(triples: list[tuple[str, str, str]]) -> bytes:
    """:func:`signature_verifies` of each (signer DID, payload hash, signature):
    one byte each, 1 when it verifies. What a worker process of a verified
    replay runs; it lives here so that such a process imports no more than this
    module (no pydantic, no rules)."""
    return bytes(1 if signature_verifies(*triple) else 0 for triple in triples)


def verify_envelope(
    document: Any,
    schemas: Mapping[str, PayloadSchema] | None = None,
    *,
    expected_type: str | None = None,
    plain_numbers: bool = False,
    signature: bool = True,
) -> SignedEnvelope:
    """Verify a parsed envelope by the numbered steps in the module docstring.

    ``schemas`` maps envelope types to payload validators; when given, an
    envelope type missing from it is refused (fail closed). ``plain_numbers``:
    the caller parsed the bytes and found only safe integers (a faster hash).
    ``signature=False`` stops before step 5: the signer DID is still parsed,
    the Ed25519 check is the caller's (:func:`signature_verifies`, run elsewhere).
    """
    # (1) fields present
    if type(document) is not dict and not isinstance(document, Mapping):
        raise EnvelopeError(ReasonCode.MALFORMED_ENVELOPE, "envelope is not a JSON object")
    if not _ENVELOPE_FIELD_SET.issubset(document.keys()):
        missing = [name for name in ENVELOPE_FIELDS if name not in document]
        raise EnvelopeError(
            ReasonCode.MALFORMED_ENVELOPE, f"missing envelope field(s): {', '.join(missing)}"
        )
    payload = document["payload"]
    if type(payload) is not dict and not isinstance(payload, Mapping):
        raise EnvelopeError(ReasonCode.MALFORMED_ENVELOPE, "payload is not a JSON object")
    # all strings, checked in one pass of C; else the first that is not is named
    if set(map(type, _string_fields(document))) != _ONLY_STR:
        for name in _STRING_FIELDS:
            if type(document[name]) is not str:
                raise EnvelopeError(ReasonCode.MALFORMED_ENVELOPE, f"{name} must be a string")
    # (2) versions and algorithms
    if document["envelope_version"] != ENVELOPE_VERSION:
        raise EnvelopeError(
            ReasonCode.UNKNOWN_ENVELOPE_VERSION,
            f"envelope_version {document['envelope_version']!r} is not supported",
        )
    if document["hash_algorithm"] != HASH_ALGORITHM:
        raise EnvelopeError(
            ReasonCode.UNKNOWN_HASH_ALGORITHM,
            f"hash_algorithm {document['hash_algorithm']!r} is not supported",
        )
    if document["algorithm"] != SIGNATURE_ALGORITHM:
        raise EnvelopeError(
            ReasonCode.UNKNOWN_ALGORITHM, f"algorithm {document['algorithm']!r} is not supported"
        )
    envelope_type = document["envelope_type"]
    if expected_type is not None and envelope_type != expected_type:
        raise EnvelopeError(
            ReasonCode.SCHEMA_VALIDATION_FAILED,
            f"expected envelope_type {expected_type!r}, got {envelope_type!r}",
        )
    # (3) payload schema
    if schemas is not None:
        schema = schemas.get(envelope_type)
        if schema is None:
            raise EnvelopeError(
                ReasonCode.UNKNOWN_ENVELOPE_TYPE, f"envelope_type {envelope_type!r} is not known"
            )
        try:
            schema(payload)
        except LedgerError as exc:
            code = getattr(exc, "code", ReasonCode.SCHEMA_VALIDATION_FAILED)
            raise EnvelopeError(code, getattr(exc, "detail", str(exc))) from exc
        except (ValueError, TypeError) as exc:
            raise EnvelopeError(ReasonCode.SCHEMA_VALIDATION_FAILED, str(exc)) from exc
    # (4) payload hash
    try:
        payload_json = compact_json(payload, plain_numbers=plain_numbers)
        computed = b64u_encode(hashlib.sha256(payload_json).digest())
    except (ValueError, TypeError) as exc:
        raise EnvelopeError(
            ReasonCode.MALFORMED_ENVELOPE, f"payload not serialisable: {exc}"
        ) from exc
    if computed != document["payload_hash_b64u"]:
        raise EnvelopeError(
            ReasonCode.HASH_MISMATCH,
            f"payload hashes to {computed}, envelope says {document['payload_hash_b64u']}",
        )
    # (5) signer and signature
    verify_key = public_key_from_did(document["signer_did"])
    if signature and not _signature_verifies(verify_key, computed, document["signature_b64u"]):
        raise EnvelopeError(ReasonCode.SIGNATURE_INVALID, SIGNATURE_DOES_NOT_VERIFY)
    return SignedEnvelope(
        envelope_type=envelope_type,
        payload=payload,
        payload_hash_b64u=computed,
        signature_b64u=document["signature_b64u"],
        signer_did=document["signer_did"],
        issued_at=document["issued_at"],
        payload_json=payload_json,
    )
