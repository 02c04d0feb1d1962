"""Cumulative telemetry of one loaded model: counters that only grow, a fixed-bucket histogram.

Telemetry snapshots cover windows (the agent uploads one per window and starts the next), which
suits merging on the server but not Prometheus: a scraped counter must never go down, and a
latency distribution must aggregate across devices. :class:`TelemetryTotals` is what a model
recorded since it was loaded, with latency in the fixed buckets of
:data:`LATENCY_BUCKETS_SECONDS`, the same on every device, so ``sum by (le)`` across a fleet and
``histogram_quantile`` over ``rate()`` are meaningful.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from edgefleet.telemetry.confidence_stats import ConfidenceStats

__all__ = ["LATENCY_BUCKETS_SECONDS", "LatencyHistogram", "TelemetryTotals"]

LATENCY_BUCKETS_SECONDS: tuple[float, ...] = (
    25e-6,
    50e-6,
    100e-6,
    250e-6,
    500e-6,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Upper bounds (inclusive, seconds) of the latency buckets; a last ``+Inf`` bucket follows.

From 25 us (a tiny model on a desktop CPU) to 10 s (a large model on a small board), in
1-2.5-5 steps, so each bucket's bound is within a factor 2.5 of its neighbours.
"""


class LatencyHistogram:
    """Counts of latencies per fixed bucket, and their sum; only ever grows.

    Examples
    --------
    >>> h = LatencyHistogram((0.001, 0.01))
    >>> h.add_many([0.0005, 0.001, 0.002, 5.0])
    >>> h.cumulative()
    [(0.001, 2), (0.01, 3), (inf, 4)]
    >>> h.count, h.sum
    (4, 5.0035)
    """

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS_SECONDS) -> None:
        if list(bounds) != sorted(set(bounds)):
            raise ValueError(f"bucket bounds must be strictly increasing, got {bounds}")
        self.bounds = bounds
        self._bounds = np.asarray(bounds, dtype=np.float64)
        self.counts: NDArray[np.int64] = np.zeros(len(bounds) + 1, dtype=np.int64)
        self.sum = 0.0

    @property
    def count(self) -> int:
        """Number of latencies added."""
        return int(self.counts.sum())

    def add_many(self, seconds: ArrayLike) -> None:
        """Add a batch of latencies in seconds (a value equal to a bound counts in its bucket)."""
        values = np.asarray(seconds, dtype=np.float64).ravel()
        if values.size == 0:
            return
        index = np.searchsorted(self._bounds, values, side="left")
        self.counts += np.bincount(index, minlength=len(self.counts))
        self.sum += float(values.sum())

    def cumulative(self) -> list[tuple[float, int]]:
        """``(le, count of latencies <= le)`` per bucket, ending with ``(inf, count)``."""
        running = np.cumsum(self.counts)
        return [(float(b), int(c)) for b, c in zip((*self.bounds, np.inf), running, strict=True)]

    def copy(self) -> LatencyHistogram:
        """An independent copy."""
        other = LatencyHistogram(self.bounds)
        other.counts = self.counts.copy()
        other.sum = self.sum
        return other


@dataclass
class TelemetryTotals:
    """Everything one model recorded since it was loaded (never reset by telemetry windows).

    ``count`` are successful inferences (the histogram's count), ``errors`` failed while running,
    ``rejected`` were refused for bad inputs; ``confidence`` holds every recorded sample's
    confidence.
    """

    model: str
    version: str
    count: int = 0
    errors: int = 0
    rejected: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    confidence: ConfidenceStats = field(default_factory=ConfidenceStats)
