"""Temperature scaling: fits recover known miscalibration, never hurt, and estimate accuracy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefleet.errors import ConfigurationError
from edgefleet.telemetry.calibration import (
    TemperatureScaling,
    expected_calibration_error,
    fit_temperature,
    softmax,
)
from edgefleet.testing.models import DigitsData


def sampled(n: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """True logits and labels drawn from them: a perfectly calibrated source."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, (n, classes))
    p = softmax(logits)
    labels = (p.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return logits, labels


@pytest.mark.parametrize("sharpness", [0.5, 1.0, 2.5])
def test_the_fit_recovers_a_known_temperature(sharpness: float) -> None:
    logits, labels = sampled(6000, 6, seed=1)
    fit = fit_temperature(softmax(logits * sharpness), labels)
    assert fit.temperature == pytest.approx(sharpness, rel=0.12)
    assert fit.ece_after <= fit.ece_before + 0.01


@settings(max_examples=25, deadline=None)
@given(sharpness=st.floats(0.2, 5.0), seed=st.integers(0, 10_000))
def test_a_fit_never_makes_the_holdout_worse_and_never_changes_a_prediction(
    sharpness: float, seed: int
) -> None:
    logits, labels = sampled(300, 4, seed)
    p = softmax(logits * sharpness)
    fit = fit_temperature(p, labels)
    assert fit.nll_after <= fit.nll_before
    np.testing.assert_array_equal(fit.apply(p).argmax(axis=1), p.argmax(axis=1))
    np.testing.assert_allclose(fit.apply(p).sum(axis=1), 1.0)


def test_calibrated_mean_confidence_estimates_accuracy_on_unseen_digits(
    digits: DigitsData,
) -> None:
    from edgefleet.runtime import load
    from edgefleet.testing.models import build_digits_classifier

    model = load(build_digits_classifier())
    probs = model.predict({"input": digits.x_holdout})["probabilities"]
    model.close()
    half = len(probs) // 2
    fit = fit_temperature(probs[:half], digits.y_holdout[:half])
    unseen, truth = probs[half:], digits.y_holdout[half:]
    accuracy = float((unseen.argmax(axis=1) == truth).mean())
    estimate = float(fit.confidence(unseen).mean())
    assert abs(estimate - accuracy) < 0.03
    assert expected_calibration_error(fit.apply(unseen), truth) <= 0.05


def test_records_round_trip_and_bad_records_are_refused() -> None:
    logits, labels = sampled(500, 3, seed=4)
    fit = fit_temperature(softmax(logits), labels)
    assert TemperatureScaling.from_dict(fit.to_dict()) == fit
    with pytest.raises(ConfigurationError, match="not a temperature-scaling record"):
        TemperatureScaling.from_dict({"temperature": 1.0})
    with pytest.raises(ConfigurationError, match="temperature must be > 0"):
        TemperatureScaling.from_dict({**fit.to_dict(), "temperature": -1.0})


@pytest.mark.parametrize(
    ("probabilities", "labels", "message"),
    [
        (np.full((30, 1), 1.0), np.zeros(30, int), r"classes >= 2"),
        (np.full((30, 2), 0.5), np.zeros(29, int), "one label per row"),
        (np.full((30, 2), 0.5), np.full(30, 2), r"integer class ids in \[0, 1\]"),
        (np.full((30, 2), 0.5), np.full(30, 0.5), "integer class ids"),
        (np.full((30, 2), 0.9), np.zeros(30, int), "rows summing to 1"),
        (np.full((30, 2), np.nan), np.zeros(30, int), "finite"),
        (np.full((5, 2), 0.5), np.zeros(5, int), "at least 20 labelled rows"),
    ],
)
def test_unusable_calibration_data_is_refused_with_the_reason(
    probabilities: np.ndarray, labels: np.ndarray, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        fit_temperature(probabilities, labels)
