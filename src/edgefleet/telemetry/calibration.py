"""Temperature scaling: calibrated confidence, so that mean confidence estimates accuracy.

A classifier's max-softmax probability is usually over-confident. Temperature scaling (Guo et
al., 2017) divides the logits by one scalar ``T`` fitted on a labelled holdout by minimising the
negative log-likelihood; argmax (the prediction) never changes, only the confidence. With
calibrated probabilities, the mean max-probability over unlabelled traffic estimates accuracy,
which is what label-free monitoring and rollout gates compare across model versions.

The models here output probabilities, not logits; ``log(p)`` differs from the logits by a
per-row constant that softmax ignores, so scaling ``log(p)`` is the same operation.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> logits = rng.normal(0, 2, (4000, 5))
>>> labels = np.array([rng.choice(5, p=np.exp(z) / np.exp(z).sum()) for z in logits])
>>> overconfident = softmax(logits * 2.0)  # a model twice too sure of itself
>>> fit = fit_temperature(overconfident, labels)
>>> round(fit.temperature, 1)
2.0
>>> fit.nll_after < fit.nll_before
True
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from edgefleet.errors import ConfigurationError

__all__ = [
    "TemperatureScaling",
    "expected_calibration_error",
    "fit_temperature",
    "softmax",
]

_EPS = 1e-12
MIN_SAMPLES = 20
"""Fewer labelled rows than this cannot support a fit."""


def softmax(logits: ArrayLike, axis: int = -1) -> NDArray[np.float64]:
    """Numerically stable softmax along ``axis``.

    >>> softmax([[0.0, 0.0]]).tolist()
    [[0.5, 0.5]]
    """
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    result: NDArray[np.float64] = e / e.sum(axis=axis, keepdims=True)
    return result


def _scaled(log_p: NDArray[np.float64], temperature: float) -> NDArray[np.float64]:
    return softmax(log_p / temperature)


def _nll(log_p: NDArray[np.float64], labels: NDArray[np.int64], temperature: float) -> float:
    z = log_p / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    return float(np.mean(log_norm - z[np.arange(len(labels)), labels]))


def _checked(probabilities: ArrayLike, labels: ArrayLike) -> tuple[NDArray[Any], NDArray[Any]]:
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ConfigurationError(
            f"calibration needs probabilities shaped [rows, classes >= 2], got {list(p.shape)}"
        )
    if y.ndim != 1 or len(y) != len(p):
        raise ConfigurationError(
            f"calibration needs one label per row: {len(p)} rows, labels shaped {list(y.shape)}"
        )
    if (
        not np.issubdtype(y.dtype, np.integer)
        or y.min(initial=0) < 0
        or y.max(initial=0) >= p.shape[1]
    ):
        raise ConfigurationError(
            f"labels must be integer class ids in [0, {p.shape[1] - 1}] for {p.shape[1]} classes"
        )
    if not np.isfinite(p).all() or (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise ConfigurationError(
            "calibration needs probabilities (softmax output): finite, >= 0, rows summing to 1"
        )
    if len(p) < MIN_SAMPLES:
        raise ConfigurationError(
            f"calibration needs at least {MIN_SAMPLES} labelled rows, got {len(p)}"
        )
    return p, y.astype(np.int64)


@dataclass(frozen=True)
class TemperatureScaling:
    """A fitted temperature and what it did to the holdout it was fitted on."""

    temperature: float
    samples: int
    nll_before: float
    nll_after: float
    ece_before: float
    ece_after: float
    accuracy: float
    applied: bool = True
    """False when the fitted temperature made ECE worse and ``temperature`` was left at 1."""
    fitted_temperature: float | None = None
    """The temperature the fit found, whether or not it was applied."""
    note: str = ""
    """Why the fitted temperature was not applied (empty when it was)."""

    def apply(self, probabilities: ArrayLike) -> NDArray[np.float64]:
        """Calibrated probabilities for rows of softmax output (argmax unchanged)."""
        p = np.asarray(probabilities, dtype=np.float64)
        return _scaled(np.log(np.clip(p, _EPS, 1.0)), self.temperature)

    def confidence(self, probabilities: ArrayLike) -> NDArray[np.float64]:
        """Calibrated max-probability per row: the per-inference accuracy estimate."""
        result: NDArray[np.float64] = self.apply(probabilities).max(axis=-1)
        return result

    def to_dict(self) -> dict[str, float | int]:
        """JSON-ready form, stored with a model version."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TemperatureScaling:
        """Inverse of :meth:`to_dict`; a bad or missing temperature is refused."""
        optional = {"applied", "fitted_temperature", "note"}  # absent from older records
        try:
            fitted = cls(
                **{k: data[k] for k in cls.__dataclass_fields__ if k in data or k not in optional}
            )
        except (KeyError, TypeError) as exc:
            raise ConfigurationError(f"not a temperature-scaling record: {exc}") from None
        if not (math.isfinite(fitted.temperature) and fitted.temperature > 0):
            raise ConfigurationError(f"temperature must be > 0, got {fitted.temperature}")
        return fitted


