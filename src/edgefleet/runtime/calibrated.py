"""Calibrated confidence: temperature scaling applied to a classifier's probability output.

A release may carry a temperature ``T`` fitted on labelled data
(:func:`edgefleet.telemetry.calibration.fit_temperature`). Telemetry then records the maximum of
``softmax(log(p) / T)`` instead of the raw maximum probability, so that mean confidence
estimates accuracy. The maximum has a closed form that needs no logarithm:
``1 / sum_j (p_j / p_max) ** (1 / T)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from edgefleet.errors import ConfigurationError

__all__ = ["CalibratedMaxProbability", "check_temperature"]

_EPS = 1e-12


def check_temperature(value: object) -> float:
    """``value`` as a temperature: a finite number above 0.

    >>> check_temperature(1.5)
    1.5
    >>> check_temperature(0)
    Traceback (most recent call last):
    ...
    edgefleet.errors.ConfigurationError: calibration temperature must be a finite number > 0, got 0

    Raises
    ------
    ConfigurationError
        It is not a finite number above 0.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(
            f"calibration temperature must be a finite number > 0, got {value!r}"
        )
    if not (math.isfinite(value) and value > 0):
        raise ConfigurationError(
            f"calibration temperature must be a finite number > 0, got {value!r}"
        )
    return float(value)


class CalibratedMaxProbability:
    """Per row of a softmax output, the largest probability after temperature scaling.

    Parameters
    ----------
    output
        Name of the ``(batch, classes)`` (or ``(classes,)``) probability output.
    temperature
        The fitted temperature ``T`` (``T > 1`` softens an over-confident model).

    Examples
    --------
    >>> extract = CalibratedMaxProbability("probabilities", 2.0)
    >>> extract({"probabilities": np.array([[0.8, 0.2]])}).round(4).tolist()
    [0.6667]
    >>> from edgefleet.telemetry.calibration import softmax
    >>> round(float(softmax(np.log([0.8, 0.2]) / 2.0).max()), 4)
    0.6667
    """

    def __init__(self, output: str, temperature: float) -> None:
        self.output = output
        self.temperature = check_temperature(temperature)
        self._power = 1.0 / self.temperature

    def __call__(self, outputs: Mapping[str, NDArray[np.generic]]) -> NDArray[np.floating]:
        """Return the calibrated maximum probability of each row."""
        rows = np.asarray(outputs[self.output], dtype=np.float64)
        rows = rows.reshape(-1, rows.shape[-1])
        top = np.maximum(rows.max(axis=1, keepdims=True), _EPS)
        ratios = np.clip(rows / top, 0.0, 1.0)
        np.power(ratios, self._power, out=ratios)
        result: NDArray[np.floating] = 1.0 / ratios.sum(axis=1)
        return result

    def __repr__(self) -> str:
        return f"CalibratedMaxProbability({self.output!r}, {self.temperature})"
