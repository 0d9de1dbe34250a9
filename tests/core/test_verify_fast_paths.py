"""The verification hot path's fast forms give what the reference forms give.

Each fast path (the payload hash of a parsed message, a chain link, the copy of
a projection row) is pinned against its reference on generated inputs:
non-ASCII and astral text, escapes, control characters, large integers,
floats, non-canonical wire forms and tampered hashes. Where the fast form does
not apply it must hand over to the reference, never accept on its own.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any
from unittest.mock import patch

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import ledger.canonical
from ledger.canonical import compact_json, jcs, parse_json_tracking
from ledger.chain import chain_hash
from ledger.crypto import KeyPair
from ledger.encoding import b64u_encode, sha256_b64u
from ledger.envelope import signing_bytes
from ledger.errors import ReasonCode
from ledger.types._common import copy_json
from ledger.verify import Rejected, Verified, verify_message

from ._helpers import FIXED_TS

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEY = KeyPair.from_seed(bytes([27]) * 32, "runtime")

#: text with the characters JSON escapes, non-ASCII, astral and separators
texts = st.text(
    st.characters(codec="utf-8")
    | st.sampled_from(['"', "\\", "/", "\x00", "\x1f", "\x7f", "\u2028", "\ud7ff", "\ue000"])
    | st.sampled_from(["\U0001f600", "\U00010000", "\uffff", "é", " "]),
    max_size=12,
)
ints = st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1) | st.integers()
floats = st.floats(allow_nan=False, allow_infinity=False)


def json_values(numbers: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    scalars = st.none() | st.booleans() | numbers | texts
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
        max_leaves=16,
    )


class _NoFastEncoder:
    """Stands in for orjson: refuses everything, so compact_json takes json.dumps
    and the parsers the standard library's strict decoder."""

    JSONEncodeError = TypeError
    JSONDecodeError = ValueError

    @staticmethod
    def dumps(value: Any, option: int = 0) -> bytes:
        raise TypeError("the reference path, please")

    @staticmethod
    def loads(data: bytes) -> Any:
        raise ValueError("the reference path, please")


@contextmanager
def reference_hash() -> Iterator[None]:
    """Verification with the payload hashed by the standard library alone."""
    with patch.object(ledger.canonical, "orjson", _NoFastEncoder):
        yield


# --- the payload hash of a parsed message ---------------------------------------------


def outcome(function: Callable[[], bytes]) -> tuple[str, Any]:
    """The bytes ``function`` returns, or what it raised."""
    try:
        return "bytes", function()
    except Exception as exc:
        return "raised", (type(exc), str(exc))


@PROPERTY
@given(json_values(ints | floats))
@example({"a": 2**53, "b": [1.5, -0.0, 1e21, 1e-7]})
@example({"\U0001f600": "\ue000\x00\u2028", "": {"\\": ['"']}})
def test_the_parsed_payload_hash_is_compact_json(value: Any) -> None:
    payload, plain = parse_json_tracking(json.dumps({"p": value}).encode())
    fast = outcome(lambda: compact_json(payload, plain_numbers=plain))
    with reference_hash():
        assert fast == outcome(lambda: compact_json(payload, plain_numbers=plain))
    assert fast == outcome(lambda: compact_json(payload))


def test_what_compact_json_refuses_the_fast_hash_refuses_alike() -> None:
    # values no parser gives: the fast encoder fails, and json.dumps decides
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    values: list[Any] = [{"x": object()}, {b"k": 1}, cyclic]
    for value in values:
        fast = outcome(partial(compact_json, value, plain_numbers=True))
        assert fast[0] == "raised"
        with reference_hash():
            assert fast == outcome(partial(compact_json, value, plain_numbers=True))


# --- whole messages: the same verdict both ways ---------------------------------------


def _raw(record: Any, form: int, tamper: bool) -> bytes:
    payload = {
        "body": {"pulse_id": "B" * 43, "record": record},
        "event_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
        "event_type": "pulse.published",
        "occurred_at": FIXED_TS,
        "producer": KEY.did,
        "stream": "job:job-1",
    }
    try:
        digest = b64u_encode(hashlib.sha256(compact_json(payload)).digest())
    except ValueError:
        digest = sha256_b64u(b"no JavaScript form")
    if tamper:
        digest = sha256_b64u(digest.encode())
    envelope = {
        "algorithm": "Ed25519",
        "envelope_type": "ledger_event",
        "envelope_version": "1",
        "hash_algorithm": "SHA-256",
        "issued_at": FIXED_TS,
        "payload": payload,
        "payload_hash_b64u": digest,
        "signature_b64u": b64u_encode(KEY.sign(signing_bytes(digest))),
        "signer_did": KEY.did,
    }
    if form == 0:
        return jcs(envelope)  # canonical, as producers send it
    if form == 1:
        return json.dumps(envelope).encode()  # \u escapes, spaces, float repr
    return json.dumps(envelope, ensure_ascii=False, indent=1).encode()


