"""The orjson fast path of the strict parsers gives what the strict decoder gives.

``parse_json_tracking`` and ``parse_json_strict`` first let orjson parse the
bytes and keep its value only when it writes them back byte for byte, holds no
float and no integer beyond 2**53. Every value and every flag must then be
the strict decoder's, whatever the bytes: each case runs both ways (the fast
path turned off by patching it) and compares.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import ledger.canonical
from ledger.canonical import parse_json_strict, parse_json_tracking

from ._canonical_support import PROPERTY, any_ints, json_values, with_surrogates

#: generated values with floats and integers of any size, and strings with lone surrogates
values = json_values(any_ints, with_surrogates, st.floats(allow_nan=False, allow_infinity=False))


def _spellings(value: Any) -> list[bytes]:
    """The same value as compact JSON, spaced, and escaped to ASCII."""
    out = []
    for separators, ensure_ascii in (
        ((",", ":"), False),
        ((", ", ": "), False),
        ((",", ":"), True),
    ):
        try:
            text = json.dumps(value, separators=separators, ensure_ascii=ensure_ascii)
            out.append(text.encode("utf-8", "surrogatepass"))
        except (ValueError, UnicodeEncodeError):
            continue
    return out


def _result(parse: Callable[[bytes], Any], raw: bytes) -> tuple[str, str]:
    """What ``parse(raw)`` gives, with types (``repr`` tells 1 from 1.0), or what it raised."""
    try:
        return "value", repr(parse(raw))
    except Exception as exc:
        return "raised", type(exc).__name__


def _both_ways(
    monkeypatch: pytest.MonkeyPatch, parse: Callable[[bytes], Any], raw: bytes
) -> tuple[tuple[str, str], tuple[str, str]]:
    fast = _result(parse, raw)
    with monkeypatch.context() as patched:
        patched.setattr(ledger.canonical, "_parse_compact", lambda data: None)
        strict = _result(parse, raw)
    return fast, strict


@PROPERTY
@given(values)
@example({"a": 1.0, "b": [2**53, -(2**53)]})
@example({"x": [9007199254740991, -9007199254740991], "y": "\u2028\x7f/"})
def test_generated_values_parse_as_the_strict_decoder_parses_them(value: Any) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        for raw in _spellings(value):
            for parse in (parse_json_tracking, parse_json_strict):
                fast, strict = _both_ways(monkeypatch, parse, raw)
                assert fast == strict, raw


@pytest.mark.parametrize(
    ("raw", "outcome"),
    [
        (b'{"a":1,"a":2}', ("raised", "ValueError")),  # a duplicate key orjson would keep
        (b'{"a":{"b":1,"b":1}}', ("raised", "ValueError")),
        (b'{"a":1.0}', ("value", "({'a': 1.0}, False)")),  # a float: not plain
        (b'{"a":9007199254740992}', ("value", "({'a': 9007199254740992}, False)")),
        (b'{"a":9007199254740991}', ("value", "({'a': 9007199254740991}, True)")),
        (b'{"a":18446744073709551616}', ("value", "({'a': 18446744073709551616}, False)")),
        (b'{"a":"\\ud800"}', ("value", "({'a': '\\ud800'}, True)")),  # orjson refuses it
        (b'{"a":"\\/"}', ("value", "({'a': '/'}, True)")),
        (b'{"a":-0}', ("value", "({'a': 0}, True)")),
        (b'{"a": 1}', ("value", "({'a': 1}, True)")),
        (b'{"a":NaN}', ("raised", "ValueError")),
        (b'{"a":"\xff"}', ("raised", "UnicodeDecodeError")),
        (b"null", ("value", "(None, True)")),
    ],
)
def test_what_the_fast_path_must_not_take(
    monkeypatch: pytest.MonkeyPatch, raw: bytes, outcome: tuple[str, str]
) -> None:
    fast, strict = _both_ways(monkeypatch, parse_json_tracking, raw)
    assert fast == strict == outcome


def test_a_compact_envelope_takes_the_fast_path() -> None:
    raw = b'{"payload":{"body":{"n":[1,2,3]},"event_id":"e"},"signature_b64u":"AA"}'
    assert ledger.canonical._parse_compact(raw) == json.loads(raw)
    assert ledger.canonical._parse_compact(raw + b" ") is None
