from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgefleet.telemetry import ConfidenceStats, MaxProbability

values = st.lists(st.floats(min_value=0.0, max_value=1.0), max_size=100)


def stats_of(v: list[float]) -> ConfidenceStats:
    s = ConfidenceStats()
    s.add_many(v)
    return s


@given(values, values)
def test_merge_equals_adding_the_union(a: list[float], b: list[float]) -> None:
    merged = stats_of(a)
    merged.merge(stats_of(b))
    union = stats_of(a + b)
    assert merged.histogram.tolist() == union.histogram.tolist()
    assert merged.count == union.count
    assert math.isclose(merged.sum, union.sum, abs_tol=1e-9)
    assert math.isclose(merged.sum_squares, union.sum_squares, abs_tol=1e-9)


def test_mean_variance_and_histogram() -> None:
    s = stats_of([0.0, 0.5, 1.0])
    assert s.mean == pytest.approx(0.5)
    assert s.variance == pytest.approx(np.var([0.0, 0.5, 1.0]))
    assert s.histogram[0] == 1
    assert s.histogram[10] == 1
    assert s.histogram[-1] == 1  # 1.0 falls into the last bin


def test_nan_values_are_counted_apart() -> None:
    s = stats_of([0.9, float("nan")])
    assert s.count == 1
    assert s.nan_count == 1


def test_round_trip_and_bad_data() -> None:
    s = stats_of([0.2, 0.7])
    assert ConfidenceStats.from_dict(s.to_dict()).to_dict() == s.to_dict()
    broken = s.to_dict()
    broken["count"] = 5
    with pytest.raises(ValueError, match="does not add up"):
        ConfidenceStats.from_dict(broken)
    with pytest.raises(ValueError, match="not serialised"):
        ConfidenceStats.from_dict({"histogram": [1]})


def test_max_probability_takes_the_row_maximum() -> None:
    rows = np.array([[0.2, 0.8], [0.6, 0.4]], dtype=np.float32)
    assert MaxProbability("p")({"p": rows}).tolist() == pytest.approx([0.8, 0.6])