@PROPERTY
@given(json_values(ints | floats), st.integers(0, 2), st.booleans(), st.booleans())
@example({"n": 2**53}, 0, False, True)
@example({"f": 0.1, "g": 1e-7, "h": 1e21}, 1, False, True)
@example({"\U0001f600": "\x00"}, 0, False, True)
@example({"e": "\u00e9\u2028"}, 1, True, False)
def test_a_message_gets_the_same_verdict_as_with_the_reference_hash(
    record: Any, form: int, tamper: bool, signature: bool
) -> None:
    try:
        raw = _raw(record, form, tamper)
    except (ValueError, TypeError, UnicodeEncodeError):
        return  # not JSON text at all (a float JCS refuses): nothing to send
    fast = verify_message(raw, signature=signature)
    with reference_hash():
        reference = verify_message(raw, signature=signature)
    assert fast == reference
    if isinstance(fast, Verified):
        assert fast.payload_json == reference.payload_json  # type: ignore[union-attr]
    if tamper:
        assert isinstance(fast, Rejected)


def test_a_tampered_canonical_message_is_refused_with_its_reason_code() -> None:
    raw = _raw({"n": 1}, 0, False)
    assert isinstance(verify_message(raw), Verified)
    tampered = raw.replace(b'"n":1', b'"n":2')
    refused = verify_message(tampered)
    assert isinstance(refused, Rejected)
    assert refused.code is ReasonCode.HASH_MISMATCH
    with reference_hash():
        assert verify_message(tampered) == refused


# --- chain links ------------------------------------------------------------------------

#: mostly the characters of UUIDs and base64url digests, with some that are not
link_texts = st.text(
    st.sampled_from("abcXYZ019-_") | st.sampled_from([" ", '"', "é", "\U0001f600", "\n"]),
    max_size=8,
)


@PROPERTY
@given(
    st.none() | link_texts,
    st.integers(min_value=0, max_value=2**31),
    st.integers(min_value=1, max_value=2**53 - 1),
    link_texts,
    link_texts,
)
@example(None, 0, 1, "0f8fad5b-d9cb-469f-a165-70867728950e", "x" * 43)
@example("a-b_c" * 8, 7, 2**40, "e", "-_")
# not plain text: quotes, non-ASCII, an empty id take the general serialiser
@example('p"q', 0, 1, "e", "h")
@example(None, 0, 1, "é", "h")
@example(None, 0, 1, "", "h")
@example("a b", 0, 1, "c", "d")
@example(None, 0, 1, "a b", "c")
@example("a", 0, 1, "b", "c d")
@example("x" * 201, 0, 1, "e", "h")
def test_a_chain_link_is_the_jcs_hash_of_its_fields(
    prev: str | None, partition: int, seq: int, event_id: str, envelope_sha: str
) -> None:
    fields = {
        "envelope_sha256": envelope_sha,
        "event_id": event_id,
        "ledger_seq": seq,
        "partition": partition,
        "prev": prev,
    }
    assert chain_hash(prev, partition, seq, event_id, envelope_sha) == sha256_b64u(jcs(fields))


# --- projection rows --------------------------------------------------------------------


def _reference_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _reference_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_reference_copy(v) for v in value]
    return value


def _containers(value: Any) -> Iterator[int]:
    if isinstance(value, dict | list):
        yield id(value)
        for item in value.values() if isinstance(value, dict) else value:
            yield from _containers(item)


@PROPERTY
@given(json_values(ints | floats))
@example({"target": "job:1", "revoked_jtis": ["a"], "nested": {"x": [{}]}})
def test_a_row_copy_is_equal_and_shares_no_container(value: Any) -> None:
    copied = copy_json(value)
    assert copied == _reference_copy(value)
    assert json.dumps(copied) == json.dumps(value)  # the same key order
    assert not set(_containers(copied)) & set(_containers(value))
