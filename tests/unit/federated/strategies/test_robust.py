from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgefleet.federated.strategies import ClientUpdate, FedAvg, Median, Strategy, TrimmedMean

from .rounds import BOUND, property_test, sizes, updates_of_size

outliers = st.sampled_from([1e6, -1e6, 3e38, -3e38])
"""A broken or poisoned update: huge, but finite, so validation lets it through."""

robust = st.sampled_from([TrimmedMean(beta=0.2), TrimmedMean(beta=0.4), Median()])


@property_test
@given(st.data(), robust, sizes, outliers)
def test_robust_aggregates_stay_within_the_honest_range_despite_one_huge_update(
    data: st.DataObject, strategy: Strategy, size: int, outlier: float
) -> None:
    honest = data.draw(updates_of_size(size, min_updates=4, max_updates=10))
    poisoned = ClientUpdate(np.full(size, outlier, np.float32), data.draw(st.integers(1, 10**9)))
    updates = honest.copy()
    updates.insert(data.draw(st.integers(0, len(honest))), poisoned)

    step = strategy.aggregate(np.zeros(size, np.float32), updates)

    honest_deltas = np.stack([u.delta for u in honest])
    assert (step >= honest_deltas.min(axis=0)).all()
    assert (step <= honest_deltas.max(axis=0)).all()


def test_fedavg_by_contrast_is_dragged_away_by_one_huge_update() -> None:
    honest = [ClientUpdate(np.array([x], np.float32), 1) for x in (1.0, 2.0, 3.0, 4.0)]
    poisoned = [*honest, ClientUpdate(np.array([1e6], np.float32), 1)]
    assert FedAvg().aggregate(np.zeros(1, np.float32), poisoned).item() > BOUND


@pytest.mark.parametrize(
    ("beta", "count", "dropped"),
    [(0.0, 10, 0), (0.1, 9, 0), (0.1, 10, 1), (0.2, 5, 1), (0.2, 4, 0), (0.49, 3, 1)],
)
def test_trimmed_mean_drops_floor_of_beta_times_count_values_per_side(
    beta: float, count: int, dropped: int
) -> None:
    assert TrimmedMean(beta=beta).trimmed_per_side(count) == dropped


def test_trimmed_mean_averages_what_is_left_after_trimming_each_coordinate_separately() -> None:
    columns = [(1.0, 50.0), (2.0, 10.0), (3.0, 30.0), (4.0, 20.0), (100.0, 40.0)]
    updates = [ClientUpdate(np.array(c, np.float32), 1) for c in columns]
    # coordinate 0 keeps 2, 3, 4; coordinate 1 keeps 20, 30, 40
    assert TrimmedMean(beta=0.2).aggregate(np.zeros(2, np.float32), updates).tolist() == [3.0, 30.0]


@property_test
@given(st.data(), sizes)
def test_trimmed_mean_with_beta_zero_is_the_unweighted_mean(data: st.DataObject, size: int) -> None:
    updates = data.draw(updates_of_size(size))
    mean = np.mean([u.delta.astype(np.float64) for u in updates], axis=0).astype(np.float32)
    result = TrimmedMean(beta=0.0).aggregate(np.zeros(size, np.float32), updates)
    np.testing.assert_allclose(result, mean, rtol=1e-6, atol=1e-6)


def test_median_of_an_even_count_averages_the_middle_two() -> None:
    updates = [ClientUpdate(np.array([x], np.float32), 1) for x in (1.0, 2.0, 6.0, 100.0)]
    assert Median().aggregate(np.zeros(1, np.float32), updates).tolist() == [4.0]


@pytest.mark.parametrize("strategy", [TrimmedMean(beta=0.2), Median()], ids=repr)
def test_robust_strategies_count_every_update_once_whatever_its_num_examples(
    strategy: Strategy,
) -> None:
    values = (1.0, 2.0, 3.0, 4.0, 5.0)
    even = [ClientUpdate(np.array([x], np.float32), 1) for x in values]
    skewed = [ClientUpdate(np.array([x], np.float32), 10**9 if x == 5 else 1) for x in values]
    w0 = np.zeros(1, np.float32)
    assert strategy.aggregate(w0, skewed).tolist() == strategy.aggregate(w0, even).tolist() == [3.0]


@pytest.mark.parametrize("strategy", [TrimmedMean(beta=0.2), Median()], ids=repr)
def test_robust_strategies_leave_out_updates_that_trained_on_no_examples(
    strategy: Strategy,
) -> None:
    updates = [ClientUpdate(np.array([x], np.float32), 1) for x in (1.0, 2.0, 3.0)]
    updates += [ClientUpdate(np.array([-50.0], np.float32), 0)] * 3
    assert strategy.aggregate(np.zeros(1, np.float32), updates).tolist() == [2.0]


@pytest.mark.parametrize("beta", [-0.1, 0.5, 0.7])
def test_trimmed_mean_needs_beta_in_zero_to_one_half(beta: float) -> None:
    with pytest.raises(ValueError, match=r"beta must be in \[0, 0.5\)"):
        TrimmedMean(beta=beta)
