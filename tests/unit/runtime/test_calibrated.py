from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgefleet.errors import ConfigurationError
from edgefleet.runtime import load
from edgefleet.runtime.calibrated import CalibratedMaxProbability
from edgefleet.telemetry.calibration import TemperatureScaling
from tests.unit.agent.models import classifier_model

X = np.random.default_rng(3).random((16, 4), dtype=np.float32)


@pytest.fixture
def classifier(tmp_path: Path) -> Path:
    path = tmp_path / "classifier.onnx"
    path.write_bytes(classifier_model())
    return path


def mean_confidence(path: Path, **options: object) -> tuple[float, np.ndarray]:
    model = load(path, intra_op_threads=1, **options)
    try:
        probabilities = model.predict({"x": X})["y"]
        snap = model.telemetry.snapshot()
        assert snap.confidence.count == len(X)
        return snap.confidence.mean, probabilities
    finally:
        model.close()


def test_a_temperature_records_calibrated_max_probability(classifier: Path) -> None:
    raw, probabilities = mean_confidence(classifier)
    calibrated, same = mean_confidence(classifier, calibration_temperature=2.5)
    expected = TemperatureScaling(2.5, 0, 0, 0, 0, 0, 0).confidence(probabilities).mean()
    assert calibrated == pytest.approx(expected, rel=1e-6)
    assert raw == pytest.approx(probabilities.max(axis=1).mean(), rel=1e-6)
    assert calibrated < raw  # T > 1 softens an over-confident model
    np.testing.assert_array_equal(probabilities, same)  # answers never change


def test_temperature_one_is_the_raw_confidence(classifier: Path) -> None:
    raw, _ = mean_confidence(classifier)
    one, _ = mean_confidence(classifier, calibration_temperature=1.0)
    assert one == pytest.approx(raw, rel=1e-6)


def test_confidence_of_gives_what_telemetry_records(classifier: Path) -> None:
    model = load(classifier, intra_op_threads=1, calibration_temperature=2.0)
    try:
        outputs = model.predict({"x": X[:3]})
        values = model.confidence_of(outputs)
        assert values is not None
        np.testing.assert_allclose(values, CalibratedMaxProbability("y", 2.0)(outputs))
    finally:
        model.close()


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_a_bad_temperature_is_refused(classifier: Path, bad: float) -> None:
    with pytest.raises(ConfigurationError, match="calibration temperature"):
        load(classifier, calibration_temperature=bad)
