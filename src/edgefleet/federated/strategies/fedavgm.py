"""FedAvgM: FedAvg with server momentum.

Hsu, Qi and Brown (2019), "Measuring the Effects of Non-Identical Data Distribution for
Federated Visual Classification", keep a velocity on the server and apply heavy-ball momentum to
the averaged update, which damps the round-to-round swings that non-IID clients cause::

    delta = sum_k (n_k / n) * delta_k
    v <- momentum * v + delta          (v starts at 0)
    w <- w + server_lr * v

With ``momentum = 0`` this is exactly :class:`~edgefleet.federated.strategies.fedavg.FedAvg`.
The velocity is server state: :meth:`FedAvgM.state_dict` carries it across restarts.

Parameters
----------
momentum
    Velocity decay in [0, 1); default 0.9.
server_lr
    Step size applied to the velocity; > 0, default 1.

Examples
--------
>>> import numpy as np
>>> strategy = FedAvgM(momentum=0.5)
>>> w = np.zeros(1, np.float32)
>>> step = [ClientUpdate(np.array([1.0], np.float32), num_examples=1)]
>>> w = strategy.aggregate(w, step); w.tolist()
[1.0]
>>> w = strategy.aggregate(w, step); w.tolist()  # v = 0.5 * 1 + 1
[2.5]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np

from edgefleet.federated.params import Vector
from edgefleet.federated.strategies._checks import fraction, positive
from edgefleet.federated.strategies._state import optional_vector_from_json, vector_to_json
from edgefleet.federated.strategies.base import (
    ClientUpdate,
    JSONValue,
    Strategy,
    check_round,
    new_model,
    to_float32,
    weighted_mean,
)

__all__ = ["FedAvgM"]


class FedAvgM(Strategy):
    """FedAvg with a server-side heavy-ball velocity (state: ``velocity``)."""

    name: ClassVar[str] = "fedavgm"
    PARAMETERS: ClassVar[tuple[str, ...]] = ("momentum", "server_lr")

    def __init__(self, momentum: float = 0.9, server_lr: float = 1.0) -> None:
        self.momentum = fraction("momentum", momentum)
        self.server_lr = positive("server_lr", server_lr)
        self.velocity: Vector | None = None

    def aggregate(self, global_model: Vector, updates: Sequence[ClientUpdate]) -> Vector:
        """Update the velocity and step along it; see :meth:`Strategy.aggregate`."""
        model = check_round(global_model, updates)
        velocity = weighted_mean(updates, model.size)
        if self.velocity is not None:
            if self.velocity.shape != model.shape:
                raise ValueError(
                    f"fedavgm velocity has {self.velocity.size} parameters but the global model "
                    f"has {model.size}; a new model needs a fresh strategy"
                )
            velocity += self.momentum * self.velocity.astype(np.float64)
        result = new_model(model, self.server_lr * velocity)
        self.velocity = to_float32(velocity, "the fedavgm velocity")
        return result

    def _state(self) -> dict[str, JSONValue]:
        return {"velocity": None if self.velocity is None else vector_to_json(self.velocity)}

    def _load_state(self, state: Mapping[str, object]) -> None:
        if set(state) != {"velocity"}:
            raise ValueError(f"fedavgm state needs exactly the key velocity, got {sorted(state)}")
        self.velocity = optional_vector_from_json(state["velocity"], "fedavgm velocity")
