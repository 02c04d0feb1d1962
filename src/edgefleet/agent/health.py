"""The health watch: judge a newly activated model against the one it replaced.

During the watch period (``period_s``) a model fails on either rule:

**Errors.** Too many of its calls fail while running: more than ``error_rate_limit`` of them
(bad inputs refused by validation are the caller's fault and do not count), once
``min_requests`` calls were seen; at the end of the period the rule applies to whatever calls
there were.

**Latency.** The model is consistently slower than the previous one. A tail quantile of a few
hundred sub-millisecond calls on a shared CPU measures the scheduler, not the model: one
preemption of a few milliseconds is the p99 of a hundred calls. So the rule compares medians,
with three safeguards against noise:

1. *Enough samples, on both sides.* The new model's calls are judged in consecutive windows of
   at least ``latency_window`` calls; the previous model must have served as many.
2. *A confidence bound and a margin.* A window is slow only when the lower confidence bound of
   its median is over ``latency_factor`` times the upper bound of the previous model's median
   *and* over it by ``latency_margin_s``. The bounds are order statistics (distribution-free):
   with ``n`` calls, the quantile ``1/2 - z/(2 sqrt n)`` of the sample is below the true median
   with probability about ``Phi(z)`` (``z = 2``: 97.7%), so a window is called slow only when,
   with that confidence, more than half of its calls are slower than the threshold. Preemption
   delays a minority of short calls; it does not move a median by a millisecond.
3. *Persistence.* ``latency_windows`` consecutive slow windows are needed; one window that is
   not slow starts the count again. A burst of load (another process, a cold cache after the
   swap) does not roll back a model.

A real regression passes all three at once: a model twenty times slower has every window's
median far over the threshold. Judging needs ``latency_window * latency_windows`` calls of the
new model during the watch (150 by default).

A model that served too few calls to judge is kept at the end of the period, and the verdict
says so ("no data" is reported as inconclusive, it is never a pass the server could count).

>>> from edgefleet.telemetry import LatencySketch, TelemetrySnapshot
>>> def snap(calls, seconds, errors=0):
...     latency = LatencySketch()
...     latency.add_many([seconds] * calls)
...     return TelemetrySnapshot("m", "2", 0.0, 1.0, count=calls, errors=errors, latency=latency)
>>> watch = HealthWatch(HealthPolicy(period_s=60, min_requests=10), baseline=None, started_at=0)
>>> watch.evaluate(snap(5, 0.001, errors=15), now=1.0).status
'failed'
>>> before = snap(500, 0.0002)  # the previous model: 0.2 ms
>>> watch = HealthWatch(HealthPolicy(latency_window=50, latency_windows=3), before, 0.0)
>>> verdicts = [watch.evaluate(snap(n, 0.004), now=1.0) for n in (50, 100, 150)]  # 20x
>>> [verdict.status for verdict in verdicts]
['watching', 'watching', 'failed']
>>> verdicts[-1].reason[:48]
'median latency 4.000 ms in 3 consecutive windows'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from edgefleet.telemetry import LatencySketch, TelemetrySnapshot

__all__ = ["CONFIDENCE_Z", "HealthPolicy", "HealthVerdict", "HealthWatch", "median_bounds"]

CONFIDENCE_Z = 2.0
"""Standard normal quantile of the latency rule's one-sided confidence (97.7%)."""


@dataclass(frozen=True)
class HealthPolicy:
    """When a newly activated model is rolled back.

    Attributes
    ----------
    period_s
        How long the model is watched (seconds).
    error_rate_limit
        Largest tolerated share of calls failing while running.
    latency_factor
        Largest tolerated ratio of the new median latency to the previous model's.
    latency_margin_s
        A slow window must also be slower than the previous median by this much (seconds).
    min_requests
        Calls needed before the error rule judges.
    latency_window
        Calls in one latency window (at least); the previous model needs as many.
    latency_windows
        Consecutive slow windows that roll the model back.
    """

    period_s: float = 60.0
    error_rate_limit: float = 0.05
    latency_factor: float = 3.0
    latency_margin_s: float = 0.001
    min_requests: int = 20
    latency_window: int = 50
    latency_windows: int = 3


@dataclass(frozen=True)
class HealthVerdict:
    """The state of a watch: still ``watching``, ``passed`` or ``failed``, and why."""

    status: Literal["watching", "passed", "failed"]
    reason: str = ""

    @property
    def done(self) -> bool:
        """Whether the watch is over."""
        return self.status != "watching"


def median_bounds(sketch: LatencySketch, z: float = CONFIDENCE_Z) -> tuple[float, float]:
    """Lower and upper one-sided confidence bounds of the median of ``sketch``'s values.

    Order statistics: with ``n`` values, the median's bound is the sample quantile
    ``1/2 -+ z / (2 sqrt n)``, which needs no assumption about the distribution.

    >>> sketch = LatencySketch()
    >>> sketch.add_many([0.001 * (i + 1) for i in range(100)])  # 1 ms .. 100 ms
    >>> low, high = median_bounds(sketch)
    >>> round(low * 1e3), round(high * 1e3)
    (40, 60)
    """
    half_width = z / (2.0 * math.sqrt(max(sketch.count, 1)))
    return (
        sketch.quantile(max(0.0, 0.5 - half_width)),
        sketch.quantile(min(1.0, 0.5 + half_width)),
    )


