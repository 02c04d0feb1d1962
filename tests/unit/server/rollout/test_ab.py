"""A/B statistics: Welch's test agrees with scipy, intervals cover at their rate, verdicts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats  # type: ignore[import-untyped]  # scipy ships no type information

from edgefleet.server.rollout.ab import (
    ArmComparison,
    Recommendation,
    bootstrap,
    recommend,
    welch,
)

values = st.lists(
    st.floats(min_value=-1e3, max_value=1e3, allow_nan=False), min_size=2, max_size=30
).filter(lambda xs: np.ptp(xs) > 1e-3)


@given(values, values)
def test_welch_p_value_is_scipys(a: list[float], b: list[float]) -> None:
    ours = welch(a, b, metric="m")
    theirs = stats.ttest_ind(b, a, equal_var=False)
    assert ours.p_value == pytest.approx(float(theirs.pvalue), rel=1e-6, abs=1e-12)
    assert ours.diff == pytest.approx(float(np.mean(b) - np.mean(a)))


@given(values, values)
def test_welch_interval_is_scipys(a: list[float], b: list[float]) -> None:
    ours = welch(a, b, metric="m", confidence=0.9)
    interval = stats.ttest_ind(b, a, equal_var=False).confidence_interval(0.9)
    assert (ours.ci_low, ours.ci_high) == pytest.approx(
        (float(interval.low), float(interval.high)), rel=1e-6, abs=1e-9
    )
    assert ours.ci_low <= ours.diff <= ours.ci_high


def test_a_clear_difference_is_detected() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.80, 0.02, 12), rng.normal(0.85, 0.02, 12)
    comparison = welch(a.tolist(), b.tolist(), metric="accuracy_estimate")
    assert comparison.p_value is not None
    assert comparison.p_value < 0.001
    assert 0 < comparison.ci_low < 0.05 < comparison.ci_high


def test_both_arms_constant_and_equal_is_no_difference() -> None:
    c = welch([1.0, 1.0, 1.0], [1.0, 1.0], metric="error_rate")
    assert (c.diff, c.ci_low, c.ci_high, c.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_both_arms_constant_and_different_is_a_certain_difference() -> None:
    c = welch([0.0, 0.0, 0.0], [0.5, 0.5], metric="error_rate")
    assert (c.diff, c.ci_low, c.ci_high, c.p_value) == (0.5, 0.5, 0.5, 0.0)


def test_one_constant_arm_uses_the_other_arms_degrees_of_freedom() -> None:
    c = welch([0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0], metric="p99_ms")
    half = stats.t.ppf(0.975, 2) * np.std([1.0, 2.0, 3.0], ddof=1) / np.sqrt(3)
    assert (c.ci_low, c.ci_high) == pytest.approx((2.0 - half, 2.0 + half))


@pytest.mark.parametrize("test", [welch, bootstrap])
@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        ([1.0], [1.0, 2.0], "arm A of 'p99_ms' has 1 value"),
        ([1.0, 2.0], [], "arm B of 'p99_ms' has 0 value"),
        ([1.0, float("nan")], [1.0, 2.0], "arm A of 'p99_ms' has a NaN or infinite value"),
    ],
)
def test_too_few_or_bad_values_are_refused_naming_the_arm(
    test: object, a: list[float], b: list[float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        test(a, b, metric="p99_ms")  # type: ignore[operator]


@pytest.mark.parametrize("confidence", [0.0, 1.0, 95.0])
def test_the_confidence_is_a_fraction(confidence: float) -> None:
    with pytest.raises(ValueError, match="confidence must lie strictly between 0 and 1"):
        welch([1.0, 2.0], [1.0, 2.0], metric="m", confidence=confidence)


def test_welch_interval_covers_the_true_difference_at_about_its_rate() -> None:
    rng = np.random.default_rng(7)
    trials, covered = 1000, 0
    for _ in range(trials):
        a, b = rng.normal(10.0, 2.0, 8), rng.normal(11.0, 4.0, 5)
        c = welch(a.tolist(), b.tolist(), metric="p99_ms")
        covered += c.ci_low <= 1.0 <= c.ci_high
    assert 0.92 <= covered / trials <= 0.98  # 0.95 +- 3 standard errors


def test_bootstrap_interval_covers_the_true_difference_roughly() -> None:
    """The percentile bootstrap under-covers with few devices; 30 per arm is close enough."""
    rng = np.random.default_rng(11)
    trials, covered = 300, 0
    for seed in range(trials):
        a, b = rng.exponential(1.0, 30), rng.exponential(1.5, 30)
        c = bootstrap(a.tolist(), b.tolist(), metric="p99_ms", resamples=500, seed=seed)
        covered += c.ci_low <= 0.5 <= c.ci_high
    assert 0.88 <= covered / trials <= 0.99


def test_bootstrap_is_seeded() -> None:
    a, b = [1.0, 2.0, 3.0, 4.0], [2.0, 3.0, 5.0, 6.0]
    assert bootstrap(a, b, metric="m", seed=3) == bootstrap(a, b, metric="m", seed=3)
    assert bootstrap(a, b, metric="m", seed=3) != bootstrap(a, b, metric="m", seed=4)


def test_bootstrap_handles_more_devices_than_one_chunk() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 3000), rng.normal(0.2, 1, 3000)
    c = bootstrap(a.tolist(), b.tolist(), metric="m", resamples=700)
    normal = welch(a.tolist(), b.tolist(), metric="m")  # near-normal means: nearly the same
    assert (c.ci_low, c.ci_high) == pytest.approx((normal.ci_low, normal.ci_high), abs=0.01)
    assert c.p_value is None
    assert c.method == "bootstrap"


def test_a_comparison_survives_json() -> None:
    c = welch([1.0, 2.0, 3.0], [2.0, 3.0, 4.5], metric="p99_ms")
    assert ArmComparison.from_json(json.loads(json.dumps(c.to_json()))) == c


# -- recommendations --------------------------------------------------------------------------


def comparison(metric: str, low: float, high: float, n: int = 10) -> ArmComparison:
    middle = (low + high) / 2
    return ArmComparison(metric, n, n, 1.0, 1.0 + middle, middle, low, high, 0.5, "welch")


def test_better_accuracy_and_no_worse_guard_promotes_b() -> None:
    result = recommend(
        {
            "accuracy_estimate": comparison("accuracy_estimate", 0.01, 0.05),
            "p99_ms": comparison("p99_ms", -1.0, 0.5),
            "error_rate": comparison("error_rate", -0.01, -0.001),  # better too
        }
    )
    assert result.verdict == "promote_b"
    assert "accuracy_estimate: B - A = +0.03 (95% CI +0.01 to +0.05" in result.reason


def test_worse_accuracy_keeps_a() -> None:
    result = recommend({"accuracy_estimate": comparison("accuracy_estimate", -0.05, -0.01)})
    assert result.verdict == "keep_a"
    assert result.reason.startswith("B is significantly worse on accuracy_estimate")


def test_a_significantly_worse_guard_keeps_a_even_with_better_accuracy() -> None:
    result = recommend(
        {
            "accuracy_estimate": comparison("accuracy_estimate", 0.01, 0.05),
            "p99_ms": comparison("p99_ms", 2.0, 6.0),
        }
    )
    assert result == Recommendation(
        "keep_a",
        "B is significantly worse on p99_ms: B - A = +4 (95% CI +2 to +6, p=0.5, n=10/10, welch)",
    )


def test_an_interval_across_zero_is_no_difference() -> None:
    result = recommend({"accuracy_estimate": comparison("accuracy_estimate", -0.01, 0.02)})
    assert result.verdict == "no_difference"


def test_no_primary_comparison_is_insufficient_data() -> None:
    result = recommend({"p99_ms": comparison("p99_ms", -2.0, -1.0)})
    assert result.verdict == "insufficient_data"
    assert "accuracy_estimate" in result.reason


def test_too_few_devices_is_insufficient_data() -> None:
    result = recommend(
        {"accuracy_estimate": comparison("accuracy_estimate", 0.1, 0.2, n=3)}, min_devices_per_arm=5
    )
    assert result.verdict == "insufficient_data"
    assert "3 device(s) on A and 3 on B; a recommendation needs 5 per arm" in result.reason


def test_the_primary_metric_can_be_chosen() -> None:
    result = recommend({"p99_ms": comparison("p99_ms", -2.0, -1.0)}, primary="p99_ms")
    assert result.verdict == "promote_b"


def test_a_metric_without_a_direction_is_refused() -> None:
    with pytest.raises(ValueError, match="no direction known for metric 'speed'"):
        recommend({"speed": comparison("speed", 1.0, 2.0)})


def test_identical_arms_give_no_difference_most_of_the_time() -> None:
    rng = np.random.default_rng(3)
    verdicts = []
    for _ in range(200):
        arms = rng.normal(0.8, 0.05, (2, 10))
        acc = welch(arms[0].tolist(), arms[1].tolist(), metric="accuracy_estimate")
        verdicts.append(recommend({"accuracy_estimate": acc}).verdict)
    assert verdicts.count("no_difference") >= 180  # about 95% at 95% confidence


def test_a_real_improvement_is_promoted_end_to_end() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.normal(0.80, 0.03, 15), rng.normal(0.86, 0.03, 15)
    p99_a, p99_b = rng.normal(20.0, 2.0, 15), rng.normal(20.0, 2.0, 15)
    result = recommend(
        {
            "accuracy_estimate": welch(a.tolist(), b.tolist(), metric="accuracy_estimate"),
            "p99_ms": bootstrap(p99_a.tolist(), p99_b.tolist(), metric="p99_ms"),
        }
    )
    assert result.verdict == "promote_b", result.reason
