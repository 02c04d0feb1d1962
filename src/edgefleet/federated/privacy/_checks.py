"""Range checks for privacy parameters, with messages that name the parameter."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["count", "open_unit", "positive", "rate"]


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


def open_unit(name: str, value: float) -> float:
    """``value`` as a float if it is in the open interval ``(0, 1)``."""
    number = _number(name, value)
    if not 0 < number < 1:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")
    return number


def rate(name: str, value: float) -> float:
    """``value`` as a float if it is in ``(0, 1]``."""
    number = _number(name, value)
    if not 0 < number <= 1:
        raise ValueError(f"{name} must be in (0, 1], got {value!r}")
    return number


def count(name: str, value: int, low: int = 1) -> int:
    """``value`` as an int if it is an integer (Python or numpy) >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}")
    return int(value)
