"""Strategies by name: parse CLI specs such as ``fedavgm:momentum=0.9`` and write them back.

A spec is a strategy name, optionally followed by ``:`` and comma-separated ``name=value``
hyperparameters; hyperparameters left out take their defaults. :func:`spec_of` writes the
canonical spec: every hyperparameter, in the strategy's order, as Python's shortest float repr,
so a stored spec still means the same strategy if a default changes later.

=================  ============================================
spec name          hyperparameters (defaults)
=================  ============================================
``fedavg``         ``server_lr=1``
``fedavgm``        ``momentum=0.9, server_lr=1``
``fedadam``        ``eta=0.01, beta1=0.9, beta2=0.99, tau=1e-3``
``fedprox``        ``mu=0.01, server_lr=1``
``trimmed_mean``   ``beta=0.2, server_lr=1``
``median``         ``server_lr=1``
=================  ============================================

Examples
--------
>>> strategy = from_spec("fedavgm:momentum=0.5")
>>> strategy
FedAvgM(momentum=0.5, server_lr=1.0)
>>> spec_of(strategy)
'fedavgm:momentum=0.5,server_lr=1.0'
>>> from_spec("fedavgm:momentum=1.5")
Traceback (most recent call last):
...
ValueError: strategy spec 'fedavgm:momentum=1.5': momentum must be in [0, 1.0), got 1.5
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType

from edgefleet.federated.strategies.base import Strategy
from edgefleet.federated.strategies.fedadam import FedAdam
from edgefleet.federated.strategies.fedavg import FedAvg
from edgefleet.federated.strategies.fedavgm import FedAvgM
from edgefleet.federated.strategies.fedprox import FedProx
from edgefleet.federated.strategies.robust import Median, TrimmedMean

__all__ = ["STRATEGIES", "from_spec", "spec_of"]

STRATEGIES: Mapping[str, type[Strategy]] = MappingProxyType(
    {cls.name: cls for cls in (FedAvg, FedAvgM, FedAdam, FedProx, TrimmedMean, Median)}
)
"""Every strategy class by its spec name."""


def from_spec(text: str) -> Strategy:
    """A new strategy (with fresh state) from a spec such as ``fedadam:eta=0.01,tau=1e-3``.

    Raises
    ------
    ValueError
        Naming the spec and its bad part: an unknown strategy or parameter, a malformed or
        repeated ``name=value``, a value that is not a finite number, or one out of range.
    """
    if not isinstance(text, str):
        raise ValueError(f"a strategy spec must be a string, got {type(text).__name__}")
    name, colon, rest = text.strip().partition(":")
    name = name.strip()
    try:
        cls = STRATEGIES.get(name)
        if cls is None:
            known = ", ".join(sorted(STRATEGIES))
            what = f"unknown strategy {name!r}" if name else "no strategy name"
            raise ValueError(f"{what} (known: {known})")
        values = _parameters(cls, rest) if colon else {}
        return cls(**values)
    except ValueError as exc:
        raise ValueError(f"strategy spec {text!r}: {exc}") from None


def spec_of(strategy: Strategy) -> str:
    """The canonical spec of ``strategy``: ``from_spec(spec_of(s))`` rebuilds it."""
    if STRATEGIES.get(strategy.name) is not type(strategy):
        raise ValueError(f"{type(strategy).__name__} is not a registered strategy")
    params = ",".join(f"{k}={v!r}" for k, v in strategy.hyperparameters().items())
    return f"{strategy.name}:{params}" if params else strategy.name


def _parameters(cls: type[Strategy], text: str) -> dict[str, float]:
    takes = ", ".join(cls.PARAMETERS) or "none"
    if not text.strip():
        raise ValueError(f"nothing after ':' (parameters of {cls.name}: {takes})")
    values: dict[str, float] = {}
    for part in text.split(","):
        key, equals, raw = (s.strip() for s in part.partition("="))
        if not part.strip():
            raise ValueError("empty parameter (a stray ',')")
        if not equals or not key:
            raise ValueError(f"{part.strip()!r} is not name=value")
        if key not in cls.PARAMETERS:
            raise ValueError(f"unknown parameter {key!r} for {cls.name} (it takes: {takes})")
        if key in values:
            raise ValueError(f"parameter {key!r} given twice")
        try:
            number = float(raw)
        except ValueError:
            raise ValueError(f"{key}={raw!r} is not a number") from None
        if not math.isfinite(number):
            raise ValueError(f"{key}={raw!r} is not a finite number")
        values[key] = number
    return values
