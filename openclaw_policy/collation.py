"""JavaScript ``String.prototype.localeCompare`` without ICU.

Node compares strings with ICU's root collation (CLDR root, strength tertiary,
alternate non-ignorable). This module implements that comparison in pure
Python for the characters that occur in configuration keys and ids:

* all of ASCII, with the CLDR root order (whitespace, punctuation and symbols,
  digits, then letters; case only decides at the tertiary level, lowercase
  first; C0 controls and DEL are completely ignorable) — exact;
* letters that decompose (NFD) into an ASCII letter plus combining marks
  (``é``, ``Å``, ``ñ`` …): the base letter's primary weight, the marks as
  secondary weights in CLDR order — exact for single and common multiple marks;
* format characters (``Cf``) and other controls: ignorable, as in ICU;
* anything else: after all ASCII letters, by code point of its lowercase form,
  with case as a tertiary difference. This is where this module and ICU can
  disagree (ICU sorts e.g. ``€`` among the symbols and Greek before Cyrillic by
  its own tables); such characters do not occur in OpenClaw config keys.

The tables were generated from Node 20 (ICU 78) and are checked against Node in
``tests/openclaw/test_stable_json.py`` when ``node`` is on ``PATH``.

PyICU was considered and not used: it builds from source against the system
ICU (no wheels on PyPI), which would tie byte-exact hashes to whatever ICU the
machine happens to have.
"""

from __future__ import annotations

import unicodedata
from functools import cmp_to_key, lru_cache
from typing import Final

__all__ = ["collation_key", "locale_compare", "locale_sort_key"]

# CLDR root primary order of the non-ignorable ASCII characters; letters appear
# once, as lowercase (the uppercase letter shares its primary weight).
_ASCII_PRIMARY_ORDER: Final = (
    "\t\n\v\f\r _-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$0123456789abcdefghijklmnopqrstuvwxyz"
)
_ASCII_IGNORABLE: Final = frozenset(chr(c) for c in (*range(0x00, 0x09), *range(0x0E, 0x20), 0x7F))
_PRIMARY: Final[dict[str, int]] = {ch: i + 1 for i, ch in enumerate(_ASCII_PRIMARY_ORDER)}
for _ch in "abcdefghijklmnopqrstuvwxyz":
    _PRIMARY[_ch.upper()] = _PRIMARY[_ch]

# Combining marks U+0300..U+0362 in ascending secondary weight; marks in one
# group are secondary-equal. U+034F is completely ignorable; U+0363..U+036F
# carry primary weights and fall back to the generic rule.
_MARK_GROUPS: Final = (
    "332",
    "313 343",
    "314",
    "301 341",
    "300 340",
    "306",
    "302",
    "30c",
    "30a",
    "342",
    "308",
    "344",
    "30b",
    "303",
    "307",
    "338",
    "327",
    "328",
    "304",
    "30d 30e 312 315 31a 33d 33e 33f 346 34a 34b 34c 350 351 352 357 35b 35d 35e",
    "316 317 318 319 31c 31d 31e 31f 320 329 32a 32b 32c 32f 333 33a 33b 33c 347 348 349"
    " 34d 34e 353 354 355 356 359 35a 35c 35f 362",
    "336 337",
    "335",
    "305",
    "309",
    "30f",
    "310",
    "311",
    "31b",
    "321",
    "322",
    "323",
    "324",
    "325",
    "326",
    "32d",
    "32e",
    "330",
    "331",
    "334",
    "339",
    "345",
    "358",
    "360",
    "361",
)
_SECONDARY_COMMON: Final = 1
_MARK_SECONDARY: Final[dict[str, int]] = {
    chr(int(code, 16)): index + 2
    for index, group in enumerate(_MARK_GROUPS)
    for code in group.split()
}
_IGNORABLE_MARKS: Final = frozenset({"\u034f"})

_TERTIARY_LOWER: Final = 1
_TERTIARY_UPPER: Final = 2
_FALLBACK_BASE: Final = 1000


_Element = tuple[int, int, int]


def _ascii_elements(ch: str) -> list[_Element]:
    if ch in _ASCII_IGNORABLE:
        return []
    tertiary = _TERTIARY_UPPER if "A" <= ch <= "Z" else _TERTIARY_LOWER
    return [(_PRIMARY[ch], _SECONDARY_COMMON, tertiary)]


@lru_cache(maxsize=4096)
def _elements(ch: str) -> tuple[_Element, ...]:
    if ch < "\x80":
        return tuple(_ascii_elements(ch))
    if ch in _IGNORABLE_MARKS:
        return ()
    if ch in _MARK_SECONDARY:
        return ((0, _MARK_SECONDARY[ch], _TERTIARY_LOWER),)
    category = unicodedata.category(ch)
    if category == "Cf" or (category == "Cc" and ch not in "\x85"):
        return ()
    decomposed = unicodedata.normalize("NFD", ch)
    if len(decomposed) > 1 and decomposed[0] < "\x80" and decomposed[0].isalpha():
        marks = decomposed[1:]
        if all(mark in _MARK_SECONDARY for mark in marks):
            base = _ascii_elements(decomposed[0])
            return tuple(base) + tuple(
                (0, _MARK_SECONDARY[mark], _TERTIARY_LOWER) for mark in marks
            )
    lower = ch.lower()
    tertiary = _TERTIARY_UPPER if lower != ch and len(lower) == 1 else _TERTIARY_LOWER
    primary_char = lower if len(lower) == 1 else ch
    return ((_FALLBACK_BASE + ord(primary_char), _SECONDARY_COMMON, tertiary),)


def collation_key(text: str) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """A sort key whose order is ``localeCompare`` order (equal keys compare as 0)."""
    primaries: list[int] = []
    secondaries: list[int] = []
    tertiaries: list[int] = []
    for ch in text:
        for primary, secondary, tertiary in _elements(ch):
            if primary:
                primaries.append(primary)
            secondaries.append(secondary)
            tertiaries.append(tertiary)
    return tuple(primaries), tuple(secondaries), tuple(tertiaries)


def locale_compare(a: str, b: str) -> int:
    """``a.localeCompare(b)`` normalised to -1, 0 or 1."""
    if a == b:
        return 0
    ka, kb = collation_key(a), collation_key(b)
    return (ka > kb) - (ka < kb)


#: ``sorted(items, key=locale_sort_key)`` orders strings like
#: ``toSorted((a, b) => a.localeCompare(b))``.
locale_sort_key = cmp_to_key(locale_compare)
