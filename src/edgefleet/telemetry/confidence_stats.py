"""Mergeable statistics of model confidence values in ``[0, 1]``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["ConfidenceStats"]

DEFAULT_BINS = 20


class ConfidenceStats:
    """Count, mean, variance, extremes and a fixed-bin histogram of confidence values.

    Everything here is a sum, so two summaries merge exactly into the summary of the union.
    Values are clipped into ``[0, 1]``; NaN values are counted apart and left out of the rest.

    Examples
    --------
    >>> stats = ConfidenceStats()
    >>> stats.add_many([0.9, 0.8, 0.7])
    >>> round(stats.mean, 3), stats.count
    (0.8, 3)
    >>> other = ConfidenceStats()
    >>> other.add_many([0.2])
    >>> stats.merge(other)
    >>> round(stats.mean, 3), round(stats.min, 3)
    (0.65, 0.2)
    >>> int(stats.histogram[-1]), int(stats.histogram[4])
    (0, 1)
    """

    def __init__(self, bins: int = DEFAULT_BINS) -> None:
        if bins < 1:
            raise ValueError(f"bins must be at least 1, got {bins}")
        self.histogram = np.zeros(bins, dtype=np.int64)
        self.count = 0
        self.nan_count = 0
        self.sum = 0.0
        self.sum_squares = 0.0
        self.min = math.inf
        self.max = -math.inf

    def add_many(self, values: ArrayLike) -> None:
        """Add a batch of confidence values."""
        arr = np.asarray(values, dtype=np.float64).ravel()
        finite = np.isfinite(arr)
        self.nan_count += int(arr.size - finite.sum())
        arr = np.clip(arr[finite], 0.0, 1.0)
        if arr.size == 0:
            return
        bins = len(self.histogram)
        index = np.minimum((arr * bins).astype(np.int64), bins - 1)
        self.histogram += np.bincount(index, minlength=bins)
        self.count += int(arr.size)
        self.sum += float(arr.sum())
        self.sum_squares += float(np.dot(arr, arr))
        self.min = min(self.min, float(arr.min()))
        self.max = max(self.max, float(arr.max()))

    @property
    def mean(self) -> float:
        """Mean confidence, or NaN when empty."""
        return self.sum / self.count if self.count else math.nan

    @property
    def variance(self) -> float:
        """Population variance, or NaN when empty."""
        if not self.count:
            return math.nan
        return max(self.sum_squares / self.count - self.mean**2, 0.0)

    def merge(self, other: ConfidenceStats) -> None:
        """Add every value summarised by ``other``."""
        if len(other.histogram) != len(self.histogram):
            raise ValueError("cannot merge confidence statistics with different bin counts")
        self.histogram += other.histogram
        self.count += other.count
        self.nan_count += other.nan_count
        self.sum += other.sum
        self.sum_squares += other.sum_squares
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def to_dict(self) -> dict[str, Any]:
        """Serialise to plain JSON types."""
        return {
            "histogram": self.histogram.tolist(),
            "count": self.count,
            "nan_count": self.nan_count,
            "sum": self.sum,
            "sum_squares": self.sum_squares,
            "min": self.min if self.count else None,
            "max": self.max if self.count else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConfidenceStats:
        """Rebuild from :meth:`to_dict` output, checking that it is consistent."""
        try:
            stats = cls(len(data["histogram"]))
            stats.histogram = np.asarray(data["histogram"], dtype=np.int64)
            stats.count = int(data["count"])
            stats.nan_count = int(data["nan_count"])
            stats.sum = float(data["sum"])
            stats.sum_squares = float(data["sum_squares"])
            if stats.count:
                stats.min = float(data["min"])
                stats.max = float(data["max"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not serialised confidence statistics: {exc!r}") from exc
        if int(stats.histogram.sum()) != stats.count or (stats.histogram < 0).any():
            raise ValueError("confidence histogram does not add up to its count")
        return stats
