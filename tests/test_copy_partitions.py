"""Where the processor copies an outcome when a copy topic lacks the partition
number its record came from (ADR 0032): the same number when it exists, else
one fixed partition per source partition."""

from __future__ import annotations

from consumers.copies import copy_partition


def test_a_copy_keeps_its_partition_number_where_the_copy_topic_has_it() -> None:
    assert [copy_partition(p, {0, 1, 2, 3}) for p in range(4)] == [0, 1, 2, 3]


def test_a_partition_the_copy_topic_lacks_maps_to_one_fixed_partition() -> None:
    known = {0, 1, 2, 3}
    assert [copy_partition(p, known) for p in range(4, 10)] == [0, 1, 2, 3, 0, 1]
    # the same source partition always goes to the same place: a stream stays in order
    assert {copy_partition(6, known) for _ in range(5)} == {2}


def test_the_mapping_uses_the_partitions_that_exist() -> None:
    assert copy_partition(5, [3, 1]) == 3  # sorted: [1, 3]; 5 mod 2 = 1
