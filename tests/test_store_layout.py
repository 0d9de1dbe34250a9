"""The processor's rows line up with the columns they are copied into."""

from __future__ import annotations

from storage import postgres as store


def test_event_row_fields_are_the_copy_columns_in_order() -> None:
    # EventRow is copied positionally (COPY), so a reordered field would put
    # values in the wrong columns; only the field name of the payload differs
    fields = ["payload" if f == "payload_json" else f for f in store.EventRow._fields]
    assert (*fields, "kafka_topic", "kafka_partition") == store.EVENT_COLUMNS
