"""Canonical JSON.

* :func:`jcs` is RFC 8785 (the ``rfc8785`` package): what we sign and hash.
* :func:`jcs_ordered` is the same bytes, made by the standard library's C
  encoder for plain values (no floats) and by :func:`jcs` for anything else:
  what the signing path uses.
* :func:`event_body_jcs` is the same bytes again for the body of an outgoing
  event (the SDK's signing path), flat objects by ``pydantic_core``'s encoder.
* :func:`compact_json` is ``JSON.stringify`` of the parsed value: document
  order, except that keys JavaScript holds as array indices come first, in
  numeric order (:func:`js_property_order`). What the clawsig verifier hashes
  for ``payload_hash_b64u`` (docs/formats.md §2).
  Values known to hold no float (parsed, see :func:`parse_json_tracking`)
  take ``orjson``, whose bytes for exact dicts, lists, str, bool, None and
  safe integers are the standard library's (pinned, code point by code
  point, by ``tests/core/test_canonical_orjson.py``).
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
from typing import TYPE_CHECKING, Any

import orjson
import rfc8785
from pydantic_core import PydanticSerializationError, to_json

from ledger.errors import ReasonCode, RejectedError
from ledger.javascript import js_property_order

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = [
    "MAX_SAFE_INTEGER",
    "compact_json",
    "event_body_jcs",
    "field_values",
    "has_special_numbers",
    "holds_index_keys",
    "jcs",
    "jcs_hash_b64u",
    "jcs_ordered",
    "parse_document_bytes",
    "parse_json_stored",
    "parse_json_strict",
    "parse_json_tracking",
    "plain_jcs",
    "plain_jcs_bytes",
]


def jcs(value: Any) -> bytes:
    """RFC 8785 canonical bytes of ``value``."""
    return rfc8785.dumps(value)


def jcs_hash_b64u(value: Any) -> str:
    """b64u(SHA-256(JCS(value))) — the identity of WPCs, URMs and scope inputs."""
    from ledger.encoding import sha256_b64u

    return sha256_b64u(jcs(value))


#: Integers JavaScript holds exactly; beyond them ``JSON.stringify`` would print another number.
MAX_SAFE_INTEGER = 2**53 - 1


# --- the signing side's fast canonical form -----------------------------------------


class _NotPlain(Exception):
    """The value holds something the fast encoder does not vouch for."""


def _utf16_units(key: str) -> bytes:
    # big-endian UTF-16 compares bytewise exactly as RFC 8785 §3.2.3 orders keys
    return key.encode("utf-16-be")


def _ordered(value: Any) -> Any:
    """A copy of ``value`` with every object's keys in RFC 8785 order.

    Only exact ``dict`` (str keys), ``list``/``tuple``, ``str``, ``bool``,
    ``None`` and safe ``int`` pass; anything else raises :class:`_NotPlain`.
    Floats are refused on purpose: ECMAScript number formatting is the one part
    of JCS the C encoder gets wrong.
    """
    kind = type(value)
    if kind is dict:
        keys = list(value)
        try:
            joined = "".join(keys)
        except TypeError:
            raise _NotPlain from None
        # code-point order is UTF-16 order unless a key holds a character at or
        # above U+D800 (surrogates and U+E000..U+FFFF sort after astral pairs)
        if joined.isascii() or max(joined) < "\ud800":
            keys.sort()
        else:
            keys.sort(key=_utf16_units)  # a lone surrogate raises UnicodeEncodeError
        out = {}
        for key in keys:
            item = value[key]
            # scalars inline: a call per leaf was most of this walk's cost
            if type(item) is str or item is None or type(item) is bool:
                out[key] = item
            else:
                out[key] = _ordered(item)
        return out
    if kind is str or kind is bool or value is None:
        return value
    if kind is int:
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return value
        raise _NotPlain
    if kind is list or kind is tuple:
        return [_ordered(item) for item in value]
    raise _NotPlain


# json.dumps with compact_json's options (ensure_ascii=False, separators ",", ":"),
# so the document-order hash of the ordered copy is the hash of these bytes. The
# C encoder is built once: JSONEncoder.encode builds a new one per call, which
# cost as much as encoding a small event.
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
_encode_chunks = (
    None  # an interpreter without the C accelerator
    if _c_make_encoder is None
    else _c_make_encoder(
        None,  # no circularity check: _ordered made a fresh tree
        None,  # no default: _ordered let only JSON types through
        json.encoder.encode_basestring,
        None,
        ":",
        ",",
        False,
        False,
        False,
    )
)
_ENCODER = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False
)
#: the same with keys sorted by code point (UTF-16 order for keys below U+D800)
_sorted_chunks = (
    None
    if _c_make_encoder is None
    else _c_make_encoder(
        None, None, json.encoder.encode_basestring, None, ":", ",", True, False, False
    )
)
_PLAIN_SCALARS = frozenset({str, bool, type(None)})
_STR = frozenset({str})
_INT = frozenset({int})


def _encode(value: Any) -> str:
    if _encode_chunks is None:
        return _ENCODER.encode(value)
    return "".join(_encode_chunks(value, 0))


def plain_jcs(value: Any) -> tuple[Any, bytes] | None:
    """:func:`jcs_ordered` for plain values only; ``None`` for anything else.

    Plain: exact dicts with str keys, lists, tuples, str, bool, None and
    integers within ±(2**53-1), and text UTF-8 can encode.
    """
    try:
        ordered = _ordered(value)
        return ordered, _encode(ordered).encode("utf-8")
    except (_NotPlain, UnicodeEncodeError, RecursionError):
        return None


def plain_jcs_bytes(value: Any) -> bytes | None:
    """``plain_jcs(value)[1]`` without the ordered copy; ``None`` when not plain.

    A flat object of strings, booleans, nulls and safe integers (most event
    bodies) is checked with a few whole-collection calls and encoded by the C
    encoder with its own key sort, which is UTF-16 order when no key holds a
    character at or above U+D800. Anything else takes :func:`plain_jcs`.
    """
    if type(value) is dict and _sorted_chunks is not None:
        kinds = set(map(type, value.values()))
        if kinds <= _PLAIN_SCALARS or (
            kinds - _PLAIN_SCALARS == {int}
            and all(
                -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER
                for item in value.values()
                if type(item) is int
            )
        ):
            keys = list(value)
            if set(map(type, keys)) <= {str}:
                joined = "".join(keys)
                if joined.isascii() or max(joined) < "\ud800":
                    try:
                        return "".join(_sorted_chunks(value, 0)).encode("utf-8")
                    except UnicodeEncodeError:
                        return None
    fast = plain_jcs(value)
    return None if fast is None else fast[1]


#: per key tuple of a flat object: its keys in RFC 8785 order, and whether that is
#: the tuple's own order; ``None`` when a key is not a string UTF-16 can hold
_KEY_ORDERS: dict[tuple[Any, ...], tuple[tuple[str, ...], bool] | None] = {}
#: key tuples remembered; a service signs a few body shapes over and over
_KEY_ORDERS_SIZE = 1024


def _key_order(keys: tuple[Any, ...]) -> tuple[tuple[str, ...], bool] | None:
    if not all(type(key) is str for key in keys):
        return None
    joined = "".join(keys)
    try:
        ordered = sorted(
            keys, key=None if joined.isascii() or max(joined) < "\ud800" else _utf16_units
        )
    except UnicodeEncodeError:  # a lone surrogate: not JSON text
        return None
    return tuple(ordered), tuple(ordered) == keys


def event_body_jcs(value: Any) -> bytes | None:
    """:func:`plain_jcs_bytes` for the body of an event this process signs.

    A flat object (string keys; strings, booleans, nulls and integers within
    ±(2**53-1) as values), the usual event body, is put in RFC 8785 key order by
    a plan kept per key tuple and encoded by ``pydantic_core.to_json``, whose
    string escapes are RFC 8785's (pinned by ``tests/core/test_event_body_jcs.py``).
    Anything else takes :func:`plain_jcs_bytes`; ``None`` when not plain. Never
    used on received bytes: the verifier hashes what it parsed.
    """
    if type(value) is not dict:
        return plain_jcs_bytes(value)
    keys = tuple(value)
    try:
        plan = _KEY_ORDERS[keys]
    except KeyError:
        plan = _key_order(keys)
        if len(_KEY_ORDERS) >= _KEY_ORDERS_SIZE:
            _KEY_ORDERS.clear()
        _KEY_ORDERS[keys] = plan
    if plan is None or not set(map(type, keys)) <= _STR:
        # (an equal tuple of str subclasses would find a plan made for str keys)
        return plain_jcs_bytes(value)
    values = value.values()
    kinds = set(map(type, values))
    if not kinds <= _PLAIN_SCALARS:
        if kinds - _PLAIN_SCALARS != _INT:
            return plain_jcs_bytes(value)  # nested values, floats, other types
        for item in values:
            if type(item) is int and not -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                return None  # JavaScript cannot hold it: the reference path refuses it
    order, in_order = plan
    try:
        return to_json(value if in_order else {key: value[key] for key in order})
    except PydanticSerializationError:  # a lone surrogate in a value
        return None


def jcs_ordered(value: Any) -> tuple[Any, bytes]:
    """``value`` with its objects in JCS key order, and its RFC 8785 bytes.

    The copy's document order is its canonical order, so JSON.stringify of it
    (the clawsig payload hash) hashes exactly the canonical bytes. Plain values
    take the C encoder (:func:`plain_jcs`); a float, an integer beyond
    ±(2**53-1), a non-string key, another type, a lone surrogate or very deep
    nesting go to :func:`jcs`, which canonicalises or refuses as it always did.
    """
    fast = plain_jcs(value)
    if fast is not None:
        return fast
    canonical = jcs(value)
    return json.loads(canonical), canonical


def _has_special_numbers(value: Any) -> bool:
    """True when ``value`` holds a float or an unsafe integer (JSON.stringify differs)."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        # the exact JSON types first: every parsed document is made of them only
        if kind is str or kind is bool or item is None:
            continue
        if kind is dict:
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
        elif kind is int:
            if abs(item) > MAX_SAFE_INTEGER:
                return True
        elif isinstance(item, bool | str):
            continue
        elif isinstance(item, float):
            return True
        elif isinstance(item, int):
            if abs(item) > MAX_SAFE_INTEGER:
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


