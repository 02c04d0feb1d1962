"""Confidence telemetry is calibrated with the temperature a release carries."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgefleet.agent.state import StateStore
from edgefleet.telemetry.calibration import TemperatureScaling
from tests.unit.agent.models import classifier_model, scale_model
from tests.unit.agent.rig import NAME, Rig

X = np.random.default_rng(5).random((8, 4), dtype=np.float32)


def calibrated(probabilities: np.ndarray, temperature: float) -> float:
    scaling = TemperatureScaling(temperature, 0, 0, 0, 0, 0, 0)
    return float(scaling.confidence(probabilities).mean())


def served_confidence(rig: Rig) -> tuple[float, np.ndarray]:
    probabilities = rig.repository.predict(NAME, {"x": X})["y"]
    snap = rig.updater.collector.since_attach()
    assert snap is not None
    return snap.confidence.mean, probabilities


def test_a_release_with_a_temperature_reports_calibrated_confidence(rig: Rig) -> None:
    assert rig.apply(rig.stage(classifier_model(), 1, calibration={"temperature": 3.0}), 1)
    mean, probabilities = served_confidence(rig)
    assert mean == pytest.approx(calibrated(probabilities, 3.0), rel=1e-6)
    assert mean < probabilities.max(axis=1).mean()
    assert rig.state_file()["active"]["temperature"] == 3.0


def test_the_temperature_survives_a_restart_and_a_rollback(rig: Rig) -> None:
    rig.apply(rig.stage(classifier_model(), 1, calibration={"temperature": 2.0}), 1)
    rig.apply(rig.stage(classifier_model(k=2.0), 2), 2)
    assert rig.state_file()["active"]["temperature"] is None
    assert rig.updater.rollback("test")
    mean, probabilities = served_confidence(rig)
    assert mean == pytest.approx(calibrated(probabilities, 2.0), rel=1e-6)

    rig.repository.close()
    rig.updater = rig.new_updater()
    rig.updater.restore()
    mean, probabilities = served_confidence(rig)
    assert mean == pytest.approx(calibrated(probabilities, 2.0), rel=1e-6)


def test_a_temperature_signed_as_a_decimal_string_is_read(rig: Rig) -> None:
    """TUF's canonical JSON cannot hold floats, so the server signs ``repr(T)``."""
    assert rig.apply(rig.stage(classifier_model(), 1, calibration={"temperature": "2.5"}), 1)
    mean, probabilities = served_confidence(rig)
    assert mean == pytest.approx(calibrated(probabilities, 2.5), rel=1e-6)


@pytest.mark.parametrize(
    "bad", [{"temperature": 0}, {"temperature": "warm"}, {"temperature": "nan"}, {"t": 1.0}, 3]
)
def test_a_malformed_calibration_field_is_refused_as_incompatible(rig: Rig, bad: object) -> None:
    rig.apply(rig.stage(scale_model(1), 1), 1)
    assert not rig.apply(rig.stage(classifier_model(), 2, calibration=bad), 2)
    assert rig.kinds()[-1] == "incompatible"
    assert rig.predict()[0, 0] == 1.0


def test_a_state_file_from_before_calibration_still_loads(rig: Rig) -> None:
    path = rig.base / "old-state.json"
    record = {"name": "m", "version": "1", "release": 1, "sha256": "ab", "path": "/m/ab.onnx"}
    path.write_text(json.dumps({"active": record, "desired_version": 3}))
    state = StateStore(path).load()
    assert state.active is not None
    assert state.active.temperature is None
