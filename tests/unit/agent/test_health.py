from __future__ import annotations

import numpy as np

from edgefleet.agent.health import HealthPolicy, HealthWatch
from edgefleet.telemetry import LatencySketch, TelemetrySnapshot

POLICY = HealthPolicy(
    period_s=60, error_rate_limit=0.05, latency_factor=3, latency_margin_s=0.001, min_requests=20
)


def _snap(count: int, errors: int = 0, latency_s: float = 0.001) -> TelemetrySnapshot:
    sketch = LatencySketch()
    if count:
        sketch.add_many(np.full(count, latency_s))
    return TelemetrySnapshot("m", "1", 0.0, 1.0, count=count, errors=errors, latency=sketch)


def test_errors_over_the_limit_fail_once_enough_calls_are_seen() -> None:
    watch = HealthWatch(POLICY, None, started_at=0.0)
    assert watch.evaluate(_snap(10, errors=5), now=1).status == "watching"  # 15 < 20 calls
    verdict = watch.evaluate(_snap(15, errors=10), now=2)
    assert verdict.status == "failed"
    assert "10 of 25 calls failed" in verdict.reason


def test_few_calls_with_errors_fail_at_the_end_of_the_period() -> None:
    watch = HealthWatch(POLICY, None, started_at=0.0)
    assert watch.evaluate(_snap(2, errors=3), now=61).status == "failed"


def test_latency_regression_against_the_previous_model() -> None:
    watch = HealthWatch(POLICY, _snap(100, latency_s=0.002), started_at=0.0)
    assert watch.evaluate(_snap(100, latency_s=0.005), now=1).status == "watching"  # 2.5x
    verdict = watch.evaluate(_snap(100, latency_s=0.010), now=1)
    assert verdict.status == "failed"
    assert "over 3x the previous model's" in verdict.reason


def test_tiny_latencies_need_the_absolute_margin_too() -> None:
    watch = HealthWatch(POLICY, _snap(100, latency_s=0.00005), started_at=0.0)
    assert watch.evaluate(_snap(100, latency_s=0.0005), now=1).status == "watching"  # 10x, 0.45 ms


def test_latency_needs_enough_calls_on_both_sides() -> None:
    few_before = HealthWatch(POLICY, _snap(5, latency_s=0.001), started_at=0.0)
    assert few_before.evaluate(_snap(100, latency_s=0.1), now=1).status == "watching"
    no_baseline = HealthWatch(POLICY, None, started_at=0.0)
    assert no_baseline.evaluate(_snap(100, latency_s=0.1), now=1).status == "watching"


def test_pass_after_the_period_and_inconclusive_without_traffic() -> None:
    watch = HealthWatch(POLICY, _snap(100), started_at=10.0)
    passed = watch.evaluate(_snap(100, errors=1), now=70)
    assert passed.status == "passed"
    assert passed.done
    assert "101 calls, 1 failed" in passed.reason
    assert "previous model" in passed.reason
    idle = watch.evaluate(None, now=70)
    assert idle.status == "passed"
    assert idle.reason.startswith("inconclusive")
