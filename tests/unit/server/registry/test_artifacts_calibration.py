"""Calibration on push: a labelled holdout gives a temperature and an accuracy estimate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgefleet.errors import ConfigurationError
from edgefleet.server.registry.artifacts import fit_calibration
from edgefleet.telemetry.calibration import TemperatureScaling
from edgefleet.testing.models import DigitsData


def npz(tmp_path: Path, **arrays: Any) -> Path:
    path = tmp_path / "calibration.npz"
    np.savez(path, **arrays)
    return path


def test_fits_a_temperature_on_the_digits_holdout(
    tmp_path: Path, digits_path: Path, digits: DigitsData
) -> None:
    data = npz(tmp_path, x=digits.x_holdout, y=digits.y_holdout)
    result = fit_calibration(digits_path, data)
    n = len(digits.y_holdout)
    assert result["n"] == result["samples"] == n
    assert result["temperature"] > 0
    assert result["ece_after"] <= result["ece_before"] + 0.01
    assert 0.9 < result["accuracy"] <= 1.0
    # the point of calibration: mean calibrated confidence estimates accuracy
    assert result["mean_confidence_calibrated"] == pytest.approx(result["accuracy"], abs=0.03)
    assert TemperatureScaling.from_dict(result).temperature == result["temperature"]
    assert set(result) >= {
        "temperature",
        "n",
        "ece_before",
        "ece_after",
        "accuracy",
        "mean_confidence_calibrated",
    }


def test_inputs_of_a_same_kind_dtype_are_cast(
    tmp_path: Path, digits_path: Path, digits: DigitsData
) -> None:
    as_float32 = fit_calibration(digits_path, npz(tmp_path, x=digits.x_holdout, y=digits.y_holdout))
    as_float64 = fit_calibration(
        digits_path,
        npz(tmp_path, x=digits.x_holdout.astype(np.float64), y=digits.y_holdout.astype(np.int32)),
    )
    assert as_float64 == as_float32


def test_batches_larger_than_one_run_give_one_row_per_sample(
    tmp_path: Path, digits_path: Path, digits: DigitsData
) -> None:
    x = np.concatenate([digits.x_holdout] * 2)  # more than one batch of 256
    y = np.concatenate([digits.y_holdout] * 2)
    assert fit_calibration(digits_path, npz(tmp_path, x=x, y=y))["n"] == len(y)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"y": np.zeros(30, dtype=np.int64)}, r"has no 'x'.*found \['y'\]"),
        ({"x": np.zeros((30, 1, 8, 8), np.float32)}, "has no 'y'"),
        ({"inputs": np.zeros(3)}, "has no 'x' or 'y'"),
    ],
)
def test_missing_keys_are_named(
    tmp_path: Path, digits_path: Path, arrays: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        fit_calibration(digits_path, npz(tmp_path, **arrays))


def test_a_file_that_is_not_an_npz_is_refused(tmp_path: Path, digits_path: Path) -> None:
    text = tmp_path / "labels.csv"
    text.write_text("x,y\n1,2\n")
    with pytest.raises(ConfigurationError, match=r"labels\.csv is not an \.npz file") as refused:
        fit_calibration(digits_path, text)
    assert "allow_pickle" not in str(refused.value)
    single = tmp_path / "x.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(ConfigurationError, match=r"single \.npy array"):
        fit_calibration(digits_path, single)
    with pytest.raises(ConfigurationError, match="not found"):
        fit_calibration(digits_path, tmp_path / "absent.npz")


def test_pickled_arrays_are_refused(tmp_path: Path, digits_path: Path) -> None:
    path = npz(tmp_path, x=np.array([{"a": 1}] * 30, dtype=object), y=np.zeros(30, np.int64))
    with pytest.raises(ConfigurationError, match="holds Python objects") as refused:
        fit_calibration(digits_path, path)
    assert "allow_pickle" not in str(refused.value)


def test_a_truncated_npz_is_refused(tmp_path: Path, digits_path: Path, digits: DigitsData) -> None:
    path = npz(tmp_path, x=digits.x_holdout, y=digits.y_holdout)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ConfigurationError, match=r"damaged \.npz archive"):
        fit_calibration(digits_path, path)


def test_sample_and_label_counts_must_agree(
    tmp_path: Path, digits_path: Path, digits: DigitsData
) -> None:
    path = npz(tmp_path, x=digits.x_holdout[:50], y=digits.y_holdout[:49])
    with pytest.raises(ConfigurationError, match="50 samples in 'x' but 49 labels in 'y'"):
        fit_calibration(digits_path, path)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.full(40, 10), r"class ids in \[0, 9\].*found \[10\]"),
        (np.concatenate([np.full(39, 3), [-2]]), r"found \[-2\]"),
        (np.zeros(40, dtype=np.float64), "integer class ids, got float64"),
        (np.zeros((40, 1), dtype=np.int64), r"1-D array.*shaped \[40, 1\]"),
        (np.zeros(40, dtype=np.bool_), "integer class ids, got bool"),
    ],
    ids=["too-high", "negative", "float", "2-d", "bool"],
)
def test_bad_labels_are_named(
    tmp_path: Path, digits_path: Path, digits: DigitsData, labels: Any, message: str
) -> None:
    path = npz(tmp_path, x=digits.x_holdout[:40], y=labels)
    with pytest.raises(ConfigurationError, match=message):
        fit_calibration(digits_path, path)


def test_inputs_of_the_wrong_shape_or_kind_are_named(
    tmp_path: Path, digits_path: Path, digits: DigitsData
) -> None:
    y = digits.y_holdout[:40]
    flat = npz(tmp_path, x=digits.x_holdout[:40].reshape(40, 64), y=y)
    with pytest.raises(ConfigurationError, match=r"do not fit the model.*'input'.*rank 4"):
        fit_calibration(digits_path, flat)
    words = npz(tmp_path, x=np.array(["seven"] * 40), y=y)
    with pytest.raises(ConfigurationError, match=r"'x' are <U5; input 'input' expects FP32"):
        fit_calibration(digits_path, words)
    scalar = npz(tmp_path, x=np.float32(1.0), y=y)
    with pytest.raises(ConfigurationError, match="first axis of samples"):
        fit_calibration(digits_path, scalar)


def test_non_finite_inputs_are_refused(
    tmp_path: Path, digits_path: Path, digits: DigitsData
) -> None:
    x = digits.x_holdout[:40].copy()
    x[3, 0, 0, 0] = np.nan
    with pytest.raises(ConfigurationError, match="NaN or infinity"):
        fit_calibration(digits_path, npz(tmp_path, x=x, y=digits.y_holdout[:40]))


def test_too_few_or_no_samples_are_refused(
    tmp_path: Path, digits_path: Path, digits: DigitsData
) -> None:
    few = npz(tmp_path, x=digits.x_holdout[:5], y=digits.y_holdout[:5])
    with pytest.raises(ConfigurationError, match="at least 20"):
        fit_calibration(digits_path, few)
    none = npz(tmp_path, x=digits.x_holdout[:0], y=digits.y_holdout[:0])
    with pytest.raises(ConfigurationError, match="no samples"):
        fit_calibration(digits_path, none)


def test_a_model_without_a_softmax_output_is_refused(tmp_path: Path, detector_path: Path) -> None:
    path = npz(tmp_path, x=np.zeros((30, 1, 32, 32), np.float32), y=np.zeros(30, np.int64))
    with pytest.raises(ConfigurationError, match=r"Softmax output.*'scores'"):
        fit_calibration(detector_path, path)


def test_a_model_with_several_inputs_is_refused(tmp_path: Path, echo_path: Path) -> None:
    path = npz(tmp_path, x=np.zeros((30, 2), np.float32), y=np.zeros(30, np.int64))
    with pytest.raises(ConfigurationError, match="single-input model"):
        fit_calibration(echo_path, path)
