"""FedAdam: Adam on the server, with the averaged client update as the (negative) gradient.

Reddi et al. (2021), "Adaptive Federated Optimization" (Algorithm 2), treat the averaged update
``delta`` as a pseudo-gradient and give the server an adaptive optimiser. FedAdam keeps Adam's
two moment vectors on the server::

    delta = sum_k (n_k / n) * delta_k
    m <- beta1 * m + (1 - beta1) * delta              (m starts at 0)
    v <- beta2 * v + (1 - beta2) * delta**2           (v starts at tau**2)
    w <- w + eta * m / (sqrt(v) + tau)

As in the paper there is no bias correction, ``v`` starts at ``tau**2`` (the paper's
``v_{-1} >= tau**2``), and ``tau`` bounds the adaptivity: the smaller it is, the closer each
coordinate's step comes to ``eta`` times the sign of its running average update. The paper
averages the updates uniformly over the sampled clients; here they are weighted by
``num_examples``, as in every weighted strategy of this package (equal counts give the paper's).

``m`` and ``v`` are server state: :meth:`FedAdam.state_dict` stores them (as float32, the dtype
they are kept in between rounds, so a restored strategy continues bit for bit).

Parameters
----------
eta
    Server learning rate; > 0, default 0.01 (the paper tunes it per task, often in 1e-3..1).
beta1
    First-moment decay in [0, 1); default 0.9.
beta2
    Second-moment decay in [0, 1); default 0.99.
tau
    Adaptivity floor added to ``sqrt(v)``; > 0, default 1e-3.

Examples
--------
>>> import numpy as np
>>> strategy = FedAdam(eta=0.1, beta1=0.9, beta2=0.99, tau=1e-3)
>>> w = np.zeros(2, np.float32)
>>> update = ClientUpdate(np.array([2.0, -0.5], np.float32), num_examples=5)
>>> w = strategy.aggregate(w, [update])
>>> [round(x, 4) for x in w.tolist()]  # both about eta: the step ignores the update's scale
[0.0995, -0.098]
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

__all__ = ["FedAdam"]


class FedAdam(Strategy):
    """Server-side Adam on the averaged update (state: moments ``m`` and ``v``)."""

    name: ClassVar[str] = "fedadam"
    PARAMETERS: ClassVar[tuple[str, ...]] = ("eta", "beta1", "beta2", "tau")

    def __init__(
        self, eta: float = 0.01, beta1: float = 0.9, beta2: float = 0.99, tau: float = 1e-3
    ) -> None:
        self.eta = positive("eta", eta)
        self.beta1 = fraction("beta1", beta1)
        self.beta2 = fraction("beta2", beta2)
        self.tau = positive("tau", tau)
        self.m: Vector | None = None
        self.v: Vector | None = None

    def aggregate(self, global_model: Vector, updates: Sequence[ClientUpdate]) -> Vector:
        """Update the moments and take one Adam step; see :meth:`Strategy.aggregate`."""
        model = check_round(global_model, updates)
        delta = weighted_mean(updates, model.size)
        if self.m is None or self.v is None:
            m_prev = np.zeros(model.size, np.float64)
            v_prev = np.full(model.size, self.tau**2, np.float64)
        elif self.m.shape != model.shape:
            raise ValueError(
                f"fedadam moments have {self.m.size} parameters but the global model has "
                f"{model.size}; a new model needs a fresh strategy"
            )
        else:
            m_prev, v_prev = self.m.astype(np.float64), self.v.astype(np.float64)
        m = to_float32(self.beta1 * m_prev + (1 - self.beta1) * delta, "fedadam m")
        v = to_float32(self.beta2 * v_prev + (1 - self.beta2) * delta**2, "fedadam v")
        step = self.eta * m.astype(np.float64) / (np.sqrt(v.astype(np.float64)) + self.tau)
        result = new_model(model, step)
        self.m, self.v = m, v
        return result

    def _state(self) -> dict[str, JSONValue]:
        if self.m is None or self.v is None:
            return {"m": None, "v": None}
        return {"m": vector_to_json(self.m), "v": vector_to_json(self.v)}

    def _load_state(self, state: Mapping[str, object]) -> None:
        if set(state) != {"m", "v"}:
            raise ValueError(f"fedadam state needs exactly the keys m, v, got {sorted(state)}")
        m = optional_vector_from_json(state["m"], "fedadam m")
        v = optional_vector_from_json(state["v"], "fedadam v")
        if (m is None) != (v is None) or (m is not None and v is not None and m.shape != v.shape):
            raise ValueError("fedadam m and v must both be null or both vectors of one size")
        if v is not None and (v < 0).any():
            raise ValueError("fedadam v (a running mean of squares) cannot be negative")
        self.m, self.v = m, v
