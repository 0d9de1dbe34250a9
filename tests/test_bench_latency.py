"""The latency rows of ``make bench``: loads as fractions of the capacity measured
in the same run, the target judged at half of it, repeated runs reduced to the
run with the median p99, and the publisher's lag reported beside them."""

from __future__ import annotations

from bench.latency import LOAD_FRACTIONS, LatencyRun, latency_rows, percentile


def _run(fraction: float, p99_ms: float, lag_ms: float = 1.0) -> LatencyRun:
    return LatencyRun(
        fraction=fraction,
        rate=4000 * fraction,
        events=1000,
        p50=p99_ms / 2000,
        p99=p99_ms / 1000,
        max=p99_ms / 500,
        lag_p99=lag_ms / 1000,
        lag_max=lag_ms / 500,
        achieved_rate=4000 * fraction,
    )


def test_percentile_is_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 0.50) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([7.0], 0.99) == 7.0


def test_loads_are_a_quarter_half_and_three_quarters() -> None:
    assert LOAD_FRACTIONS == (0.25, 0.50, 0.75)


def test_the_target_is_judged_at_half_of_capacity_only() -> None:
    rows, _ = latency_rows(4000, [_run(0.25, 50), _run(0.5, 250), _run(0.75, 900)])
    by_load = {row[0].split(" of capacity")[0][-3:]: row for row in rows}
    assert set(by_load) == {"25%", "50%", "75%"}
    assert by_load["50%"][3:] == ("p99 ≤ 100 ms", "NOT met")
    assert by_load["25%"][3:] == by_load["75%"][3:] == ("", "")
    assert "2,000 ev/s steady" in by_load["50%"][0]
    assert "capacity 4,000 ev/s" in by_load["50%"][2]
    met, _ = latency_rows(4000, [_run(0.5, 100)])
    assert met[0][4] == "met"


def test_repeated_runs_report_the_median_p99_and_the_publisher_lag() -> None:
    runs = [_run(0.5, 300, lag_ms=3), _run(0.5, 80, lag_ms=2), _run(0.5, 120, lag_ms=40)]
    rows, notes = latency_rows(4000, runs)
    assert len(rows) == 1
    assert rows[0][1] == "p50 60 ms, p99 120 ms"
    assert "median p99 of 3 runs" in rows[0][0]
    assert rows[0][4] == "NOT met"
    assert "300 ms, 80 ms, 120 ms" in notes[0]
    assert "publisher lag behind its schedule p99 40.0 ms" in notes[0]
