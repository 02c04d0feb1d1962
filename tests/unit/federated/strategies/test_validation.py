from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from edgefleet.federated.strategies import (
    STRATEGIES,
    ClientUpdate,
    FedAdam,
    FedAvgM,
    Strategy,
)


@pytest.fixture(params=sorted(STRATEGIES))
def strategy(request: pytest.FixtureRequest) -> Strategy:
    """Every registered strategy, with default hyperparameters."""
    return STRATEGIES[request.param]()


def update(values: list[float], n: int = 1) -> ClientUpdate:
    return ClientUpdate(np.array(values, np.float32), num_examples=n)


W = np.zeros(3, np.float32)


def test_every_strategy_refuses_a_round_without_updates(strategy: Strategy) -> None:
    with pytest.raises(ValueError, match="no updates to aggregate"):
        strategy.aggregate(W, [])


def test_every_strategy_refuses_an_update_of_another_shape(strategy: Strategy) -> None:
    with pytest.raises(
        ValueError, match=r"update 1 has shape \(2,\) but the global model .*\(3,\)"
    ):
        strategy.aggregate(W, [update([1, 2, 3]), update([1, 2])])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_every_strategy_refuses_an_update_with_nan_or_inf(strategy: Strategy, bad: float) -> None:
    with pytest.raises(
        ValueError, match=r"update 2 contains 1 non-finite value\(s\) \(NaN or Inf\)"
    ):
        strategy.aggregate(W, [update([1, 2, 3]), update([1, 2, 3]), update([1, bad, 3])])


def test_every_strategy_refuses_a_round_whose_total_weight_is_zero(strategy: Strategy) -> None:
    with pytest.raises(ValueError, match=r"total weight is zero: all 2 update\(s\) have num_exa"):
        strategy.aggregate(W, [update([1, 2, 3], n=0), update([3, 2, 1], n=0)])


def test_every_strategy_refuses_a_global_model_with_nan(strategy: Strategy) -> None:
    with pytest.raises(ValueError, match="global model contains 1 non-finite"):
        strategy.aggregate(np.array([0, np.nan, 0], np.float32), [update([1, 2, 3])])


def test_every_strategy_refuses_a_global_model_that_is_not_flat(strategy: Strategy) -> None:
    with pytest.raises(ValueError, match=r"flat \(1-D\) vector, got shape \(1, 3\)"):
        strategy.aggregate(np.zeros((1, 3), np.float32), [update([1, 2, 3])])


def test_every_strategy_refuses_a_result_that_overflows_float32(strategy: Strategy) -> None:
    near_max = float(np.finfo(np.float32).max)
    global_model = np.full(3, near_max, np.float32)
    if isinstance(strategy, FedAdam):  # Adam's step is about eta, whatever the update's size
        global_model = np.full(3, near_max, np.float32)
        strategy = FedAdam(eta=1e38)
    with pytest.raises(ValueError, match="overflows float32"):
        strategy.aggregate(global_model, [update([near_max] * 3)] * 5)


@pytest.mark.parametrize("strategy_cls", [FedAvgM, FedAdam])
def test_a_refused_round_leaves_the_server_state_untouched(
    strategy_cls: type[Strategy],
) -> None:
    stateful = strategy_cls()
    stateful.aggregate(W, [update([1, 2, 3])])
    before = stateful.state_dict()
    with pytest.raises(ValueError, match="non-finite"):
        stateful.aggregate(W, [update([1, np.nan, 3])])
    assert stateful.state_dict() == before


@pytest.mark.parametrize("strategy_cls", [FedAvgM, FedAdam])
def test_server_state_for_a_model_of_another_size_is_refused(strategy_cls: type[Strategy]) -> None:
    stateful = strategy_cls()
    stateful.aggregate(W, [update([1, 2, 3])])
    with pytest.raises(ValueError, match="3 parameters but the global model has 4"):
        stateful.aggregate(np.zeros(4, np.float32), [update([1, 2, 3, 4])])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"delta": np.zeros(2, np.float32), "num_examples": -1}, "non-negative integer, got -1"),
        ({"delta": np.zeros(2, np.float32), "num_examples": 2.5}, "non-negative integer, got 2.5"),
        (
            {"delta": np.zeros(2, np.float32), "num_examples": True},
            "non-negative integer, got True",
        ),
        ({"delta": np.zeros((2, 2), np.float32), "num_examples": 1}, r"got shape \(2, 2\)"),
        ({"delta": np.array(["a", "b"]), "num_examples": 1}, "vector of numbers, got dtype <U1"),
        ({"delta": np.array([1e300, 0.0]), "num_examples": 1}, "beyond float32's range"),
    ],
)
def test_client_update_refuses_a_malformed_delta_or_weight(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ClientUpdate(**kwargs)
