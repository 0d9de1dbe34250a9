"""Encodings (formats.md §1) and canonical JSON: b64u, RFC 8785 JCS, compact JSON, strict parse."""

from __future__ import annotations

import hashlib
import json
import math
import random
import struct

import pytest

from ledger.canonical import compact_json, jcs, jcs_hash_b64u, parse_json_strict
from ledger.encoding import B64U_SHA256_RE, b64u_decode, b64u_encode, sha256_b64u, sha256_hex

from ._helpers import EXAMPLES

# --- b64u ------------------------------------------------------------------------------

#: RFC 4648 §10 test vectors, base64url form without the padding
RFC4648_VECTORS = [
    (b"", ""),
    (b"f", "Zg"),
    (b"fo", "Zm8"),
    (b"foo", "Zm9v"),
    (b"foob", "Zm9vYg"),
    (b"fooba", "Zm9vYmE"),
    (b"foobar", "Zm9vYmFy"),
]


@pytest.mark.parametrize(("data", "text"), RFC4648_VECTORS)
def test_b64u_rfc4648_vectors(data: bytes, text: str) -> None:
    assert b64u_encode(data) == text
    assert b64u_decode(text) == data


def test_b64u_uses_url_safe_alphabet() -> None:
    # 0xfb 0xff encodes to "+/8=" in standard base64
    assert b64u_encode(b"\xfb\xff") == "-_8"
    assert b64u_decode("-_8") == b"\xfb\xff"


def test_b64u_round_trip_random_bytes() -> None:
    rng = random.Random(8032)
    for length in range(0, 130):
        data = rng.randbytes(length)
        text = b64u_encode(data)
        assert "=" not in text
        assert len(text) == math.ceil(length * 4 / 3)
        assert b64u_decode(text) == data


@pytest.mark.parametrize(
    "text",
    [
        "Zg==",  # padding
        "Zm8=",  # padding
        "Zg=",
        "+/8",  # standard alphabet
        "Zm9v/A",
        "Zm 9v",  # whitespace inside
        "Zm9v\n",  # trailing newline
        " Zm9v",
        "Zm9vY",  # length % 4 == 1 is never valid
        "Z",
        "Zm9v!",
        "Zm9vé",
    ],
)
def test_b64u_decode_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        b64u_decode(text)


def test_sha256_digests() -> None:
    assert sha256_hex(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert sha256_b64u(b"") == "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
    digest = sha256_b64u(b"abc")
    assert len(digest) == 43
    assert B64U_SHA256_RE.match(digest)
    assert b64u_decode(digest) == hashlib.sha256(b"abc").digest()


@pytest.mark.parametrize("text", ["A" * 42, "A" * 44, "A" * 42 + "=", "A" * 42 + "+"])
def test_b64u_sha256_re_refuses_wrong_shapes(text: str) -> None:
    assert B64U_SHA256_RE.match(text) is None


def test_b64u_sha256_re_refuses_trailing_newline() -> None:
    assert B64U_SHA256_RE.match("A" * 43 + "\n") is None


# --- JCS (RFC 8785) ---------------------------------------------------------------------


def test_jcs_rfc8785_sorting_by_utf16_code_units() -> None:
    # RFC 8785 §3.2.3: the emoji U+1F600 is the surrogate pair D83D DE00 in UTF-16,
    # so it sorts *before* U+FB33 although its code point is larger.
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    expected = (
        '{"\\r":"Carriage Return","1":"One","\u0080":"Control",'
        '"\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign",'
        '"\U0001f600":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}'
    )
    assert jcs(value) == expected.encode("utf-8")
    # by code point the order would differ: the test really exercises UTF-16 ordering
    assert sorted(value)[-1] == "\U0001f600"


def test_jcs_rfc8785_section_3_2_2_example() -> None:
    source = (
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert jcs(json.loads(source)) == expected.encode("utf-8")


def _f64(bits: str) -> float:
    (value,) = struct.unpack(">d", bytes.fromhex(bits))
    return float(value)


#: RFC 8785 Appendix B: IEEE 754 bit patterns and their ES6 serialisation
RFC8785_NUMBERS = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),  # -0
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


@pytest.mark.parametrize(("bits", "text"), RFC8785_NUMBERS)
def test_jcs_rfc8785_appendix_b_numbers(bits: str, text: str) -> None:
    assert jcs(_f64(bits)) == text.encode("ascii")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e-7, "1e-7"),
        (1e-6, "0.000001"),
        (0.00001, "0.00001"),
        (-0.0, "0"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1.0, "1"),
        (4.50, "4.5"),
        (-1.5, "-1.5"),
        (123, "123"),
        (-0, "0"),
    ],
)
def test_jcs_es6_number_forms(value: float, text: str) -> None:
    assert jcs(value) == text.encode("ascii")
    assert jcs({"n": value}) == b'{"n":' + text.encode("ascii") + b"}"


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_jcs_refuses_non_finite_numbers(value: float) -> None:
    with pytest.raises(ValueError):
        jcs(value)


