"""``stableJson`` and ``JSON.stringify`` exactly as OpenClaw's policy plugin computes them.

docs/formats.md §8: arrays keep their order, object keys are sorted with
``localeCompare`` (see :mod:`openclaw_policy.collation`), there is no
whitespace, and strings and numbers are written the way ``JSON.stringify``
writes them. ``undefined`` inside an object is written as the bare word
``undefined`` — the upstream function builds the text with a template string,
and the attestation input of a missing policy has ``policyHash: undefined``.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any, Final

from ledger.encoding import sha256_hex
from openclaw_policy.collation import locale_sort_key
from openclaw_policy.jsutil import Undefined, js_keys

__all__ = ["JSON_ESCAPES", "js_number", "js_string", "js_stringify", "sha256_tagged", "stable_json"]

#: The short escapes of ``JSON.stringify``.
JSON_ESCAPES: Final = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}


def js_string(text: str) -> str:
    """``JSON.stringify(text)`` (ES2019 well-formed: lone surrogates become ``\\udxxx``)."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in JSON_ESCAPES:
            out.append(JSON_ESCAPES[ch])
        elif code < 0x20 or 0xD800 <= code <= 0xDFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def js_number(value: int | float) -> str:
    """``JSON.stringify(number)``: ES ``Number::toString``, ``null`` for NaN and infinities.

    Python ints are first rounded to the nearest double, as a JavaScript parser
    would have stored them.
    """
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        return "null"
    if number == 0:
        return "0"
    sign = "-" if number < 0 else ""
    sign_bit, digit_tuple, exponent = Decimal(repr(abs(number))).as_tuple()
    del sign_bit
    digits = "".join(str(d) for d in digit_tuple).rstrip("0")
    exponent = int(exponent) + (len(digit_tuple) - len(digits))
    k = len(digits)
    n = exponent + k  # value = 0.digits × 10^n
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = f"{digits[:n]}.{digits[n:]}"
    elif -6 < n <= 0:
        body = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        e_text = f"e+{e}" if e >= 0 else f"e-{-e}"
        body = (digits if k == 1 else f"{digits[0]}.{digits[1:]}") + e_text
    return sign + body


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return js_string(value)
    if isinstance(value, int | float):
        return js_number(value)
    if isinstance(value, Undefined):
        return "undefined"
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def stable_json(value: Any) -> str:
    """The upstream ``stableJson``: keys sorted by ``localeCompare``, no whitespace."""
    if isinstance(value, list | tuple):
        return "[" + ",".join(stable_json(item) for item in value) + "]"
    if isinstance(value, dict):
        keys = sorted(js_keys(value), key=locale_sort_key)
        return "{" + ",".join(f"{js_string(k)}:{stable_json(value[k])}" for k in keys) + "}"
    return _scalar(value)


def js_stringify(value: Any) -> str:
    """``JSON.stringify(value)`` in document order; ``undefined`` members are left out."""
    if isinstance(value, list | tuple):
        return (
            "["
            + ",".join(
                "null" if isinstance(item, Undefined) else js_stringify(item) for item in value
            )
            + "]"
        )
    if isinstance(value, dict):
        parts = [
            f"{js_string(k)}:{js_stringify(value[k])}"
            for k in js_keys(value)
            if not isinstance(value[k], Undefined)
        ]
        return "{" + ",".join(parts) + "}"
    return _scalar(value)


def sha256_tagged(text: str) -> str:
    """``"sha256:" + hex(SHA-256(UTF-8(text)))``."""
    return "sha256:" + sha256_hex(text.encode("utf-8"))
