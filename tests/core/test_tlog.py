"""The leaves of claw-ledger's log (ADR 0011): byte layout, strict parsing, append order."""

from __future__ import annotations

import base64
import hashlib
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.errors import ProofError, ReasonCode
from ledger.tlog import EventLeaf, order_new_leaves

EVENT_ID = "0b8f4a4e-7d0c-4b6e-9a51-1f2e3d4c5b6a"
DIGEST_A = "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"  # b64u SHA-256 of b""
DIGEST_B = "bjQLnP-zepicpUTmu3gKLHiQHT-zNzh2hRGjBhevoB0"  # b64u SHA-256 of b"\x00"


def test_event_leaf_layout_and_round_trip() -> None:
    leaf = EventLeaf(3, 258, EVENT_ID, DIGEST_A, DIGEST_B)
    data = leaf.data()
    assert len(data) == 93
    assert data[0] == 1
    assert data[1:5] == (3).to_bytes(4, "big")
    assert data[5:13] == (258).to_bytes(8, "big")
    assert data[13:29] == bytes.fromhex(EVENT_ID.replace("-", ""))
    assert data[29:61] == hashlib.sha256(b"").digest()
    assert data[61:93] == hashlib.sha256(b"\x00").digest()
    assert leaf.hash() == hashlib.sha256(b"\x00" + data).digest()
    assert EventLeaf.from_data(data) == leaf


@pytest.mark.parametrize(
    "fields",
    [
        (-1, 1, EVENT_ID, DIGEST_A, DIGEST_B),
        (2**32, 1, EVENT_ID, DIGEST_A, DIGEST_B),
        (0, 0, EVENT_ID, DIGEST_A, DIGEST_B),
        (0, True, EVENT_ID, DIGEST_A, DIGEST_B),
        (0, 1, EVENT_ID.upper(), DIGEST_A, DIGEST_B),
        (0, 1, "{" + EVENT_ID + "}", DIGEST_A, DIGEST_B),
        (0, 1, EVENT_ID, DIGEST_A[:-1] + "V", DIGEST_B),  # non-canonical trailing bits
        (0, 1, EVENT_ID, DIGEST_A + "AAAA", DIGEST_B),
        (0, 1, EVENT_ID, DIGEST_A, "not base64url!"),
    ],
)
def test_event_leaf_refuses_bad_fields(fields: tuple[int, int, str, str, str]) -> None:
    with pytest.raises(ProofError) as caught:
        EventLeaf(*fields).data()
    assert caught.value.code == ReasonCode.LEAF_MALFORMED


def test_event_leaf_parsing_is_strict() -> None:
    data = EventLeaf(0, 1, EVENT_ID, DIGEST_A, DIGEST_B).data()
    for bad in (data[:-1], data + b"\x00", b"\x02" + data[1:], data[:5] + bytes(8) + data[13:]):
        with pytest.raises(ProofError) as caught:
            EventLeaf.from_data(bad)
        assert caught.value.code == ReasonCode.LEAF_MALFORMED


_B64U = string.ascii_letters + string.digits + "-_"
_digests = st.one_of(
    st.binary(min_size=32, max_size=32).map(
        lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    ),
    st.text(alphabet=_B64U + "=+/ \n", min_size=41, max_size=45),
)
_event_ids = st.one_of(
    st.uuids().map(str),
    st.uuids().map(lambda u: str(u).upper()),
    st.uuids().map(lambda u: u.hex),
    st.text(alphabet="0123456789abcdefABCDEF-{}", min_size=32, max_size=38),
)


@given(
    st.integers(-1, 2**32),
    st.integers(0, 2**64),
    _event_ids,
    _digests,
    _digests,
)
def test_event_leaf_fast_path_is_the_checked_one(
    partition: int, seq: int, event_id: str, envelope: str, chain: str
) -> None:
    """data() decodes canonical fields in one step; whatever it accepts, the
    field-by-field checks accept with the same bytes, and it refuses the rest."""
    leaf = EventLeaf(partition, seq, event_id, envelope, chain)
    try:
        expected: bytes | str = leaf._checked_data()
    except ProofError as exc:
        expected = exc.code
    try:
        got: bytes | str = leaf.data()
    except ProofError as exc:
        got = exc.code
    assert got == expected


def _leaf(partition: int, seq: int) -> EventLeaf:
    return EventLeaf(partition, seq, EVENT_ID, DIGEST_A, DIGEST_B)


def test_new_leaves_follow_commit_position_and_continue_each_chain() -> None:
    pending = [(9, _leaf(1, 3)), (4, _leaf(0, 6)), (7, _leaf(1, 2)), (12, _leaf(2, 1))]
    ordered = order_new_leaves(pending, {0: 5, 1: 1})
    assert [(leaf.partition, leaf.ledger_seq) for leaf in ordered] == [
        (0, 6),
        (1, 2),
        (1, 3),
        (2, 1),
    ]


@pytest.mark.parametrize(
    "pending",
    [
        [(1, _leaf(0, 7))],  # a gap after seq 5
        [(1, _leaf(0, 5))],  # already in the log
        [(1, _leaf(0, 7)), (2, _leaf(0, 6))],  # seq order disagrees with commit order
        [(1, _leaf(3, 2))],  # a new partition starts at seq 1
    ],
)
def test_new_leaves_refuse_a_partial_or_reordered_view(
    pending: list[tuple[int, EventLeaf]],
) -> None:
    with pytest.raises(ValueError, match="expected"):
        order_new_leaves(pending, {0: 5})
