from __future__ import annotations

import json
import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from edgefleet.federated.params import Vector
from edgefleet.federated.strategies import ClientUpdate, FedAdam, FedAvg, from_spec, spec_of

from .rounds import property_test, sizes, updates_of_size, vectors

hyperparameters = st.fixed_dictionaries(
    {
        "eta": st.floats(min_value=1e-4, max_value=1.0),
        "beta1": st.floats(min_value=0.0, max_value=0.99),
        "beta2": st.floats(min_value=0.0, max_value=0.999),
        "tau": st.floats(min_value=1e-6, max_value=1.0),
    }
)


@property_test
@given(
    st.data(),
    hyperparameters,
    sizes,
    st.integers(min_value=0, max_value=3),
    st.integers(min_value=1, max_value=3),
)
def test_fedadam_restored_from_its_json_state_continues_exactly_as_if_never_stopped(
    data: st.DataObject,
    params: dict[str, float],
    size: int,
    rounds_before: int,
    rounds_after: int,
) -> None:
    w: Vector = data.draw(vectors(size))
    plan = [data.draw(updates_of_size(size)) for _ in range(rounds_before + rounds_after)]
    uninterrupted = FedAdam(**params)
    first_life = FedAdam(**params)
    w_uninterrupted = w_restarted = w
    for updates in plan[:rounds_before]:
        w_uninterrupted = uninterrupted.aggregate(w_uninterrupted, updates)
        w_restarted = first_life.aggregate(w_restarted, updates)
    stored_spec, stored_state = spec_of(first_life), json.dumps(first_life.state_dict())
    del first_life  # the server restarts: only the spec and the JSON state survive

    second_life = from_spec(stored_spec)
    second_life.load_state_dict(json.loads(stored_state))
    for updates in plan[rounds_before:]:
        w_uninterrupted = uninterrupted.aggregate(w_uninterrupted, updates)
        w_restarted = second_life.aggregate(w_restarted, updates)
        np.testing.assert_array_equal(w_restarted, w_uninterrupted)
    assert second_life.state_dict() == uninterrupted.state_dict()


def test_fedadam_first_and_second_steps_follow_the_paper() -> None:
    eta, beta1, beta2, tau = 0.1, 0.9, 0.99, 1e-3
    strategy = FedAdam(eta=eta, beta1=beta1, beta2=beta2, tau=tau)
    d1, d2 = 2.0, -1.0
    w1 = strategy.aggregate(np.zeros(1, np.float32), [ClientUpdate(np.array([d1], np.float32), 1)])
    m1 = (1 - beta1) * d1
    v1 = beta2 * tau**2 + (1 - beta2) * d1**2
    assert math.isclose(w1.item(), eta * m1 / (math.sqrt(v1) + tau), rel_tol=1e-6)

    w2 = strategy.aggregate(w1, [ClientUpdate(np.array([d2], np.float32), 1)])
    m2 = beta1 * m1 + (1 - beta1) * d2
    v2 = beta2 * v1 + (1 - beta2) * d2**2
    assert math.isclose(w2.item(), w1.item() + eta * m2 / (math.sqrt(v2) + tau), rel_tol=1e-6)


def test_fedadam_pseudo_gradient_is_the_examples_weighted_mean() -> None:
    updates = [
        ClientUpdate(np.array([4.0], np.float32), num_examples=3),
        ClientUpdate(np.array([-4.0], np.float32), num_examples=1),
    ]
    single = [ClientUpdate(np.array([2.0], np.float32), num_examples=1)]
    w0 = np.zeros(1, np.float32)
    assert FedAdam().aggregate(w0, updates).item() == FedAdam().aggregate(w0, single).item()


def test_fedadam_steps_about_eta_per_coordinate_whatever_the_update_scale() -> None:
    strategy = FedAdam(eta=0.01, beta1=0.9, beta2=0.99, tau=1e-9)
    delta = np.array([1e-3, 1.0, 1e3], np.float32)
    step = strategy.aggregate(np.zeros(3, np.float32), [ClientUpdate(delta, 1)])
    np.testing.assert_allclose(step, [0.01, 0.01, 0.01], rtol=1e-3)
    plain = FedAvg().aggregate(np.zeros(3, np.float32), [ClientUpdate(delta, 1)])
    assert plain.tolist() == delta.tolist()


def test_a_fresh_fedadam_stores_null_moments() -> None:
    state = FedAdam().state_dict()
    assert state == {"strategy": "fedadam", "version": 1, "m": None, "v": None}