#: public name: callers that build a payload from parsed parts decide on ``plain_numbers``
has_special_numbers = _has_special_numbers


def _stringify(value: Any) -> str:
    if isinstance(value, dict):
        return (
            "{"
            + ",".join(
                json.dumps(k, ensure_ascii=False) + ":" + _stringify(v) for k, v in value.items()
            )
            + "}"
        )
    if isinstance(value, list | tuple):
        return "[" + ",".join(_stringify(v) for v in value) + "]"
    if isinstance(value, float):
        # ECMAScript Number::toString, the same form RFC 8785 prescribes
        return rfc8785.dumps(value).decode("ascii")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SAFE_INTEGER:
        raise ValueError(f"integer {value} is beyond JavaScript's safe range")
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


# --- JavaScript's property order ----------------------------------------------------

#: a key that may be an array index, as compact JSON writes it; a match may be a
#: false alarm (``"x\"5":``), never a miss, so only a match needs the exact check
_INDEX_KEY = re.compile(rb'"(?:0|[1-9][0-9]{0,9})":')


def holds_index_keys(data: bytes) -> bool:
    """Whether compact JSON ``data`` may have an object key JavaScript holds as an
    array index ("0", "17"): JSON.stringify of its parse would then differ from
    the document order, and from RFC 8785's."""
    return _INDEX_KEY.search(data) is not None


