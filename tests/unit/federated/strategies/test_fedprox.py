from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgefleet.federated.params import Vector
from edgefleet.federated.strategies import (
    ClientUpdate,
    FedAvg,
    FedProx,
    proximal_gradient,
    proximal_term,
)

from .rounds import property_test, rounds, sizes, vectors


@property_test
@given(rounds(), st.floats(min_value=0.0, max_value=10.0))
def test_fedprox_aggregates_exactly_like_fedavg(
    round_: tuple[Vector, list[ClientUpdate]], mu: float
) -> None:
    global_model, updates = round_
    np.testing.assert_array_equal(
        FedProx(mu=mu).aggregate(global_model, updates), FedAvg().aggregate(global_model, updates)
    )


def test_fedprox_tells_devices_its_mu_as_json() -> None:
    config = FedProx(mu=0.25).config_for_client()
    assert config == {"mu": 0.25}
    assert json.loads(json.dumps(config)) == config


def test_strategies_without_device_side_terms_send_an_empty_client_config() -> None:
    assert FedAvg().config_for_client() == {}


@property_test
@given(st.data(), sizes, st.floats(min_value=0.0, max_value=10.0))
def test_proximal_gradient_is_mu_times_the_distance_from_the_global_model(
    data: st.DataObject, size: int, mu: float
) -> None:
    w, w_global = data.draw(vectors(size)), data.draw(vectors(size))
    gradient = proximal_gradient(w, w_global, mu)
    assert gradient.dtype == np.float32
    expected = mu * (w.astype(np.float64) - w_global)
    np.testing.assert_allclose(gradient, expected, rtol=1e-5, atol=1e-6)


def test_proximal_gradient_is_the_derivative_of_proximal_term() -> None:
    rng = np.random.default_rng(0)
    w, w_global = rng.normal(size=5).astype(np.float32), rng.normal(size=5).astype(np.float32)
    mu, h = 0.3, 1e-2
    numeric = []
    for i in range(5):
        up, down = w.copy(), w.copy()
        up[i] += h
        down[i] -= h
        numeric.append(
            (proximal_term(up, w_global, mu) - proximal_term(down, w_global, mu)) / (2 * h)
        )
    np.testing.assert_allclose(proximal_gradient(w, w_global, mu), numeric, rtol=1e-3, atol=1e-4)


def test_proximal_term_is_zero_at_the_global_model_and_grows_with_distance() -> None:
    w_global = np.array([1.0, 2.0], np.float32)
    assert proximal_term(w_global, w_global, mu=1.0) == 0.0
    assert proximal_term(w_global + 1, w_global, mu=1.0) == 1.0
    assert proximal_term(w_global + 2, w_global, mu=1.0) == 4.0


def test_proximal_helpers_refuse_mismatched_shapes_and_negative_mu() -> None:
    with pytest.raises(ValueError, match=r"shape \(3,\) do not match the global model's \(2,\)"):
        proximal_gradient(np.zeros(3, np.float32), np.zeros(2, np.float32), 0.1)
    with pytest.raises(ValueError, match="mu must be >= 0"):
        proximal_term(np.zeros(2, np.float32), np.zeros(2, np.float32), -0.1)


def test_fedprox_refuses_a_negative_mu() -> None:
    with pytest.raises(ValueError, match=r"mu must be >= 0\.0, got -1"):
        FedProx(mu=-1)
