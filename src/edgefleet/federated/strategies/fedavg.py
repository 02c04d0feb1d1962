"""Federated Averaging: the examples-weighted mean of the client updates.

FedAvg (McMahan et al., 2017, "Communication-Efficient Learning of Deep Networks from
Decentralized Data") replaces the global model by the average of the local models, each
weighted by how many examples it trained on. In update form, with ``delta_k = w_k - w`` and
``n_k`` examples on client ``k``::

    w <- w + server_lr * sum_k (n_k / n) * delta_k,    n = sum_k n_k

``server_lr = 1`` is the original algorithm; other values make it FedOpt's "SGD on the
pseudo-gradient" (Reddi et al., 2021).

Parameters
----------
server_lr
    Step size applied to the averaged update; > 0, default 1.

Examples
--------
>>> import numpy as np
>>> w = np.zeros(2, np.float32)
>>> updates = [
...     ClientUpdate(np.array([1.0, 0.0], np.float32), num_examples=30),
...     ClientUpdate(np.array([0.0, 1.0], np.float32), num_examples=10),
... ]
>>> FedAvg().aggregate(w, updates).tolist()
[0.75, 0.25]
>>> FedAvg(server_lr=2.0).aggregate(w, updates).tolist()
[1.5, 0.5]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from edgefleet.federated.params import Vector
from edgefleet.federated.strategies._checks import positive
from edgefleet.federated.strategies.base import (
    ClientUpdate,
    Strategy,
    check_round,
    new_model,
    weighted_mean,
)

__all__ = ["FedAvg"]


class FedAvg(Strategy):
    """Examples-weighted average of the updates, scaled by ``server_lr`` (stateless)."""

    name: ClassVar[str] = "fedavg"
    PARAMETERS: ClassVar[tuple[str, ...]] = ("server_lr",)

    def __init__(self, server_lr: float = 1.0) -> None:
        self.server_lr = positive("server_lr", server_lr)

    def aggregate(self, global_model: Vector, updates: Sequence[ClientUpdate]) -> Vector:
        """``global + server_lr * weighted mean of the deltas``; see :meth:`Strategy.aggregate`."""
        model = check_round(global_model, updates)
        step = weighted_mean(updates, model.size)
        return new_model(model, self.server_lr * step)
