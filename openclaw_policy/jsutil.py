"""Small helpers that reproduce JavaScript semantics the upstream code relies on.

OpenClaw's policy plugin is TypeScript; a faithful port has to agree with it on
details Python does differently: what ``String.prototype.trim`` strips, the
order ``Object.entries`` visits keys in, and ``undefined`` as a value distinct
from ``null``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final, TypeGuard

from ledger.javascript import JS_WHITESPACE, js_keys, js_trim

__all__ = [
    "JS_WHITESPACE",
    "UNDEFINED",
    "Undefined",
    "is_record",
    "join_surrogates",
    "js_entries",
    "js_keys",
    "js_lower",
    "js_trim",
    "read_boolean",
    "read_boolean_path",
    "read_string",
    "read_string_array",
]


class Undefined:
    """JavaScript ``undefined``: serialises as the bare word inside ``stableJson``."""

    _instance: Undefined | None = None

    def __new__(cls) -> Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "undefined"

    def __bool__(self) -> bool:
        return False


UNDEFINED: Final = Undefined()


def is_record(value: object) -> TypeGuard[dict[str, Any]]:
    """``typeof v === "object" && v !== null && !Array.isArray(v)`` for parsed JSON."""
    return isinstance(value, dict)


def js_lower(text: str) -> str:
    return text.lower()


def js_entries(value: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    for key in js_keys(value):
        yield key, value[key]


def read_string(value: object) -> str | None:
    """``normalizeOptionalString``: the trimmed string, or ``None`` when empty or not a string."""
    if not isinstance(value, str):
        return None
    trimmed = js_trim(value)
    return trimmed if trimmed else None


def read_boolean(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def read_boolean_path(value: object, path: tuple[str, ...] | list[str]) -> bool | None:
    current = value
    for part in path:
        if not is_record(current):
            return None
        current = current.get(part, UNDEFINED)
    return current if isinstance(current, bool) else None


def read_string_array(value: object) -> list[str]:
    """Non-blank strings of an array, untrimmed (upstream ``readStringArray``)."""
    if not isinstance(value, list):
        return []
    return [entry for entry in value if isinstance(entry, str) and js_trim(entry) != ""]


def _join(text: str) -> str:
    if not any("\ud800" <= ch <= "\udfff" for ch in text):
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if "\ud800" <= ch <= "\udbff" and i + 1 < len(text) and "\udc00" <= text[i + 1] <= "\udfff":
            high, low = ord(ch), ord(text[i + 1])
            out.append(chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def join_surrogates(value: Any) -> Any:
    """Combine ``\\ud83d\\ude00``-style escape pairs into one character, as a JS string holds them.

    The ``json5`` package leaves each escaped UTF-16 unit as its own code point;
    JavaScript strings are UTF-16, so an escaped pair *is* the astral character.
    Lone surrogates stay lone (``JSON.stringify`` escapes them).
    """
    if isinstance(value, str):
        return _join(value)
    if isinstance(value, list):
        return [join_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_join(k): join_surrogates(v) for k, v in value.items()}
    return value
