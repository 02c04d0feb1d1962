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


def confidently_wrong_holdout() -> tuple[np.ndarray, np.ndarray]:
    """A holdout whose NLL-optimal temperature makes ECE worse.

    Most rows are already calibrated (confidence 0.7 right 70% of the time, 0.97 right 97%);
    twenty rows are wrong at confidence 0.999999. Minimising NLL softens everything to pay for
    those twenty, which leaves the calibrated majority under-confident.
    """
    p = np.array([[0.7, 0.3]] * 500 + [[0.97, 0.03]] * 480 + [[1 - 1e-6, 1e-6]] * 20)
    y = np.array([0] * 350 + [1] * 150 + [0] * 466 + [1] * 14 + [1] * 20)
    return p, y


def test_a_temperature_that_makes_ece_worse_is_not_applied_and_the_fit_says_so() -> None:
    p, y = confidently_wrong_holdout()
    fitted_t = 2.174
    assert expected_calibration_error(softmax(np.log(p) / fitted_t), y) > (
        expected_calibration_error(p, y)
    )  # the premise: the NLL fit would make ECE worse

    fit = fit_temperature(p, y)

    assert fit.temperature == 1.0
    assert fit.applied is False
    assert fit.fitted_temperature == pytest.approx(fitted_t, abs=0.01)
    assert fit.ece_after == fit.ece_before
    assert fit.nll_after == fit.nll_before
    np.testing.assert_allclose(fit.apply(p), p)
    assert "would make ECE worse" in fit.note
    assert f"({fit.ece_before:.4f} -> " in fit.note
    assert "not applied, temperature stays 1" in fit.note


def test_a_temperature_that_improves_ece_is_applied_with_no_note() -> None:
    logits, labels = sampled(4000, 5, seed=3)
    fit = fit_temperature(softmax(logits * 2.0), labels)
    assert fit.applied is True
    assert fit.note == ""
    assert fit.temperature == fit.fitted_temperature != 1.0
    assert fit.ece_after < fit.ece_before


def test_records_written_before_the_applied_flag_still_read() -> None:
    logits, labels = sampled(500, 3, seed=4)
    old = fit_temperature(softmax(logits), labels).to_dict()
    for key in ("applied", "fitted_temperature", "note"):
        old.pop(key)
    restored = TemperatureScaling.from_dict(old)
    assert restored.applied is True
    assert restored.temperature == old["temperature"]
