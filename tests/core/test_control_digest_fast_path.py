"""The digest's row encoding: the stdlib fast path writes the very bytes of the reference walk."""

from __future__ import annotations

import hashlib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.control_digest import canonical_row, reference_canonical_row, row_hash

_scalars = (
    st.text()
    | st.booleans()
    | st.none()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
)
_values: st.SearchStrategy[Any] = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400)
@given(st.dictionaries(st.text(), _values, max_size=8))
def test_fast_path_and_reference_walk_write_the_same_bytes(row: dict[str, Any]) -> None:
    kept = {k: v for k, v in row.items() if v is not None and k != "control_version"}
    assert canonical_row(row) == reference_canonical_row(kept)


def test_floats_and_large_integers_take_the_reference_walk() -> None:
    # 2.0 is the integer 2 after a jsonb round trip; 2**60 is the double it rounds to
    assert canonical_row({"a": 2.0}) == b'{"a":2}'
    assert canonical_row({"a": 2**60}) == reference_canonical_row({"a": 2**60})
    assert canonical_row({"b": "é", "a": [True, None, 1]}) == b'{"a":[true,null,1],"b":"\\u00e9"}'


def test_characters_orjson_writes_otherwise_are_escaped_as_the_stdlib_does() -> None:
    # DEL and everything beyond ASCII: ensure_ascii escapes them, orjson does not
    assert canonical_row({"a": "\x7f"}) == b'{"a":"\\u007f"}'
    assert canonical_row({"\u00e9": 1, "e": "\U0001f600"}) == b'{"e":"\\ud83d\\ude00","\\u00e9":1}'
    assert canonical_row({"s": "\ud800"}) == b'{"s":"\\ud800"}'  # orjson refuses it
    assert canonical_row({"z": "\n\x00\x1f", "a": ["\\", '"']}) == (
        b'{"a":["\\\\","\\""],"z":"\\n\\u0000\\u001f"}'
    )


@settings(max_examples=100)
@given(
    st.sampled_from(["keys", "tokens", "halts"]), st.dictionaries(st.text(), _values, max_size=6)
)
def test_a_row_hash_is_sha256_of_table_nul_row(table: str, row: dict[str, Any]) -> None:
    # the formula of the module docstring (and of ADR 0014), whatever state
    # the cached prefix of the table's hash is in after earlier rows
    expected = hashlib.sha256(table.encode("ascii") + b"\x00" + canonical_row(row)).digest()
    assert row_hash(table, row) == int.from_bytes(expected, "big")
    assert row_hash(table, row) == int.from_bytes(expected, "big")
