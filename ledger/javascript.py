"""JavaScript semantics that the formats this ledger speaks inherit.

The clawsig verifier, the Claw Bureau token package and OpenClaw's policy
plugin are JavaScript. Where Python does the same thing differently, hashes
part ways: which characters ``String.prototype.trim`` strips (Python's
``str.strip`` also strips U+001C–U+001F and U+0085, and keeps U+FEFF), and the
order a JavaScript object lists its keys in (array indices first).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = [
    "JS_WHITESPACE",
    "MAX_ARRAY_INDEX",
    "is_array_index",
    "js_keys",
    "js_property_order",
    "js_trim",
]

#: Characters ``String.prototype.trim`` and the regex class ``\s`` match (ECMA-262
#: WhiteSpace and LineTerminator).
JS_WHITESPACE: Final = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)

#: the largest array index (ECMA-262: an integer below 2**32 - 1)
MAX_ARRAY_INDEX: Final = 2**32 - 2


def js_trim(text: str) -> str:
    """``text.trim()``."""
    return text.strip(JS_WHITESPACE)


def is_array_index(key: object) -> bool:
    """Whether a JavaScript object holds property ``key`` as an array index: the
    canonical decimal spelling of an integer from 0 to 2**32 - 2 ("0", "17";
    not "01", "-1", "1.5" or "4294967295")."""
    return (
        isinstance(key, str)
        and key.isascii()
        and key.isdigit()
        and (key == "0" or key[0] != "0")
        and int(key) <= MAX_ARRAY_INDEX
    )


def js_keys(value: Mapping[str, Any]) -> list[str]:
    """Keys in ``Object.keys`` order (ECMA-262 OrdinaryOwnPropertyKeys): array
    indices first, in ascending numeric order, then every other key in insertion
    order."""
    keys = list(value.keys())
    indices = sorted((key for key in keys if is_array_index(key)), key=int)
    if not indices:
        return keys
    return indices + [key for key in keys if not is_array_index(key)]


def js_property_order(value: Any) -> Any:
    """A copy of ``value`` whose objects list their keys as a JavaScript object
    does (:func:`js_keys`), at every depth. ``JSON.stringify`` writes that order,
    so it is what ``JSON.stringify(JSON.parse(text))`` hashes."""
    if isinstance(value, dict):
        return {key: js_property_order(value[key]) for key in js_keys(value)}
    if isinstance(value, list | tuple):
        return [js_property_order(item) for item in value]
    return value
