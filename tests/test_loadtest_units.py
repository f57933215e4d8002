"""The arithmetic behind the load-test figures, without the network: the simulator's 100 ms
peak and timeline, the rate binning of the plots, the route sums, percentiles, the table."""

from __future__ import annotations

import pytest

pytest.importorskip("matplotlib")

from loadtest.plots import Series, rates
from loadtest.report import percentiles, table
from loadtest.sim_view import BindFigures, route_series
from smsblast.simulator.stats import RecordingWindow, timeline_dict


def admit(window: RecordingWindow, now: float, n: int) -> None:
    """What the simulator does for one socket read carrying ``n`` accepted submits."""
    window.expire(now)
    for _ in range(n):
        window.admit()
    window.commit(now)


def test_recording_window_keeps_the_exact_peak_over_any_100ms() -> None:
    w = RecordingWindow()
    admit(w, 10.00, 5)
    admit(w, 10.05, 5)  # 10 within 100 ms
    admit(w, 10.16, 3)  # the first batch has left the 100 ms window: 8
    assert w.short.peak == 10
    assert w.peak == 13  # and all 13 within one second


def test_recording_window_counts_per_100ms_slot_with_gaps_as_zero() -> None:
    w = RecordingWindow()
    admit(w, 100.01, 4)
    admit(w, 100.02, 1)
    admit(w, 100.35, 2)
    timeline = timeline_dict(w, now=100.4, wall_now=1000.4)
    assert timeline["step_s"] == 0.1
    assert timeline["counts"] == [5, 0, 0, 2]
    assert timeline["start"] == pytest.approx(1000.0)


def test_empty_timeline_has_no_start() -> None:
    assert timeline_dict(RecordingWindow(), 1.0, 2.0) == {
        "start": None,
        "step_s": 0.1,
        "counts": [],
    }


def test_rates_sum_slots_into_bins_scaled_to_per_second() -> None:
    series = Series("b", start=50.0, step_s=0.1, counts=[10] * 10 + [0] * 10 + [5] * 10)
    x, y = rates(series, origin=50.0, bin_s=1.0)
    assert x == [0.0, 1.0, 2.0, 3.0]
    assert y == [100.0, 0.0, 50.0, 50.0]  # the last point repeats to close the step


def test_route_series_sums_binds_that_started_at_different_times() -> None:
    def bind(key: str, start: float, counts: list[int]) -> BindFigures:
        return BindFigures(key, "xl", sum(counts), 0, 0, Series(key, start, 0.1, counts))

    (route,) = route_series([bind("xl#1", 10.0, [1, 1]), bind("xl#2", 10.1, [2, 2])], {"xl": 7})
    assert route.counts == [1, 3, 2]
    assert route.start == 10.0
    assert route.limit == 7


def test_percentiles_by_nearest_rank() -> None:
    samples = [float(i) for i in range(1, 101)]
    assert percentiles(samples) == {"p50": 51.0, "p90": 91.0, "p99": 100.0, "max": 100.0}
    assert percentiles([]) == {"p50": None, "p90": None, "p99": None, "max": None}


def test_table_aligns_columns_and_groups_thousands() -> None:
    text = table([{"a": 1234567, "b": "x"}, {"a": 2, "b": "long"}], ["a", "b"])
    assert text.splitlines() == [
        "        a     b",
        "1,234,567     x",
        "        2  long",
    ]