def _window(total: LatencySketch, earlier: LatencySketch | None) -> LatencySketch:
    """The values in ``total`` that are not in ``earlier`` (which ``total`` contains)."""
    if earlier is None or earlier.count == 0:
        return total
    now, before = total.to_dict(), earlier.to_dict()
    left = {int(key): weight for key, weight in now["bins"]}
    for key, weight in before["bins"]:
        left[int(key)] = left.get(int(key), 0) - weight
    return LatencySketch.from_dict(
        {
            "relative_accuracy": now["relative_accuracy"],
            "bins": [[key, weight] for key, weight in sorted(left.items()) if weight > 0],
            "zero_count": now["zero_count"] - before["zero_count"],
            "count": total.count - earlier.count,
            "sum": max(0.0, total.sum - earlier.sum),
            "min": total.min,  # bounds only: quantiles are clamped to them
            "max": total.max,
        }
    )


class HealthWatch:
    """Watches one model from ``started_at`` (a monotonic time) for ``policy.period_s``.

    Parameters
    ----------
    policy
        Thresholds and period.
    baseline
        Telemetry of the previous model, or ``None`` (the latency rule is then skipped).
    started_at
        Monotonic time the model was activated.
    """

    def __init__(
        self, policy: HealthPolicy, baseline: TelemetrySnapshot | None, started_at: float
    ) -> None:
        self.policy = policy
        self.baseline = baseline
        self.started_at = started_at
        self.windows_judged = 0
        self.slow_streak = 0
        self._judged: LatencySketch | None = None  # the new model's latency at the last window

    def evaluate(self, current: TelemetrySnapshot | None, now: float) -> HealthVerdict:
        """Judge the model's telemetry since activation (``None``: nothing recorded yet).

        ``current`` is cumulative (everything since activation); each call closes a latency
        window when enough new calls arrived since the previous one.
        """
        policy = self.policy
        over = now - self.started_at >= policy.period_s
        count = current.count if current is not None else 0
        errors = current.errors if current is not None else 0
        calls = count + errors
        if calls and (calls >= policy.min_requests or over):
            rate = errors / calls
            if rate > policy.error_rate_limit:
                return HealthVerdict(
                    "failed",
                    f"{errors} of {calls} calls failed ({rate:.1%}), over the limit of "
                    f"{policy.error_rate_limit:.1%}",
                )
        regression = self._latency_regression(current)
        if regression:
            return HealthVerdict("failed", regression)
        if not over:
            return HealthVerdict("watching")
        if calls < policy.min_requests:
            return HealthVerdict(
                "passed",
                f"inconclusive: {calls} calls in {policy.period_s:g} s, fewer than the "
                f"{policy.min_requests} needed to judge; kept",
            )
        p50 = current.latency.quantile(0.5) * 1e3 if current is not None else 0.0
        return HealthVerdict(
            "passed",
            f"{calls} calls, {errors} failed, median {p50:.3f} ms{self._latency_text()}",
        )

    def _latency_regression(self, current: TelemetrySnapshot | None) -> str:
        base, policy = self.baseline, self.policy
        if current is None or base is None or base.count < policy.latency_window:
            return ""
        judged = self._judged.count if self._judged is not None else 0
        if current.count - judged < policy.latency_window:
            return ""
        window = _window(current.latency, self._judged)
        self._judged = current.latency.copy()
        self.windows_judged += 1
        new_low, _ = median_bounds(window)
        _, old_high = median_bounds(base.latency)
        slow = (
            new_low > policy.latency_factor * old_high
            and new_low - old_high > policy.latency_margin_s
        )
        self.slow_streak = self.slow_streak + 1 if slow else 0
        if self.slow_streak < policy.latency_windows:
            return ""
        return (
            f"median latency {window.quantile(0.5) * 1e3:.3f} ms in {self.slow_streak} "
            f"consecutive windows of {policy.latency_window}+ calls, each over "
            f"{policy.latency_factor:g}x and {policy.latency_margin_s * 1e3:g} ms above the "
            f"previous model's {base.latency.quantile(0.5) * 1e3:.3f} ms "
            f"({CONFIDENCE_Z:g}-sigma bounds)"
        )

    def _latency_text(self) -> str:
        base = self.baseline
        if base is None or base.count < self.policy.latency_window:
            return "; latency not judged (no baseline of the previous model)"
        policy = self.policy
        previous = f"previous model's median {base.latency.quantile(0.5) * 1e3:.3f} ms"
        if self.windows_judged < policy.latency_windows:
            return (
                f"; latency inconclusive: {self.windows_judged} of the "
                f"{policy.latency_windows} windows of {policy.latency_window}+ calls needed "
                f"({previous})"
            )
        return (
            f"; latency judged in {self.windows_judged} windows of {policy.latency_window}+ "
            f"calls, never slow {policy.latency_windows} in a row ({previous})"
        )
