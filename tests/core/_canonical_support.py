"""Hypothesis strategies and helpers shared by the canonical-encoding tests."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from ledger.canonical import MAX_SAFE_INTEGER

PROPERTY = settings(
    max_examples=250, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

#: characters where JSON encoders disagree when they disagree at all
TRICKY = [
    *map(chr, range(0x20)),  # control characters, escaped as \b \f \n \r \t or \u00xx
    '"',
    "\\",
    "/",
    "\x7f",  # DEL: not escaped
    "\u2028",  # line and paragraph separators: not escaped by JCS
    "\u2029",
    "\ufeff",
    "\uffff",
    "\ue000",  # after every astral character in UTF-16 order, before in code points
    "\U00010000",
    "\U0001f600",
    "\U0010ffff",
    "é",
    "€",
]


def characters(*, nul: bool = True) -> st.SearchStrategy[str]:
    tricky = TRICKY if nul else [c for c in TRICKY if c != "\x00"]
    return st.one_of(
        st.sampled_from(tricky),
        st.characters(min_codepoint=0x20, max_codepoint=0x7E),
        st.characters(min_codepoint=0xE000, max_codepoint=0xFFFF, exclude_categories=["Cs"]),
        st.characters(min_codepoint=0x10000),
        st.characters(exclude_categories=["Cs"], exclude_characters="\x00" if not nul else ""),
    )


def texts(*, nul: bool = True) -> st.SearchStrategy[str]:
    return st.text(characters(nul=nul), max_size=12)


BOUNDARY_INTS = [
    0,
    1,
    -1,
    MAX_SAFE_INTEGER,
    -MAX_SAFE_INTEGER,
    MAX_SAFE_INTEGER + 1,
    -MAX_SAFE_INTEGER - 1,
    2**63,
    -(2**64),
]
safe_ints = st.one_of(
    st.sampled_from([n for n in BOUNDARY_INTS if abs(n) <= MAX_SAFE_INTEGER]),
    st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER),
)
any_ints = st.one_of(st.sampled_from(BOUNDARY_INTS), st.integers(), safe_ints)


def json_values(
    ints: st.SearchStrategy[int], strings: st.SearchStrategy[str], *floats: st.SearchStrategy[Any]
) -> st.SearchStrategy[Any]:
    scalars = st.one_of(st.none(), st.booleans(), ints, strings, *floats)
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=5),
            st.dictionaries(strings, inner, max_size=6),
        ),
        max_leaves=25,
    )


plain_values = json_values(safe_ints, texts())
plain_objects = st.dictionaries(texts(), plain_values, max_size=8)
lone_surrogates = st.characters(categories=["Cs"])
with_surrogates = st.builds(lambda a, s, b: a + s + b, texts(), lone_surrogates, texts()) | texts()
odd_values = json_values(
    any_ints,
    with_surrogates,
    st.floats(allow_nan=True, allow_infinity=True),
    st.tuples(st.integers(max_value=2**60)),
    st.sampled_from([b"bytes", frozenset(), object()]),
)


def outcome(function: Any, value: Any) -> tuple[str, Any]:
    """What ``function(value)`` does: its bytes, or the class of what it raised."""
    try:
        return "bytes", function(value)
    except Exception as exc:
        return "raised", type(exc)


verifiable_text = texts(nul=False)  # U+0000 is refused by the verifier's schema step


def key_order(value: Any) -> Any:
    """Every object's keys in order, recursively: what two orderings of one value differ in."""
    if isinstance(value, dict):
        return [(key, key_order(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [key_order(item) for item in value]
    return None


def wire_payload(raw: bytes) -> bytes:
    """The payload's bytes inside an envelope written in JCS field order (the
    payload is the field before ``payload_hash_b64u``)."""
    start = raw.index(b',"payload":{') + len(b',"payload":')
    end = raw.rindex(b',"payload_hash_b64u":')
    return raw[start:end]
