"""Tolerant readers for report.json values: a missing or mistyped field reads as None or empty.

Examples
--------
>>> num({"a": 1, "b": True, "c": "x", "d": float("nan")}, "a"), num({"b": True}, "b")
(1.0, None)
>>> mapping({"m": [1]}, "m"), seq({"s": [1, 2]}, "s"), text({"t": None}, "t", "-")
({}, [1, 2], '-')
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["mapping", "maps", "num", "points", "seq", "text"]


def num(obj: Any, key: str) -> float | None:
    """``obj[key]`` as a finite float, or None when absent, not a number, or not finite."""
    value = obj.get(key) if isinstance(obj, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def mapping(obj: Any, key: str) -> Mapping[str, Any]:
    """``obj[key]`` when it is a mapping, else an empty one."""
    value = obj.get(key) if isinstance(obj, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def seq(obj: Any, key: str) -> list[Any]:
    """``obj[key]`` when it is a list, else an empty list."""
    value = obj.get(key) if isinstance(obj, Mapping) else None
    return list(value) if isinstance(value, list | tuple) else []


def maps(obj: Any, key: str) -> list[Mapping[str, Any]]:
    """The mappings in the list ``obj[key]`` (other items skipped)."""
    return [item for item in seq(obj, key) if isinstance(item, Mapping)]


def text(obj: Any, key: str, default: str = "") -> str:
    """``obj[key]`` as a string, or ``default`` when absent or None."""
    value = obj.get(key) if isinstance(obj, Mapping) else None
    return default if value is None else str(value)


def points(rows: Sequence[Mapping[str, Any]], x: str, y: str) -> list[tuple[float, float]]:
    """(x, y) pairs from rows where both fields are numbers."""
    out = []
    for row in rows:
        px, py = num(row, x), num(row, y)
        if px is not None and py is not None:
            out.append((px, py))
    return out
