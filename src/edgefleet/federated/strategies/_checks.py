"""Range checks for hyperparameters, with messages that name the parameter."""

from __future__ import annotations

import math

__all__ = ["at_least", "fraction", "positive"]


def _number(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def positive(name: str, value: float) -> float:
    """``value`` as a float if it is finite and > 0."""
    number = _number(name, value)
    if number <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return number


def at_least(name: str, value: float, low: float) -> float:
    """``value`` as a float if it is finite and >= ``low``."""
    number = _number(name, value)
    if number < low:
        raise ValueError(f"{name} must be >= {low!r}, got {value!r}")
    return number


def fraction(name: str, value: float, high: float = 1.0) -> float:
    """``value`` as a float if it is in ``[0, high)``."""
    number = _number(name, value)
    if not 0 <= number < high:
        raise ValueError(f"{name} must be in [0, {high!r}), got {value!r}")
    return number
