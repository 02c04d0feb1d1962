from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from edgefleet.federated.params import Vector
from edgefleet.federated.strategies import ClientUpdate, FedAvg, FedAvgM

from .rounds import property_test, sizes, updates_of_size, vectors


@property_test
@given(st.data(), sizes, st.integers(min_value=1, max_value=4), st.sampled_from([0.5, 1.0, 2.0]))
def test_fedavgm_with_zero_momentum_equals_fedavg_in_every_round(
    data: st.DataObject, size: int, round_count: int, server_lr: float
) -> None:
    momentum, plain = FedAvgM(momentum=0.0, server_lr=server_lr), FedAvg(server_lr=server_lr)
    w_momentum = w_plain = data.draw(vectors(size))
    for _ in range(round_count):
        updates = data.draw(updates_of_size(size))
        w_momentum = momentum.aggregate(w_momentum, updates)
        w_plain = plain.aggregate(w_plain, updates)
        np.testing.assert_array_equal(w_momentum, w_plain)


def test_fedavgm_velocity_sums_a_constant_update_geometrically() -> None:
    strategy = FedAvgM(momentum=0.5, server_lr=1.0)
    w: Vector = np.zeros(1, np.float32)
    update = [ClientUpdate(np.array([4.0], np.float32), num_examples=1)]
    positions = []
    for _ in range(4):
        w = strategy.aggregate(w, update)
        positions.append(w.item())
    # velocities 4, 6, 7, 7.5: each is 4 * (1 - 0.5**t) / (1 - 0.5)
    assert positions == [4.0, 10.0, 17.0, 24.5]


def test_fedavgm_moves_further_than_fedavg_when_updates_keep_pointing_the_same_way() -> None:
    update = [ClientUpdate(np.array([1.0], np.float32), num_examples=1)]
    w_momentum = w_plain = np.zeros(1, np.float32)
    momentum, plain = FedAvgM(momentum=0.9), FedAvg()
    for _ in range(3):
        w_momentum = momentum.aggregate(w_momentum, update)
        w_plain = plain.aggregate(w_plain, update)
    assert w_momentum.item() > w_plain.item()
