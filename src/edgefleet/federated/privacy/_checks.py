"""Range checks for privacy parameters, with messages that name the parameter."""

from __future__ import annotations

import numpy as np

from edgefleet.federated._checks import number, positive

__all__ = ["count", "open_unit", "positive", "rate"]


def open_unit(name: str, value: float) -> float:
    """``value`` as a float if it is in the open interval ``(0, 1)``."""
    checked = number(name, value)
    if not 0 < checked < 1:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")
    return checked


def rate(name: str, value: float) -> float:
    """``value`` as a float if it is in ``(0, 1]``."""
    checked = number(name, value)
    if not 0 < checked <= 1:
        raise ValueError(f"{name} must be in (0, 1], got {value!r}")
    return checked


def count(name: str, value: int, low: int = 1) -> int:
    """``value`` as an int if it is an integer (Python or numpy) >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}")
    return int(value)
