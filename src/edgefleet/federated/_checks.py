"""Range checks shared by the federated packages, with messages that name the parameter."""

from __future__ import annotations

import math

__all__ = ["number", "positive"]


def number(name: str, value: float) -> float:
    """``value`` as a float if it is a finite int or float (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def positive(name: str, value: float) -> float:
    """``value`` as a float if it is finite and > 0."""
    result = number(name, value)
    if result <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return result