# orjson for exact builtin types only: subclasses, dataclasses and datetimes go
# to the (absent) default and raise, integers beyond 2**53 raise, so anything
# json.dumps would treat differently takes json.dumps. Floats are never handed
# to it (its exponent forms are not JavaScript's).
_ORJSON_EXACT = (
    orjson.OPT_STRICT_INTEGER
    | orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
)


def compact_json(value: Any, *, plain_numbers: bool = False) -> bytes:
    """``JSON.stringify(value)``: no whitespace, UTF-8, keys in JavaScript's
    property order (document order but for array-index keys, which come first:
    :func:`js_property_order`).

    Numbers take JavaScript's form (``1e-7``, ``1``, ``1e+21``); an integer
    beyond 2**53 is refused, since JavaScript cannot hold it exactly.
    ``plain_numbers=True`` asserts the value holds neither floats nor unsafe
    integers (known from parsing, see :func:`parse_json_tracking`) and skips the scan.
    """
    written = _compact_in_document_order(value, plain_numbers)
    if not holds_index_keys(written):
        return written
    return _compact_in_document_order(js_property_order(value), plain_numbers)


def _compact_in_document_order(value: Any, plain_numbers: bool) -> bytes:
    if plain_numbers:
        try:
            return orjson.dumps(value, option=_ORJSON_EXACT)
        except (TypeError, orjson.JSONEncodeError):
            pass  # an unsafe integer, a lone surrogate, another type: the reference path decides
    elif _has_special_numbers(value):
        return _stringify(value).encode("utf-8")
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
        "utf-8"
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON constant {name}")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {key!r}")
            seen.add(key)
    return out


def _finite_float(text: str) -> float:
    number = float(text)
    if number in (float("inf"), float("-inf")):
        raise ValueError(f"number {text} is out of range")
    return number


