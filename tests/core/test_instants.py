"""Recorded times are spelled one way in every JSON document: RFC 3339, UTC, six
fraction digits, ``Z`` — so that text order is time order."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.instants import format_instant, with_instants

SPELLING = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")

aware = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
    ),
)


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2026, 2, 12, tzinfo=UTC), "2026-02-12T00:00:00.000000Z"),
        (datetime(2026, 2, 12, 0, 0, 12, 500000, tzinfo=UTC), "2026-02-12T00:00:12.500000Z"),
        (
            datetime(2026, 2, 12, 1, 30, tzinfo=timezone(timedelta(hours=2))),
            "2026-02-11T23:30:00.000000Z",
        ),
        (datetime(999, 1, 1, 0, 0, 0, 1, tzinfo=UTC), "0999-01-01T00:00:00.000001Z"),
    ],
)
def test_the_spelling(moment: datetime, text: str) -> None:
    assert format_instant(moment) == text
    assert datetime.fromisoformat(text) == moment


@given(aware, aware)
def test_text_order_is_time_order_and_the_text_reads_back(a: datetime, b: datetime) -> None:
    first, second = format_instant(a), format_instant(b)
    assert SPELLING.fullmatch(first) and SPELLING.fullmatch(second)
    assert (first < second) == (a < b)
    assert datetime.fromisoformat(first) == a


def test_a_time_without_a_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        format_instant(datetime(2026, 2, 12))


def test_documents_have_their_times_spelled_at_any_depth() -> None:
    moment = datetime(2026, 2, 12, 0, 0, 12, tzinfo=UTC)
    document = {
        "recorded_at": moment,
        "rows": [{"at": moment, "n": 1}, (moment, "x")],
        "nested": {"deeper": {"at": moment}},
        "text": "2026-02-12T00:00:12Z",
        "none": None,
    }
    spelled = "2026-02-12T00:00:12.000000Z"
    assert with_instants(document) == {
        "recorded_at": spelled,
        "rows": [{"at": spelled, "n": 1}, [spelled, "x"]],
        "nested": {"deeper": {"at": spelled}},
        "text": "2026-02-12T00:00:12Z",
        "none": None,
    }