def expected_calibration_error(
    probabilities: ArrayLike, labels: ArrayLike, bins: int = 15
) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size.

    >>> expected_calibration_error([[0.9, 0.1]] * 10, [0] * 9 + [1])
    0.0
    """
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels)
    confidence, predicted = p.max(axis=1), p.argmax(axis=1)
    correct = (predicted == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            total += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return round(float(total), 12)


def fit_temperature(
    probabilities: ArrayLike, labels: ArrayLike, *, bounds: tuple[float, float] = (0.05, 20.0)
) -> TemperatureScaling:
    """Fit ``T`` minimising the holdout's negative log-likelihood (golden-section on ``log T``).

    The NLL of temperature scaling is unimodal in ``log T``; the search runs to a relative
    precision of 1e-4 and falls back to ``T = 1`` if that is at least as good, so a fit never
    makes the holdout's NLL worse. Minimising NLL can still raise the expected calibration
    error (a few confidently wrong rows pull ``T`` up and leave the rest under-confident); a
    temperature that makes the holdout's ECE worse is not applied: the result keeps ``T = 1``,
    ``applied`` is False, and ``note`` says why, with both ECE figures.

    >>> p = np.array([[0.7, 0.3]] * 500 + [[0.97, 0.03]] * 480 + [[1 - 1e-6, 1e-6]] * 20)
    >>> y = np.array([0] * 350 + [1] * 150 + [0] * 466 + [1] * 14 + [1] * 20)
    >>> fit = fit_temperature(p, y)
    >>> fit.temperature, fit.applied, round(fit.fitted_temperature, 1)
    (1.0, False, 2.2)
    >>> fit.note.split(";")[0]
    'the fitted temperature 2.174 would make ECE worse on the holdout (0.0196 -> 0.1386)'

    Raises
    ------
    ConfigurationError
        Shapes, labels or probabilities are unusable, or there are too few rows.
    """
    p, y = _checked(probabilities, labels)
    log_p = np.log(np.clip(p, _EPS, 1.0))
    lo, hi = math.log(bounds[0]), math.log(bounds[1])
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = _nll(log_p, y, math.exp(a)), _nll(log_p, y, math.exp(b))
    while hi - lo > 1e-4:
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = _nll(log_p, y, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = _nll(log_p, y, math.exp(b))
    temperature = math.exp((lo + hi) / 2)
    before = _nll(log_p, y, 1.0)
    after = _nll(log_p, y, temperature)
    if after > before:
        temperature, after = 1.0, before
    fitted = round(temperature, 6)
    ece_before = expected_calibration_error(p, y)
    ece_after = expected_calibration_error(_scaled(log_p, temperature), y)
    note = ""
    if ece_after > ece_before:
        note = (
            f"the fitted temperature {fitted:.3f} would make ECE worse on the holdout "
            f"({ece_before:.4f} -> {ece_after:.4f}); not applied, temperature stays 1"
        )
        temperature, after, ece_after = 1.0, before, ece_before
    return TemperatureScaling(
        temperature=round(temperature, 6),
        samples=len(y),
        nll_before=round(before, 6),
        nll_after=round(after, 6),
        ece_before=ece_before,
        ece_after=ece_after,
        accuracy=float((p.argmax(axis=1) == y).mean()),
        applied=not note,
        fitted_temperature=fitted,
        note=note,
    )
