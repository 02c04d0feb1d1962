"""FedProx: FedAvg aggregation, with a proximal term that keeps local training near the global.

Li et al. (2020), "Federated Optimization in Heterogeneous Networks", change what each device
minimises, not how the server aggregates. Device ``k`` starting from the global model ``w_g``
minimises::

    F_k(w) + mu / 2 * ||w - w_g||^2

which bounds how far devices with skewed data (or more local steps) drift from the global
model. The server side is plain :class:`~edgefleet.federated.strategies.fedavg.FedAvg`; the
strategy carries ``mu`` and hands it to devices through :meth:`FedProx.config_for_client`.

On the device the term is applied during local training:

- the torch trainer adds ``mu / 2 * ||w - w_g||^2`` to its loss (:func:`proximal_term` is the
  same value in numpy) and lets autograd differentiate it;
- a numpy trainer adds :func:`proximal_gradient`, ``mu * (w - w_g)``, to each gradient.

With ``mu = 0`` FedProx is FedAvg.

Parameters
----------
mu
    Proximal coefficient, >= 0; default 0.01 (the paper tries 0.001 to 1).
server_lr
    Step size applied to the averaged update; > 0, default 1.

Examples
--------
>>> import numpy as np
>>> strategy = FedProx(mu=0.1)
>>> strategy.config_for_client()
{'mu': 0.1}
>>> w_global = np.zeros(2, np.float32)
>>> w = np.array([1.0, -2.0], np.float32)
>>> proximal_gradient(w, w_global, mu=0.5).tolist()
[0.5, -1.0]
>>> proximal_term(w, w_global, mu=0.5)
1.25
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from edgefleet.federated.params import Vector
from edgefleet.federated.strategies._checks import at_least
from edgefleet.federated.strategies.base import JSONValue
from edgefleet.federated.strategies.fedavg import FedAvg

__all__ = ["FedProx", "proximal_gradient", "proximal_term"]


class FedProx(FedAvg):
    """FedAvg on the server; ``mu`` for the devices' proximal term (stateless)."""

    name: ClassVar[str] = "fedprox"
    PARAMETERS: ClassVar[tuple[str, ...]] = ("mu", "server_lr")

    def __init__(self, mu: float = 0.01, server_lr: float = 1.0) -> None:
        super().__init__(server_lr=server_lr)
        self.mu = at_least("mu", mu, 0.0)

    def config_for_client(self) -> dict[str, JSONValue]:
        """``{"mu": mu}``: the coefficient of the proximal term devices add to their loss."""
        return {"mu": self.mu}


def _difference(w: Vector, w_global: Vector, mu: float) -> Vector:
    at_least("mu", mu, 0.0)
    if np.shape(w) != np.shape(w_global):
        raise ValueError(
            f"local weights of shape {np.shape(w)} do not match the global model's "
            f"{np.shape(w_global)}"
        )
    return np.subtract(w, w_global, dtype=np.float32)


def proximal_gradient(w: Vector, w_global: Vector, mu: float) -> Vector:
    """``mu * (w - w_global)``: the gradient of the proximal term, to add to the local gradient.

    Raises
    ------
    ValueError
        ``mu`` is negative or not finite, or the shapes differ.
    """
    result: Vector = (mu * _difference(w, w_global, mu)).astype(np.float32)
    return result


def proximal_term(w: Vector, w_global: Vector, mu: float) -> float:
    """``mu / 2 * ||w - w_global||^2``: the proximal term's value, as added to the local loss.

    Raises
    ------
    ValueError
        ``mu`` is negative or not finite, or the shapes differ.
    """
    diff = _difference(w, w_global, mu).astype(np.float64)
    return float(mu / 2 * np.dot(diff, diff))
