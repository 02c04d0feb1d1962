"""Range checks for hyperparameters, with messages that name the parameter."""

from __future__ import annotations

from edgefleet.federated._checks import number, positive

__all__ = ["at_least", "fraction", "positive"]


def at_least(name: str, value: float, low: float) -> float:
    """``value`` as a float if it is finite and >= ``low``."""
    checked = number(name, value)
    if checked < low:
        raise ValueError(f"{name} must be >= {low!r}, got {value!r}")
    return checked


def fraction(name: str, value: float, high: float = 1.0) -> float:
    """``value`` as a float if it is in ``[0, high)``."""
    checked = number(name, value)
    if not 0 <= checked < high:
        raise ValueError(f"{name} must be in [0, {high!r}), got {value!r}")
    return checked
