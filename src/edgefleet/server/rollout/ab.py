"""A/B statistics over devices: Welch's t-test, a bootstrap, and a recommendation.

Each device contributes one value per metric (its mean calibrated confidence, its p99 latency,
its error rate over the experiment), so the unit of analysis is the device, not the inference:
inferences on one device share its hardware, load and inputs and are far from independent.
The difference is always ``B - A``.

Examples
--------
>>> a = [0.81, 0.80, 0.83, 0.79, 0.82, 0.80]
>>> b = [0.86, 0.85, 0.88, 0.84, 0.86, 0.87]
>>> comparison = welch(a, b, metric="accuracy_estimate")
>>> comparison.describe()
'accuracy_estimate: B - A = +0.0517 (95% CI +0.0331 to +0.0702, p=0.0001, n=6/6, welch)'
>>> recommend({"accuracy_estimate": comparison}).verdict
'promote_b'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from scipy import stats  # type: ignore[import-untyped]  # scipy ships no type information

from edgefleet.server.rollout.spec import EXPERIMENT_METRICS

__all__ = [
    "ArmComparison",
    "Recommendation",
    "Verdict",
    "bootstrap",
    "recommend",
    "welch",
]

Verdict = Literal["promote_b", "keep_a", "no_difference", "insufficient_data"]


@dataclass(frozen=True)
class ArmComparison:
    """One metric compared between arm A and arm B (``diff = mean_b - mean_a``).

    ``ci_low`` and ``ci_high`` bound a ``confidence`` interval of ``diff``; ``p_value`` is the
    two-sided p-value of "no difference" (``None`` for the bootstrap).
    """

    metric: str
    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    diff: float
    ci_low: float
    ci_high: float
    p_value: float | None
    method: Literal["welch", "bootstrap"]
    confidence: float = 0.95

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (every field by name)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ArmComparison:
        """From :meth:`to_json`."""
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})

    def describe(self) -> str:
        """``p99_ms: B - A = -1.2 (95% CI -2.1 to -0.3, p=0.011, n=8/8, welch)``."""
        p = "" if self.p_value is None else f", p={self.p_value:.2g}"
        return (
            f"{self.metric}: B - A = {self.diff:+.3g} ({self.confidence:.0%} CI "
            f"{self.ci_low:+.3g} to {self.ci_high:+.3g}{p}, n={self.n_a}/{self.n_b}, "
            f"{self.method})"
        )


def _values(values: Sequence[float], arm: str, metric: str) -> NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or len(array) < 2:
        raise ValueError(
            f"arm {arm} of {metric!r} has {array.size} value(s); a comparison needs at least "
            "2 devices per arm"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"arm {arm} of {metric!r} has a NaN or infinite value")
    return array


def _checked_confidence(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    return confidence


def welch(
    a: Sequence[float], b: Sequence[float], *, metric: str, confidence: float = 0.95
) -> ArmComparison:
    """Welch's t-test and interval for the difference in means ``mean(b) - mean(a)``.

    The degrees of freedom are Welch-Satterthwaite's. When both arms have no variance at all
    the interval collapses to the observed difference, with ``p = 1`` if the means are equal
    and ``p = 0`` otherwise.

    Raises
    ------
    ValueError
        An arm has fewer than 2 values (naming it), or a value is not finite.

    Examples
    --------
    >>> c = welch([10, 12, 11, 13], [8, 9, 10, 9], metric="p99_ms")
    >>> round(c.diff, 2), round(c.ci_low, 2), round(c.ci_high, 2), round(c.p_value, 4)
    (-2.5, -4.46, -0.54, 0.0217)
    """
    _checked_confidence(confidence)
    xa, xb = _values(a, "A", metric), _values(b, "B", metric)
    mean_a, mean_b = float(xa.mean()), float(xb.mean())
    diff = mean_b - mean_a
    va, vb = float(xa.var(ddof=1)) / len(xa), float(xb.var(ddof=1)) / len(xb)
    se = math.sqrt(va + vb)
    if se == 0:
        low = high = diff
        p_value = 1.0 if diff == 0 else 0.0
    else:
        df = (va + vb) ** 2 / (va**2 / (len(xa) - 1) + vb**2 / (len(xb) - 1))
        half = float(stats.t.ppf((1 + confidence) / 2, df)) * se
        low, high = diff - half, diff + half
        p_value = float(2 * stats.t.sf(abs(diff) / se, df))
    return ArmComparison(
        metric, len(xa), len(xb), mean_a, mean_b, diff, low, high, p_value, "welch", confidence
    )


def bootstrap(
    a: Sequence[float],
    b: Sequence[float],
    *,
    metric: str,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> ArmComparison:
    """Percentile bootstrap interval of ``mean(b) - mean(a)``, resampling devices per arm.

    Makes no normality assumption, which suits skewed per-device metrics (p99 latency, error
    rates near zero) but needs more devices than Welch's test for the same coverage. Seeded,
    so the same inputs give the same interval. ``p_value`` is ``None``.

    Examples
    --------
    >>> c = bootstrap([10, 12, 11, 13, 12, 11], [8, 9, 10, 9, 8, 9], metric="p99_ms")
    >>> c.ci_high < 0 < c.ci_low + 5, c.p_value
    (True, None)
    """
    _checked_confidence(confidence)
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    xa, xb = _values(a, "A", metric), _values(b, "B", metric)
    rng = np.random.default_rng(seed)
    diffs = np.empty(resamples)
    chunk = max(1, 2**20 // max(len(xa), len(xb)))  # bounds memory at a few MiB per chunk
    for start in range(0, resamples, chunk):
        count = min(chunk, resamples - start)
        means_a = xa[rng.integers(0, len(xa), (count, len(xa)))].mean(axis=1)
        means_b = xb[rng.integers(0, len(xb), (count, len(xb)))].mean(axis=1)
        diffs[start : start + count] = means_b - means_a
    tail = (1 - confidence) / 2 * 100
    low, high = (float(q) for q in np.percentile(diffs, [tail, 100 - tail]))
    mean_a, mean_b = float(xa.mean()), float(xb.mean())
    return ArmComparison(
        metric,
        len(xa),
        len(xb),
        mean_a,
        mean_b,
        mean_b - mean_a,
        low,
        high,
        None,
        "bootstrap",
        confidence,
    )


@dataclass(frozen=True)
class Recommendation:
    """What to do at the end of an experiment, and why, with the numbers behind it."""

    verdict: Verdict
    reason: str

    def to_json(self) -> dict[str, Any]:
        """Plain JSON."""
        return asdict(self)


def _side(comparison: ArmComparison, higher_is_better: bool) -> Literal[1, -1, 0]:
    """``1`` when B is significantly better, ``-1`` significantly worse, ``0`` otherwise."""
    if comparison.ci_low > 0:
        return 1 if higher_is_better else -1
    if comparison.ci_high < 0:
        return -1 if higher_is_better else 1
    return 0


def recommend(
    comparisons: Mapping[str, ArmComparison],
    *,
    higher_is_better: Mapping[str, bool] = EXPERIMENT_METRICS,
    primary: str = "accuracy_estimate",
    min_devices_per_arm: int = 2,
) -> Recommendation:
    """Promote B, keep A, or neither, from the per-metric comparisons.

    * ``insufficient_data``: no comparison of the ``primary`` metric, or fewer than
      ``min_devices_per_arm`` devices in one of its arms;
    * ``keep_a``: the primary metric's interval lies entirely on the worse side of zero, or any
      other (guard) metric's does;
    * ``promote_b``: the primary metric's interval lies entirely on the better side, and no
      guard metric is significantly worse;
    * ``no_difference`` otherwise.

    Examples
    --------
    >>> acc = welch([0.80, 0.82, 0.81], [0.90, 0.91, 0.92], metric="accuracy_estimate")
    >>> p99 = welch([10.0, 11.0, 10.5], [20.0, 21.0, 22.0], metric="p99_ms")
    >>> result = recommend({"accuracy_estimate": acc, "p99_ms": p99})
    >>> result.verdict
    'keep_a'
    >>> print(result.reason)
    B is significantly worse on p99_ms: B - A = +10.5 (95% CI +8.42 to +12.6, p=0.00057, n=3/3, welch)
    """  # noqa: E501
    for metric in comparisons:
        if metric not in higher_is_better:
            raise ValueError(
                f"no direction known for metric {metric!r}; "
                f"higher_is_better names {', '.join(higher_is_better)}"
            )
    main = comparisons.get(primary)
    if main is None:
        return Recommendation(
            "insufficient_data", f"no comparison of the primary metric {primary} yet"
        )
    if min(main.n_a, main.n_b) < min_devices_per_arm:
        return Recommendation(
            "insufficient_data",
            f"{primary} has {main.n_a} device(s) on A and {main.n_b} on B; "
            f"a recommendation needs {min_devices_per_arm} per arm",
        )
    sides = {metric: _side(c, higher_is_better[metric]) for metric, c in comparisons.items()}
    worse = [comparisons[metric].describe() for metric, side in sides.items() if side < 0]
    if worse:
        return Recommendation("keep_a", "B is significantly worse on " + "; ".join(worse))
    if sides[primary] > 0:
        guards = [c.describe() for metric, c in comparisons.items() if metric != primary]
        checked = f"; no guard metric is worse ({'; '.join(guards)})" if guards else ""
        return Recommendation(
            "promote_b", f"B is significantly better on {main.describe()}{checked}"
        )
    return Recommendation(
        "no_difference",
        f"no significant difference on {main.describe()}; no guard metric is worse",
    )
