from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from edgefleet.federated.params import Vector
from edgefleet.federated.strategies import ClientUpdate, FedAvg

from .rounds import assert_close, property_test, rounds, sizes, vectors, weights


@property_test
@given(st.data(), sizes, st.lists(weights, min_size=1, max_size=8))
def test_fedavg_of_identical_updates_adds_that_update_to_the_global_model(
    data: st.DataObject, size: int, counts: list[int]
) -> None:
    global_model = data.draw(vectors(size))
    delta = data.draw(vectors(size))
    updates = [ClientUpdate(delta.copy(), n) for n in counts]
    expected = (global_model.astype(np.float64) + delta).astype(np.float32)
    assert_close(FedAvg().aggregate(global_model, updates), expected)


@property_test
@given(st.data(), rounds())
def test_fedavg_does_not_depend_on_the_order_of_the_updates(
    data: st.DataObject, round_: tuple[Vector, list[ClientUpdate]]
) -> None:
    global_model, updates = round_
    shuffled = data.draw(st.permutations(updates))
    assert_close(
        FedAvg().aggregate(global_model, shuffled), FedAvg().aggregate(global_model, updates)
    )


@property_test
@given(rounds(), st.integers(min_value=2, max_value=1000))
def test_fedavg_does_not_change_when_every_weight_is_scaled_by_the_same_factor(
    round_: tuple[Vector, list[ClientUpdate]], factor: int
) -> None:
    global_model, updates = round_
    scaled = [ClientUpdate(u.delta, u.num_examples * factor) for u in updates]
    np.testing.assert_array_equal(
        FedAvg().aggregate(global_model, scaled), FedAvg().aggregate(global_model, updates)
    )


def by_hand(global_model: Vector, updates: list[ClientUpdate], server_lr: float = 1.0) -> Vector:
    """``global + server_lr * sum(n_k * delta_k) / sum(n_k)``, coordinate by coordinate."""
    total = sum(u.num_examples for u in updates)
    return np.array(
        [
            float(global_model[i])
            + server_lr * math.fsum(u.num_examples * float(u.delta[i]) for u in updates) / total
            for i in range(global_model.size)
        ],
        np.float32,
    )


@property_test
@given(rounds())
def test_fedavg_is_the_examples_weighted_mean_of_the_updates_added_to_the_global_model(
    round_: tuple[Vector, list[ClientUpdate]],
) -> None:
    global_model, updates = round_
    assert_close(FedAvg().aggregate(global_model, updates), by_hand(global_model, updates))


def test_fedavg_weights_a_small_hand_computed_example() -> None:
    updates = [
        ClientUpdate(np.array([3.0, 0.0], np.float32), num_examples=1),
        ClientUpdate(np.array([0.0, 6.0], np.float32), num_examples=2),
    ]
    new = FedAvg().aggregate(np.array([10.0, 10.0], np.float32), updates)
    assert new.tolist() == [11.0, 14.0]


@property_test
@given(rounds(), st.floats(min_value=0.01, max_value=10.0))
def test_fedavg_server_lr_scales_the_averaged_step(
    round_: tuple[Vector, list[ClientUpdate]], server_lr: float
) -> None:
    global_model, updates = round_
    assert_close(
        FedAvg(server_lr=server_lr).aggregate(global_model, updates),
        by_hand(global_model, updates, server_lr),
    )


def test_an_update_with_zero_examples_has_no_influence() -> None:
    counted = ClientUpdate(np.array([1.0], np.float32), num_examples=5)
    empty = ClientUpdate(np.array([500.0], np.float32), num_examples=0)
    assert FedAvg().aggregate(np.zeros(1, np.float32), [counted, empty]).tolist() == [1.0]


def test_fedavg_returns_a_new_float32_vector_and_leaves_its_inputs_alone() -> None:
    global_model = np.array([1.0, 2.0], np.float32)
    delta = np.array([0.5, 0.5], np.float32)
    new = FedAvg().aggregate(global_model, [ClientUpdate(delta, 3)])
    assert new.dtype == np.float32
    assert new is not global_model
    assert global_model.tolist() == [1.0, 2.0]
    assert delta.tolist() == [0.5, 0.5]


def test_client_update_converts_its_delta_to_float32() -> None:
    update = ClientUpdate(np.array([0.25, 1.0]), num_examples=4)  # a float64 delta
    assert update.delta.dtype == np.float32
    assert update.delta.tolist() == [0.25, 1.0]


def test_client_update_accepts_a_numpy_integer_count_and_stores_a_python_int() -> None:
    count = np.int64(4)  # e.g. read from an array of per-device counts
    update = ClientUpdate(np.zeros(1, np.float32), num_examples=count)  # type: ignore[arg-type]
    assert type(update.num_examples) is int
    assert update.num_examples == 4
