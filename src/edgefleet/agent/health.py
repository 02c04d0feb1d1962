"""The health watch: judge a newly activated model against the one it replaced.

During the watch period a model fails when too many of its calls fail while running (bad inputs
refused by validation are the caller's fault and do not count), or when its p99 latency is over
``latency_factor`` times the previous model's p99 (and slower by more than a small absolute
margin, so that sub-millisecond noise never rolls back a model). Judgements need
``min_requests`` calls; the latency rule also needs as many calls of the previous model. At the
end of the period the error rule applies to whatever calls there were; a model that served too
few calls to judge is kept, and the verdict says so ("no data" is reported as inconclusive, it
is never a pass the server could count).

>>> from edgefleet.telemetry import TelemetrySnapshot
>>> watch = HealthWatch(HealthPolicy(period_s=60, min_requests=10), baseline=None, started_at=0.0)
>>> snap = TelemetrySnapshot("m", "2", 0.0, 1.0, count=5, errors=15)
>>> watch.evaluate(snap, now=1.0).status
'failed'
>>> watch.evaluate(TelemetrySnapshot("m", "2", 0.0, 1.0, count=50), now=61.0).status
'passed'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from edgefleet.telemetry import TelemetrySnapshot

__all__ = ["HealthPolicy", "HealthVerdict", "HealthWatch"]


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
        Largest tolerated ratio of the new p99 latency to the previous model's p99.
    latency_margin_s
        The new p99 must also exceed the previous one by this much to count as a regression.
    min_requests
        Calls needed before a rule judges.
    """

    period_s: float = 60.0
    error_rate_limit: float = 0.05
    latency_factor: float = 3.0
    latency_margin_s: float = 0.001
    min_requests: int = 20


@dataclass(frozen=True)
class HealthVerdict:
    """The state of a watch: still ``watching``, ``passed`` or ``failed``, and why."""

    status: Literal["watching", "passed", "failed"]
    reason: str = ""

    @property
    def done(self) -> bool:
        """Whether the watch is over."""
        return self.status != "watching"


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

    def evaluate(self, current: TelemetrySnapshot | None, now: float) -> HealthVerdict:
        """Judge the model's telemetry since activation (``None``: nothing recorded yet)."""
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
        p99 = current.latency.quantile(0.99) * 1e3 if current is not None else 0.0
        return HealthVerdict(
            "passed", f"{calls} calls, {errors} failed, p99 {p99:.3f} ms{self._previous_text()}"
        )

    def _latency_regression(self, current: TelemetrySnapshot | None) -> str:
        base, policy = self.baseline, self.policy
        if current is None or base is None:
            return ""
        if min(current.count, base.count) < policy.min_requests:
            return ""
        new_p99 = current.latency.quantile(0.99)
        old_p99 = base.latency.quantile(0.99)
        slower = new_p99 - old_p99 > policy.latency_margin_s
        if slower and new_p99 > policy.latency_factor * old_p99:
            return (
                f"p99 latency {new_p99 * 1e3:.3f} ms is over {policy.latency_factor:g}x the "
                f"previous model's {old_p99 * 1e3:.3f} ms"
            )
        return ""

    def _previous_text(self) -> str:
        base = self.baseline
        if base is None or base.count < self.policy.min_requests:
            return ""
        return f" (previous model {base.latency.quantile(0.99) * 1e3:.3f} ms)"