def test_jcs_no_whitespace_nested_sorting_and_arrays_in_order() -> None:
    value = {"b": [3, 1, {"z": 1, "a": None}], "a": {"y": True, "x": "é"}}
    assert jcs(value) == '{"a":{"x":"é","y":true},"b":[3,1,{"a":null,"z":1}]}'.encode()


def test_jcs_wpc_example_from_examples_json() -> None:
    example = EXAMPLES["wpc_example"]
    assert jcs(example["payload"]).decode("utf-8") == example["jcs"]
    assert jcs_hash_b64u(example["payload"]) == example["policy_hash_b64u"]
    assert len(example["policy_hash_b64u"]) == 43
    # hashing the pretty document or a document-order compact form would not give it
    assert sha256_b64u(compact_json(example["payload"])) != example["policy_hash_b64u"]


def test_jcs_is_independent_of_input_key_order() -> None:
    rng = random.Random(1)
    base = {f"k{i}": i for i in range(20)}
    expected = jcs(base)
    for _ in range(20):
        items = list(base.items())
        rng.shuffle(items)
        assert jcs(dict(items)) == expected


# --- compact JSON (JSON.stringify, document order) -------------------------------------


def test_compact_json_keeps_document_order() -> None:
    value = {"b": 1, "a": {"d": 2, "c": [3, {"z": 0, "y": 1}]}}
    assert compact_json(value) == b'{"b":1,"a":{"d":2,"c":[3,{"z":0,"y":1}]}}'
    assert compact_json(value) != jcs(value)


def test_compact_json_utf8_and_escapes_like_json_stringify() -> None:
    value = {"é": "€\U0001f600", "ctl": '\n\t\u0001"\\/'}
    expected = '{"é":"€\U0001f600","ctl":"\\n\\t\\u0001\\"\\\\/"}'
    assert compact_json(value) == expected.encode("utf-8")


def test_compact_json_equals_jcs_for_a_jcs_ordered_document() -> None:
    value = json.loads(jcs(EXAMPLES["wpc_example"]["payload"]))
    assert compact_json(value) == jcs(value)


@pytest.mark.parametrize("value", [math.nan, math.inf, {"x": -math.inf}])
def test_compact_json_refuses_non_finite(value: object) -> None:
    with pytest.raises(ValueError):
        compact_json(value)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1e-7, "1e-7"),
        (0.00001, "0.00001"),
        (1.0, "1"),
        (-0.0, "0"),
        (1e20, "100000000000000000000"),
    ],
)
def test_compact_json_numbers_like_json_stringify(value: float, text: str) -> None:
    assert compact_json(value) == text.encode("ascii")


# --- strict parsing ---------------------------------------------------------------------


def test_parse_json_strict_keeps_document_order() -> None:
    parsed = parse_json_strict(b'{"z":1,"a":{"y":2,"b":3}}')
    assert list(parsed) == ["z", "a"]
    assert list(parsed["a"]) == ["y", "b"]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a":1,"a":1}',
        b'{"a":1,"b":2,"a":3}',
        b'{"x":{"k":1,"k":2}}',
        b'[{"k":1},{"k":1,"k":1}]',
    ],
)
def test_parse_json_strict_refuses_duplicate_keys(raw: bytes) -> None:
    with pytest.raises(ValueError, match="duplicate key"):
        parse_json_strict(raw)


@pytest.mark.parametrize("raw", [b"NaN", b"Infinity", b"-Infinity", b'{"a":NaN}', b"[1,Infinity]"])
def test_parse_json_strict_refuses_non_finite_constants(raw: bytes) -> None:
    with pytest.raises(ValueError, match="invalid JSON constant"):
        parse_json_strict(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a":"\xff"}',
        b'{"a":"\xc3"}',  # truncated sequence
        b'{"a":"\xc0\xaf"}',  # overlong "/"
        b'{"a":"\xed\xa0\x80"}',  # UTF-8 encoded surrogate
    ],
)
def test_parse_json_strict_refuses_invalid_utf8(raw: bytes) -> None:
    with pytest.raises(UnicodeDecodeError):
        parse_json_strict(raw)


@pytest.mark.parametrize("raw", [b"", b"{", b'{"a":1,}', b"[1 2]", b"{'a':1}", b'{"a":"\x01"}'])
def test_parse_json_strict_refuses_invalid_json(raw: bytes) -> None:
    with pytest.raises(ValueError):
        parse_json_strict(raw)


@pytest.mark.parametrize("raw", [b"1e400", b'{"a":-1e400}'])
def test_parse_json_strict_refuses_overflow_to_infinity(raw: bytes) -> None:
    with pytest.raises(ValueError):
        parse_json_strict(raw)
