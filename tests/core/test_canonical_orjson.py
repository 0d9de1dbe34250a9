"""``compact_json(..., plain_numbers=True)`` takes ``orjson``; it must write the
standard library's bytes (what the clawsig verifier hashes) for every value it
accepts, and hand everything else to the reference path.

The reference here is ``json.dumps`` with the options compact_json gives it,
which is the path ``plain_numbers=False`` takes for float-free values, of the
value in JavaScript's key order (array-index keys first: one-character keys
"0" to "9" are among the code points below).
"""

from __future__ import annotations

import dataclasses
import json
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import example, given

from ledger.canonical import (
    MAX_SAFE_INTEGER,
    compact_json,
    parse_json_tracking,
)
from ledger.javascript import js_property_order

from ._canonical_support import PROPERTY, json_values, safe_ints, with_surrogates


def reference(value: Any) -> bytes:
    ordered = js_property_order(value)
    return json.dumps(ordered, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def outcome(encode: Any, value: Any) -> tuple[str, Any]:
    try:
        return "bytes", encode(value)
    except (TypeError, ValueError, UnicodeEncodeError) as exc:
        return "error", type(exc).__name__


def test_every_code_point_is_written_as_the_standard_library_writes_it() -> None:
    # strings, keys and their neighbours: escapes (\b \f \n \r \t, \u00xx), DEL,
    # U+2028/2029 and everything astral are where encoders part ways when they do
    for start in range(0, 0x110000, 0x800):
        if 0xD800 <= start < 0xE000:
            continue  # lone surrogates: below
        chars = [chr(c) for c in range(start, start + 0x800)]
        value = {c: ["a" + c + "z", c] for c in chars}
        assert compact_json(value, plain_numbers=True) == reference(value), hex(start)


@pytest.mark.parametrize(
    "value",
    [
        MAX_SAFE_INTEGER,
        -MAX_SAFE_INTEGER,
        0,
        True,
        False,
        None,
        [],
        {},
        [[], {}, [{}]],
        {"b": 1, "a": {"d": [2, 3], "c": None}},  # document order, not sorted
        (1, "two"),
    ],
)
def test_plain_values(value: Any) -> None:
    assert compact_json(value, plain_numbers=True) == reference(value)


@pytest.mark.parametrize(
    "value",
    [
        MAX_SAFE_INTEGER + 1,  # orjson refuses beyond 2**53: json.dumps writes it, as before
        -(2**64),
        "\ud800",  # a lone surrogate: UnicodeEncodeError either way
        {"k": "\udfff"},
        {1: "a non-string key"},
        OrderedDict(b=1, a=2),
        type("Text", (str,), {})("a str subclass"),
        type("Number", (int,), {})(7),
        datetime(2026, 1, 1, tzinfo=UTC),  # orjson would write it; json.dumps refuses
    ],
)
def test_what_orjson_would_treat_otherwise_takes_the_reference_path(value: Any) -> None:
    assert outcome(lambda v: compact_json(v, plain_numbers=True), value) == outcome(
        reference, value
    )


def test_a_dataclass_is_refused_as_json_dumps_refuses_it() -> None:
    @dataclasses.dataclass
    class Point:
        x: int

    assert outcome(lambda v: compact_json(v, plain_numbers=True), Point(1)) == (
        "error",
        "TypeError",
    )


def test_deep_nesting_beyond_orjson_s_limit_is_still_written() -> None:
    value: Any = []
    for _ in range(300):
        value = [value]
    assert compact_json(value, plain_numbers=True) == reference(value)


@PROPERTY
@given(json_values(safe_ints, with_surrogates))
@example({"\u2028": ["\x00", "\x7f", "\U0010ffff"]})
def test_generated_float_free_values(value: Any) -> None:
    assert outcome(lambda v: compact_json(v, plain_numbers=True), value) == outcome(
        reference, value
    )


@PROPERTY
@given(json_values(safe_ints, with_surrogates))
def test_parsed_documents_hash_as_they_did(value: Any) -> None:
    raw = reference(value) if outcome(reference, value)[0] == "bytes" else b"null"
    parsed, plain = parse_json_tracking(raw)
    assert plain
    assert compact_json(parsed, plain_numbers=True) == compact_json(parsed) == raw
