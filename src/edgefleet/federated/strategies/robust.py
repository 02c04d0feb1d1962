"""Byzantine-robust aggregation: coordinate-wise trimmed mean and coordinate-wise median.

A weighted mean follows any single update as far as it goes: one broken or poisoned device
sending ``1e6`` everywhere moves the global model by ``1e6 * n_k / n``. Yin et al. (2018),
"Byzantine-Robust Distributed Learning: Towards Optimal Statistical Rates", aggregate each
coordinate with an order statistic instead:

- :class:`TrimmedMean` sorts each coordinate's values across the updates, drops the
  ``floor(beta * K)`` smallest and largest of the ``K`` values, and averages the rest;
- :class:`Median` takes each coordinate's median.

So long as at most ``floor(beta * K)`` updates (trimmed mean) or fewer than half of them
(median) are bad, every coordinate of the aggregate lies within the range of the honest
updates' values.

Both are **unweighted**: a device could claim any ``num_examples``, so weighting by it would
hand an attacker the aggregate. An update with ``num_examples = 0`` trained on nothing and is
left out; every other update counts once. Then ``w <- w + server_lr * aggregate``.

Parameters
----------
beta
    (TrimmedMean) fraction trimmed from each side, in [0, 0.5); default 0.2. 0 is the plain
    unweighted mean.
server_lr
    Step size applied to the aggregate; > 0, default 1.

Examples
--------
>>> import numpy as np
>>> w = np.zeros(1, np.float32)
>>> honest = [ClientUpdate(np.array([x], np.float32), 1) for x in (1.0, 2.0, 3.0, 4.0)]
>>> poisoned = honest + [ClientUpdate(np.array([1e6], np.float32), 1)]
>>> TrimmedMean(beta=0.2).aggregate(w, poisoned).tolist()  # drops 1.0 and 1e6
[3.0]
>>> Median().aggregate(w, poisoned).tolist()
[3.0]
>>> from edgefleet.federated.strategies import FedAvg
>>> FedAvg().aggregate(w, poisoned).tolist()  # for contrast
[200002.0]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from edgefleet.federated.params import Vector
from edgefleet.federated.strategies._checks import fraction, positive
from edgefleet.federated.strategies.base import ClientUpdate, Strategy, check_round, new_model

__all__ = ["Median", "TrimmedMean"]


def _stacked(updates: Sequence[ClientUpdate]) -> NDArray[np.float32]:
    """The deltas of the updates with examples, one row each (validated by ``check_round``)."""
    return np.stack([u.delta for u in updates if u.num_examples > 0])


class TrimmedMean(Strategy):
    """Coordinate-wise mean after dropping the ``beta`` fraction at each end (stateless)."""

    name: ClassVar[str] = "trimmed_mean"
    PARAMETERS: ClassVar[tuple[str, ...]] = ("beta", "server_lr")

    def __init__(self, beta: float = 0.2, server_lr: float = 1.0) -> None:
        self.beta = fraction("beta", beta, high=0.5)
        self.server_lr = positive("server_lr", server_lr)

    def trimmed_per_side(self, count: int) -> int:
        """How many values are dropped at each end of a coordinate among ``count`` updates."""
        return math.floor(self.beta * count)

    def aggregate(self, global_model: Vector, updates: Sequence[ClientUpdate]) -> Vector:
        """``global + server_lr * trimmed mean``; see :meth:`Strategy.aggregate`."""
        model = check_round(global_model, updates)
        deltas = _stacked(updates)
        k = self.trimmed_per_side(len(deltas))
        kept = np.sort(deltas, axis=0)[k : len(deltas) - k]
        return new_model(model, self.server_lr * kept.mean(axis=0, dtype=np.float64))


class Median(Strategy):
    """Coordinate-wise median of the updates (stateless)."""

    name: ClassVar[str] = "median"
    PARAMETERS: ClassVar[tuple[str, ...]] = ("server_lr",)

    def __init__(self, server_lr: float = 1.0) -> None:
        self.server_lr = positive("server_lr", server_lr)

    def aggregate(self, global_model: Vector, updates: Sequence[ClientUpdate]) -> Vector:
        """``global + server_lr * coordinate-wise median``; see :meth:`Strategy.aggregate`."""
        model = check_round(global_model, updates)
        median = np.median(_stacked(updates).astype(np.float64), axis=0)
        return new_model(model, self.server_lr * median)
