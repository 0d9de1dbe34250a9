"""The control-plane digest: a multiset hash of each control-plane table.

The processor is the only writer of ``keys``, ``policies``, ``tokens``,
``jobs`` and ``halts``. Each commit that writes their rows also moves the
table's digest (in the same transaction), so a row changed behind the
ledger's back no longer sums to the stored digest, and the processor refuses
to load it (ADR 0014).

digest(table) = sum over its rows of int(SHA-256(table NUL canonical_row(row))) mod 2^256

Adding a row adds its hash; replacing a row subtracts the old row's hash and
adds the new one's. Order does not matter, so the digest of the rows read back
equals the digest kept while writing them, as long as :func:`canonical_row`
gives the same bytes for a row as written and as read back through Postgres
(jsonb reorders keys and may print numbers differently: pinned by tests).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from ledger.state import LedgerState, ProjectionRow

__all__ = [
    "CONTROL_DIGEST_TABLES",
    "DIGEST_MODULUS",
    "canonical_row",
    "digest_delta",
    "digest_hex",
    "parse_digest",
    "row_hash",
    "state_digests",
    "table_digest",
]

#: The tables the processor loads into its state and obeys, in a stable order.
CONTROL_DIGEST_TABLES: tuple[str, ...] = ("keys", "policies", "tokens", "jobs", "halts")
DIGEST_MODULUS = 1 << 256
#: bookkeeping columns that are not part of a row's meaning
_IGNORED_COLUMNS = frozenset({"control_version"})


def _number(value: int | float) -> str:
    # jsonb keeps numbers as decimals: 1e2 comes back as 100, a big float as
    # its digits. Encode every number as the double it denotes, the way
    # JSON.stringify would, so both spellings give the same text.
    try:
        as_float = float(value)
    except OverflowError:
        return str(value)
    if not math.isfinite(as_float):
        raise ValueError(f"not a JSON number: {value!r}")
    if as_float.is_integer() and abs(as_float) < 1e21:
        return str(int(as_float))
    return repr(as_float)


def _encode(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int | float):
        out.append(_number(value))
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=True))
    elif isinstance(value, Mapping):
        out.append("{")
        for i, key in enumerate(sorted(value)):
            if i:
                out.append(",")
            out.append(json.dumps(str(key), ensure_ascii=True))
            out.append(":")
            _encode(value[key], out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        raise TypeError(f"cannot encode {type(value).__name__} in a control-plane row")


#: integers the stdlib encoder writes exactly as :func:`_number` does (a double holds them)
_SAFE_INTEGER = 2**53
#: values the stdlib encoder writes as :func:`_encode` does whatever they hold
_SCALARS = frozenset({str, bool})
_ROW_ENCODER = json.JSONEncoder(sort_keys=True, ensure_ascii=True, separators=(",", ":"))
#: each table's hash state after "table NUL", copied for every row
_PREFIXES: dict[str, Any] = {}


def _plain(value: Any) -> bool:
    """Whether the stdlib encoder writes ``value`` byte for byte as :func:`_encode` does:
    no float (``2.0`` would print as ``2.0``, not ``2``) and no integer a double cannot hold."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-_SAFE_INTEGER < value < _SAFE_INTEGER)
    if kind is list or kind is tuple:
        return all(_plain(item) for item in value)
    if kind is dict:
        return all(type(key) is str and _plain(item) for key, item in value.items())
    return False


def canonical_row(row: Mapping[str, Any]) -> bytes:
    """The row's bytes for the digest: sorted keys, numbers as doubles, ASCII.

    A column holding NULL counts as absent (an insert that leaves a nullable
    column out stores NULL), and ``control_version`` is left out.
    """
    kept = {k: v for k, v in row.items() if v is not None and k not in _IGNORED_COLUMNS}
    for key, value in kept.items():
        # most columns are text or booleans: no call for those
        if type(key) is not str or (type(value) not in _SCALARS and not _plain(value)):
            return reference_canonical_row(kept)
    # orjson writes such a row as the stdlib encoder does (sorted keys, the same
    # escapes) unless it holds a character beyond ASCII or DEL, which ensure_ascii
    # escapes and orjson does not; a tenth of the stdlib's time, twice a control event
    encoded: bytes | None
    try:
        encoded = orjson.dumps(kept, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:  # a lone surrogate, which the stdlib escapes
        encoded = None
    if encoded is not None and encoded.isascii() and b"\x7f" not in encoded:
        return encoded
    # the C encoder, once per row (the per-value walk below cost ~80 µs a row), from
    # one encoder: json.dumps with options builds a new one per call
    return _ROW_ENCODER.encode(kept).encode("ascii")


def reference_canonical_row(row: Mapping[str, Any]) -> bytes:
    """:func:`canonical_row` by the value-by-value walk (floats, large integers)."""
    out: list[str] = []
    _encode(row, out)
    return "".join(out).encode("ascii")


def row_hash(table: str, row: Mapping[str, Any]) -> int:
    """int(SHA-256(table NUL canonical_row(row))), from a copy of the table's prefix state."""
    prefix = _PREFIXES.get(table)
    if prefix is None:
        prefix = _PREFIXES[table] = hashlib.sha256(table.encode("ascii") + b"\x00")
    digest = prefix.copy()
    digest.update(canonical_row(row))
    return int.from_bytes(digest.digest(), "big")


def table_digest(table: str, rows: Iterable[Mapping[str, Any]]) -> int:
    return sum(row_hash(table, row) for row in rows) % DIGEST_MODULUS


def digest_delta(
    table: str, old_rows: Mapping[Any, Mapping[str, Any]], changes: Sequence[ProjectionRow]
) -> int:
    """How ``table``'s digest moves when ``changes`` (its upserts, in order) are
    applied to ``old_rows`` (the stored rows of the keys they touch, by key).

    An upsert replaces the columns it names and keeps the others, as both stores do.
    """
    current = {key: dict(row) for key, row in old_rows.items()}
    for change in changes:
        key = change.values[change.key_column]
        current[key] = {**current.get(key, {}), **change.values}
    before = sum(row_hash(table, old_rows[k]) for k in current if k in old_rows)
    after = sum(row_hash(table, row) for row in current.values())
    return (after - before) % DIGEST_MODULUS


def state_digests(state: LedgerState) -> dict[str, int]:
    """Each control-plane table's digest, from the rows a loaded state holds."""
    digests = {"keys": table_digest("keys", (k.row().values for k in state.keys.values()))}
    for table in CONTROL_DIGEST_TABLES[1:]:
        rows: dict[str, dict[str, Any]] = getattr(state, table)
        digests[table] = table_digest(table, rows.values())
    return digests


def digest_hex(digest: int) -> str:
    """How a digest is stored: 64 lowercase hex digits."""
    return f"{digest % DIGEST_MODULUS:064x}"


def parse_digest(text: str | None) -> int | None:
    """A stored digest (``None``: not sealed yet, see migration 0007)."""
    return None if text is None else int(text, 16)
