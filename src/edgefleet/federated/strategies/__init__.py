"""Aggregation strategies: how a round's client updates become the next global model.

Every strategy takes the global model (a flat float32 vector) and the round's
:class:`ClientUpdate` deltas and returns the new global model; server-side state (momentum,
Adam moments) round-trips through ``state_dict()`` / ``load_state_dict()`` as JSON, and
``config_for_client()`` says what devices need (FedProx's ``mu``). :func:`from_spec` builds one
from a CLI spec such as ``fedadam:eta=0.01``; :func:`spec_of` writes the canonical spec back.

Examples
--------
>>> import numpy as np
>>> strategy = from_spec("fedavg")
>>> updates = [ClientUpdate(np.array([2.0], np.float32), num_examples=1)] * 3
>>> strategy.aggregate(np.array([1.0], np.float32), updates).tolist()
[3.0]
"""

from __future__ import annotations

from edgefleet.federated.strategies.base import ClientUpdate, JSONValue, Strategy
from edgefleet.federated.strategies.fedadam import FedAdam
from edgefleet.federated.strategies.fedavg import FedAvg
from edgefleet.federated.strategies.fedavgm import FedAvgM
from edgefleet.federated.strategies.fedprox import FedProx, proximal_gradient, proximal_term
from edgefleet.federated.strategies.robust import Median, TrimmedMean
from edgefleet.federated.strategies.spec import STRATEGIES, from_spec, spec_of

__all__ = [
    "STRATEGIES",
    "ClientUpdate",
    "FedAdam",
    "FedAvg",
    "FedAvgM",
    "FedProx",
    "JSONValue",
    "Median",
    "Strategy",
    "TrimmedMean",
    "from_spec",
    "proximal_gradient",
    "proximal_term",
    "spec_of",
]