class _NumberSeen(threading.local):
    #: set when the document holds a float or an integer beyond MAX_SAFE_INTEGER
    special = False


_number_seen = _NumberSeen()


def _tracked_float(text: str) -> float:
    _number_seen.special = True
    return _finite_float(text)


def _tracked_int(text: str) -> int:
    number = int(text)
    if abs(number) > MAX_SAFE_INTEGER:
        _number_seen.special = True
    return number


# One decoder for every call: building one per document cost more than the parse
# of a small event. Its hooks record what they see in a thread-local flag.
_TRACKING_DECODER = json.JSONDecoder(
    parse_float=_tracked_float,
    parse_int=_tracked_int,
    parse_constant=_reject_constant,
    object_pairs_hook=_no_duplicate_keys,
)
_STRICT_DECODER = json.JSONDecoder(
    parse_float=_finite_float,
    parse_constant=_reject_constant,
    object_pairs_hook=_no_duplicate_keys,
)


def _parse_compact(data: bytes) -> Any | None:
    """The value of ``data`` by orjson, when that is certainly the strict decoder's
    value and every number in it is a safe integer; else ``None``.

    It is when orjson writes the value back byte for byte, without a float and
    with every integer within 2**53: a duplicate key (orjson keeps one), an
    escape orjson would not write, whitespace or another spelling of a number
    would not come back the same. Signed envelopes are compact JSON in which
    that holds, and orjson parses them several times faster.
    """
    try:
        value = orjson.loads(data)
        again = orjson.dumps(value, option=orjson.OPT_STRICT_INTEGER)
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        return None
    if again != data or _has_special_numbers(value):
        return None
    return value


def parse_json_tracking(data: bytes) -> tuple[Any, bool]:
    """:func:`parse_json_strict`, also telling whether every number is a safe integer."""
    value = _parse_compact(data)
    if value is not None:
        return value, True
    text = data.decode("utf-8")
    _number_seen.special = False
    value = _TRACKING_DECODER.decode(text)
    return value, not _number_seen.special


_TRUSTED_DECODER = json.JSONDecoder(
    parse_float=_tracked_float, parse_int=_tracked_int, parse_constant=_reject_constant
)


def parse_json_stored(data: bytes | str) -> tuple[Any, bool]:
    """:func:`parse_json_tracking` for bytes the ledger parsed strictly when it accepted
    them (stored envelopes): the duplicate-key check, the costly part, is not repeated.
    Text is taken as it is (a stored envelope is often held as text already)."""
    text = data if isinstance(data, str) else data.decode("utf-8")
    _number_seen.special = False
    value = _TRUSTED_DECODER.decode(text)
    return value, not _number_seen.special


def parse_json_strict(data: bytes) -> Any:
    """Parse JSON bytes refusing NaN/Infinity, duplicate keys and invalid UTF-8.

    Duplicate keys are refused because two parsers may keep different values,
    and the bytes that were signed must mean one thing.
    """
    value = _parse_compact(data)
    if value is not None:
        return value
    return _STRICT_DECODER.decode(data.decode("utf-8"))


def field_values(record: DataclassInstance, *, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """A dataclass's fields by name, in declaration order; values as they are, not copied."""
    return {
        f.name: getattr(record, f.name) for f in dataclasses.fields(record) if f.name not in skip
    }


def parse_document_bytes(data: bytes, what: str, limit: int, error: type[RejectedError]) -> Any:
    """A document file: JSON, else JSON5; at most ``limit`` bytes; a leading BOM ignored.

    Refuses with ``error``: ``OVERSIZED``, or ``MALFORMED_JSON`` for bad UTF-8,
    syntax, duplicate keys or too deep a nesting. ``what`` names the document.
    """
    if len(data) > limit:
        raise error(ReasonCode.OVERSIZED, f"{what} is {len(data)} bytes, the limit is {limit}")
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise error(ReasonCode.MALFORMED_JSON, f"{what} is not UTF-8: {exc}") from exc
    try:
        return parse_json_strict(text.encode("utf-8"))
    except RecursionError as exc:
        raise error(ReasonCode.MALFORMED_JSON, f"{what} nests too deeply") from exc
    except ValueError:
        pass
    import json5  # only documents written by hand need it

    try:
        return json5.loads(text, allow_duplicate_keys=False)
    except (ValueError, RecursionError) as exc:
        raise error(ReasonCode.MALFORMED_JSON, f"{what} is neither JSON nor JSON5: {exc}") from exc
