"""stableJson: localeCompare key order and JSON.stringify scalars (formats.md §8)."""

from __future__ import annotations

import json
import random
import shutil
import subprocess

import pytest

from openclaw_policy.collation import locale_compare, locale_sort_key
from openclaw_policy.jsutil import UNDEFINED, js_keys
from openclaw_policy.stable_json import (
    js_number,
    js_string,
    js_stringify,
    sha256_tagged,
    stable_json,
)


def test_formats_md_key_order_example() -> None:
    keys = ["Zeta", "alpha", "allowSecurity", "allowlist", "ab", "a-b", "a_b", "_x"]
    assert sorted(keys, key=locale_sort_key) == [
        "_x",
        "a_b",
        "a-b",
        "ab",
        "allowlist",
        "allowSecurity",
        "alpha",
        "Zeta",
    ]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        # pairs where localeCompare order is the reverse of code-point order
        ("alpha", "Zeta"),  # case-insensitive first: Z (0x5A) < a (0x61) by code point
        ("allowlist", "allowSecurity"),  # 'l' < 's' primary; 'S' (0x53) < 'l' by code point
        ("_x", "Ab"),  # punctuation before letters; '_' (0x5F) > 'A' (0x41) by code point
        ("a_b", "a-b"),  # CLDR puts '_' before '-'; '-' (0x2D) < '_' by code point
        ("a-b", "ab"),  # '-' is a primary weight before letters
        ("~", "0"),  # symbols before digits; '~' is 0x7E
        ("$", "1"),
        ("9", "a"),
        ("a", "A"),  # lowercase first at the tertiary level; 'A' < 'a' by code point
        ("ab", "Ab"),
        ("e", "é"),
        ("é", "f"),  # accents are secondary: é sorts with e, before f ('é' is 0xE9)
        ("channels", "gatewayExposure"),
        ("modelProviders", "modelRefs"),
    ],
)
def test_locale_compare_orders_unlike_code_points(first: str, second: str) -> None:
    assert locale_compare(first, second) == -1
    assert locale_compare(second, first) == 1


def test_locale_compare_equal_and_ignorable() -> None:
    assert locale_compare("abc", "abc") == 0
    assert locale_compare("a\x01b", "ab") == 0  # C0 controls are completely ignorable
    assert locale_compare("", "a") == -1


def test_sorting_is_stable_for_equal_keys() -> None:
    assert stable_json({"a\x01b": 1, "ab": 2}) == '{"a\\u0001b":1,"ab":2}'
    assert stable_json({"ab": 2, "a\x01b": 1}) == '{"ab":2,"a\\u0001b":1}'


def test_array_index_keys_come_first_like_object_entries() -> None:
    assert js_keys({"b": 1, "10": 2, "2": 3, "01": 4}) == ["2", "10", "b", "01"]


def test_stable_json_shapes() -> None:
    value = {"b": [3, {"z": None, "y": True}], "a": "x", "Z": False, "_": 1.0}
    assert stable_json(value) == '{"_":1,"a":"x","b":[3,{"y":true,"z":null}],"Z":false}'
    assert (
        stable_json({"policyHash": UNDEFINED, "ok": False}) == '{"ok":false,"policyHash":undefined}'
    )
    assert js_stringify({"b": 1, "a": UNDEFINED, "c": [UNDEFINED]}) == '{"b":1,"c":[null]}'


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (1.0, "1"),
        (-0.0, "0"),
        (0.1, "0.1"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (123456789012345678901234, "1.2345678901234569e+23"),
        (2**53 + 1, "9007199254740992"),
        (1e-6, "0.000001"),
        (1e-7, "1e-7"),
        (1.5e-7, "1.5e-7"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (-12.5, "-12.5"),
        (float("nan"), "null"),
        (float("inf"), "null"),
    ],
)
def test_numbers_as_json_stringify(number: float, text: str) -> None:
    assert js_number(number) == text


def test_strings_as_json_stringify() -> None:
    assert js_string('a"b\\c') == '"a\\"b\\\\c"'
    assert js_string("\b\f\n\r\t\x00\x1f\x7f") == '"\\b\\f\\n\\r\\t\\u0000\\u001f\x7f"'
    assert js_string("é😀\u2028") == '"é😀\u2028"'
    assert js_string("\ud800") == '"\\ud800"'  # lone surrogate, ES2019 well-formed


def test_sha256_tagged() -> None:
    assert sha256_tagged("[]") == (
        "sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945"
    )


_NODE = shutil.which("node")


@pytest.mark.skipif(_NODE is None, reason="node is not installed")
def test_locale_compare_matches_node() -> None:
    rng = random.Random(20260510)
    alphabet = [chr(c) for c in range(0x20, 0x7F)] + list("\x01\x7f\téèÉÅñüÜçÖâ\u0301\u200b")
    short = list("aAbB-_.:/ 0123")
    pairs = []
    for i in range(3000):
        chars = alphabet if i % 2 else short
        a = "".join(rng.choice(chars) for _ in range(rng.randint(0, 6)))
        b = "".join(rng.choice(chars) for _ in range(rng.randint(0, 6)))
        pairs.append([a, b])
    script = (
        "let d='';process.stdin.on('data',c=>d+=c).on('end',()=>{"
        "const p=JSON.parse(d);"
        "console.log(JSON.stringify(p.map(([a,b])=>Math.sign(a.localeCompare(b)))))})"
    )
    assert _NODE is not None
    out = subprocess.run(
        [_NODE, "-e", script], input=json.dumps(pairs), capture_output=True, text=True, check=True
    )
    expected = json.loads(out.stdout)
    mismatches = [
        (a, b, want)
        for (a, b), want in zip(pairs, expected, strict=True)
        if locale_compare(a, b) != want
    ]
    assert mismatches == []


@pytest.mark.skipif(_NODE is None, reason="node is not installed")
def test_stable_json_matches_node() -> None:
    value = {
        "Zeta": [1.0, 1e21, 1e-7, -0.0, 'é\n"', None, True],
        "alpha": {"b": {"_x": 1, "a-b": 2, "a_b": 3}, "10": 0, "2": 1, "A": 2, "a": 3},
        "allowSecurity": "x",
        "allowlist": [],
        "emoji😀": "\u2028",
    }
    script = (
        "let d='';process.stdin.on('data',c=>d+=c).on('end',()=>{const v=JSON.parse(d);"
        "const isR=x=>typeof x==='object'&&x!==null&&!Array.isArray(x);"
        "const s=x=>Array.isArray(x)?`[${x.map(s).join(',')}]`:isR(x)?"
        "`{${Object.entries(x).toSorted(([a],[b])=>a.localeCompare(b))"
        ".map(([k,c])=>`${JSON.stringify(k)}:${s(c)}`).join(',')}}`:JSON.stringify(x);"
        "process.stdout.write(s(v))})"
    )
    assert _NODE is not None
    out = subprocess.run(
        [_NODE, "-e", script],
        input=json.dumps(value),
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=True,
    )
    assert stable_json(value) == out.stdout
