from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefleet.telemetry import LatencySketch

latencies = st.lists(
    st.floats(min_value=1e-7, max_value=10.0, allow_nan=False, allow_infinity=False),
    max_size=200,
)


def sketch_of(values: list[float]) -> LatencySketch:
    sketch = LatencySketch()
    sketch.add_many(values)
    return sketch


def same(a: LatencySketch, b: LatencySketch) -> None:
    da, db = a.to_dict(), b.to_dict()
    assert da["bins"] == db["bins"]
    assert da["count"] == db["count"]
    assert da["zero_count"] == db["zero_count"]
    assert da["min"] == db["min"]
    assert da["max"] == db["max"]
    assert math.isclose(da["sum"], db["sum"], rel_tol=1e-9, abs_tol=1e-12)


@given(latencies, latencies)
def test_merge_is_commutative(a: list[float], b: list[float]) -> None:
    ab, ba = sketch_of(a), sketch_of(b)
    ab.merge(sketch_of(b))
    ba.merge(sketch_of(a))
    same(ab, ba)


@given(latencies, latencies, latencies)
def test_merge_is_associative(a: list[float], b: list[float], c: list[float]) -> None:
    left = sketch_of(a)
    left.merge(sketch_of(b))
    left.merge(sketch_of(c))
    right_tail = sketch_of(b)
    right_tail.merge(sketch_of(c))
    right = sketch_of(a)
    right.merge(right_tail)
    same(left, right)


@given(latencies, latencies)
def test_merging_equals_adding_everything_to_one_sketch(a: list[float], b: list[float]) -> None:
    merged = sketch_of(a)
    merged.merge(sketch_of(b))
    same(merged, sketch_of(a + b))


@settings(max_examples=50)
@given(st.lists(st.floats(min_value=1e-6, max_value=5.0), min_size=1, max_size=500))
def test_quantiles_are_within_the_relative_accuracy(values: list[float]) -> None:
    sketch = sketch_of(values)
    data = np.sort(np.asarray(values))
    for q in (0.0, 0.5, 0.9, 0.99, 1.0):
        # DDSketch returns a value within 1% of the element at rank q * (n - 1).
        exact = data[int(q * (len(data) - 1))]
        assert abs(sketch.quantile(q) - exact) <= 0.01 * exact + 1e-12


def test_batch_inserts_match_single_inserts() -> None:
    values = np.random.default_rng(1).lognormal(-7, 1, 5000)
    one_by_one = LatencySketch()
    for v in values:
        one_by_one.add(float(v))
    same(sketch_of(values.tolist()), one_by_one)


@given(latencies)
def test_serialisation_round_trips_through_json(values: list[float]) -> None:
    sketch = sketch_of(values)
    again = LatencySketch.from_dict(json.loads(json.dumps(sketch.to_dict())))
    same(sketch, again)


def test_empty_sketch_has_no_quantiles() -> None:
    assert math.isnan(LatencySketch().quantile(0.5))
    assert math.isnan(LatencySketch().mean)


def test_zero_latency_is_counted() -> None:
    sketch = sketch_of([0.0, 0.0, 1e-3])
    assert sketch.count == 3
    assert sketch.quantile(0.0) == 0.0
    assert LatencySketch.from_dict(sketch.to_dict()).count == 3


@pytest.mark.parametrize("bad", [[-1.0], [float("nan")], [float("inf")]])
def test_refuses_negative_and_non_finite_values(bad: list[float]) -> None:
    sketch = LatencySketch()
    with pytest.raises(ValueError, match="finite and non-negative"):
        sketch.add_many(bad)
    assert sketch.count == 0


def test_refuses_quantile_outside_0_1() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        sketch_of([1.0]).quantile(1.5)


def test_refuses_to_merge_different_accuracies() -> None:
    with pytest.raises(ValueError, match="relative accuracy"):
        LatencySketch(0.01).merge(LatencySketch(0.02))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("bins"), "not a serialised latency sketch"),
        (lambda d: d.update(count=d["count"] + 1), "count says"),
        (lambda d: d["bins"].append([5, -1]), "non-positive"),
    ],
)
def test_from_dict_rejects_inconsistent_data(mutate: object, message: str) -> None:
    data = sketch_of([0.001, 0.002]).to_dict()
    mutate(data)  # type: ignore[operator]
    with pytest.raises(ValueError, match=message):
        LatencySketch.from_dict(data)


def test_batches_buffered_before_a_read_give_the_same_sketch_as_settled_ones() -> None:
    rng = np.random.default_rng(3)
    batches = [rng.lognormal(-9, 1, size=n) for n in (1, 1000, 70_000, 5)]  # one past settling
    buffered, settled = LatencySketch(), LatencySketch()
    for batch in batches:
        buffered.add_many(batch)
        settled.add_many(batch)
        settled.quantile(0.5)  # a read hands every buffered key to the sketch
    assert buffered.to_dict() == settled.to_dict()
    other = LatencySketch()
    other.add_many(batches[1])  # still buffered when merged
    buffered.merge(other)
    settled.merge(LatencySketch.from_dict(other.to_dict()))
    assert buffered.to_dict() == settled.to_dict()
    assert buffered.quantile(0.99) == settled.quantile(0.99)
