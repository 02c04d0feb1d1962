"""Mergeable latency quantiles with a relative-error guarantee (DDSketch).

The bucketing, quantile and merge logic are the maintained ``ddsketch`` library's. This wrapper
adds what inference telemetry needs around it: vectorised batch inserts (so the hot path only
writes into a buffer), exact count, sum, minimum and maximum, and a plain-JSON serialisation so
sketches from many processes and devices can be merged. A batch's bucket keys are computed at
once and handed to the library only when the sketch is read (or every ``_SETTLE_AT`` values),
one call per distinct key: the library's per-value Python cost stays off the serving path.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
from ddsketch.ddsketch import BaseDDSketch
from ddsketch.mapping import LogarithmicMapping
from ddsketch.store import DenseStore
from numpy.typing import ArrayLike, NDArray

__all__ = ["LatencySketch"]

DEFAULT_RELATIVE_ACCURACY = 0.01
_SETTLE_AT = 1 << 16  # bucket keys buffered before they are handed to the library


class LatencySketch:
    """Quantiles of non-negative values (latencies in seconds) that merge exactly.

    Parameters
    ----------
    relative_accuracy
        Every quantile is within this relative error of a true value of the data
        (0.01 means 1%). Sketches merge only with sketches of the same accuracy.

    Examples
    --------
    >>> sketch = LatencySketch()
    >>> sketch.add_many([0.001] * 90 + [0.010] * 10)
    >>> round(sketch.quantile(0.5), 4), round(sketch.quantile(0.99), 3)
    (0.001, 0.01)
    >>> other = LatencySketch()
    >>> other.add(0.5)
    >>> sketch.merge(other)
    >>> sketch.count, sketch.max
    (101, 0.5)
    >>> LatencySketch.from_dict(sketch.to_dict()).quantile(1.0)
    0.5
    """

    def __init__(self, relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY) -> None:
        self._mapping = LogarithmicMapping(relative_accuracy)
        self._store = DenseStore()
        self._sketch = BaseDDSketch(
            mapping=self._mapping, store=self._store, negative_store=DenseStore(), zero_count=0.0
        )
        self._log_gamma = math.log(self._mapping.gamma)
        self.relative_accuracy = relative_accuracy
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf
        self._pending: list[NDArray[np.int64]] = []  # bucket keys not yet in the sketch
        self._pending_n = 0

    def add(self, value: float) -> None:
        """Add one value."""
        self.add_many(np.asarray([value], dtype=np.float64))

    def add_many(self, values: ArrayLike) -> None:
        """Add many values at once; far cheaper per value than :meth:`add`."""
        arr = np.asarray(values, dtype=np.float64).ravel()
        if arr.size == 0:
            return
        if not np.isfinite(arr).all() or (arr < 0).any():
            raise ValueError("latency values must be finite and non-negative")
        positive = arr[arr > self._mapping.min_possible]
        zeros = arr.size - positive.size
        if zeros:
            self._sketch.add(0.0, float(zeros))
        if positive.size:
            self._pending.append(np.ceil(np.log(positive) / self._log_gamma).astype(np.int64))
            self._pending_n += positive.size
            if self._pending_n >= _SETTLE_AT:
                self._settle()
        self.count += int(arr.size)
        self.sum += float(arr.sum())
        self.min = min(self.min, float(arr.min()))
        self.max = max(self.max, float(arr.max()))

    def _settle(self) -> None:
        """Hand the buffered bucket keys to the library's sketch, one call per distinct key."""
        if not self._pending:
            return
        keys = np.concatenate(self._pending)
        self._pending = []
        self._pending_n = 0
        unique, counts = np.unique(keys, return_counts=True)
        for key, weight in zip(unique.tolist(), counts.tolist(), strict=True):
            # The bucket's representative value maps back to the same bucket.
            self._sketch.add(self._mapping.value(key), float(weight))

    def quantile(self, q: float) -> float:
        """Return the value at quantile ``q`` (0 to 1), or NaN when the sketch is empty."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be between 0 and 1, got {q}")
        if self.count == 0:
            return math.nan
        self._settle()
        value = self._sketch.get_quantile_value(q)
        if value is None:
            return math.nan
        return float(min(max(value, self.min), self.max))

    @property
    def mean(self) -> float:
        """Exact mean, or NaN when empty."""
        return self.sum / self.count if self.count else math.nan

    def merge(self, other: LatencySketch) -> None:
        """Add every value of ``other`` to this sketch."""
        if other.relative_accuracy != self.relative_accuracy:
            raise ValueError(
                f"cannot merge sketches of relative accuracy {self.relative_accuracy} "
                f"and {other.relative_accuracy}"
            )
        if other.count == 0:
            return
        self._settle()
        other._settle()
        self._sketch.merge(other._sketch)
        self.count += other.count
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def copy(self) -> LatencySketch:
        """Return an independent copy."""
        return LatencySketch.from_dict(self.to_dict())

    def _bins(self) -> Iterable[tuple[int, float]]:
        self._settle()
        offset = self._store.offset
        return ((i + offset, c) for i, c in enumerate(self._store.bins) if c)

    def to_dict(self) -> dict[str, Any]:
        """Serialise to plain JSON types."""
        zero = self.count - int(sum(c for _, c in self._bins()))
        return {
            "relative_accuracy": self.relative_accuracy,
            "bins": [[k, c] for k, c in self._bins()],
            "zero_count": zero,
            "count": self.count,
            "sum": self.sum,
            "min": self.min if self.count else None,
            "max": self.max if self.count else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencySketch:
        """Rebuild a sketch from :meth:`to_dict` output, checking that it is consistent."""
        try:
            sketch = cls(float(data["relative_accuracy"]))
            total = 0
            for key, weight in data["bins"]:
                if weight <= 0:
                    raise ValueError(f"bin {key} has a non-positive count {weight}")
                sketch._sketch.add(sketch._mapping.value(int(key)), float(weight))
                total += int(weight)
            zero = int(data["zero_count"])
            if zero:
                sketch._sketch.add(0.0, float(zero))
            count = int(data["count"])
            if total + zero != count:
                raise ValueError(f"bins hold {total + zero} values but count says {count}")
            sketch.count = count
            sketch.sum = float(data["sum"])
            if count:
                sketch.min = float(data["min"])
                sketch.max = float(data["max"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a serialised latency sketch: {exc!r}") from exc
        return sketch
