"""Federated learning math: aggregation strategies, update codecs, local training hooks.

Pure functions and small classes over numpy vectors; no transport, no persistence. The server
and the agent (and the simulator) call them; this package never imports either.

Aggregation strategies live in :mod:`edgefleet.federated.strategies`; their spec parser is
re-exported here as ``strategy_from_spec`` / ``strategy_spec_of``.
"""

from __future__ import annotations

from edgefleet.federated.params import Layout, Params, Vector, flatten, layout_of, unflatten
from edgefleet.federated.strategies import (
    STRATEGIES,
    ClientUpdate,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedProx,
    Median,
    Strategy,
    TrimmedMean,
    proximal_gradient,
    proximal_term,
)
from edgefleet.federated.strategies import from_spec as strategy_from_spec
from edgefleet.federated.strategies import spec_of as strategy_spec_of

__all__ = [
    "STRATEGIES",
    "ClientUpdate",
    "FedAdam",
    "FedAvg",
    "FedAvgM",
    "FedProx",
    "Layout",
    "Median",
    "Params",
    "Strategy",
    "TrimmedMean",
    "Vector",
    "flatten",
    "layout_of",
    "proximal_gradient",
    "proximal_term",
    "strategy_from_spec",
    "strategy_spec_of",
    "unflatten",
]
