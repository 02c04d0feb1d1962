"""Fit temperature-scaling calibration for a pushed classifier on a labelled ``.npz`` holdout.

The holdout file holds ``x``, the inputs of a single-input model (first axis: samples), and
``y``, one integer class id per sample. The model runs on ``x`` with the project's runtime;
its softmax output (the one the runtime's confidence telemetry uses) is calibrated with
:func:`edgefleet.telemetry.calibration.fit_temperature`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edgefleet.errors import ConfigurationError, InputError
from edgefleet.runtime import Model, load
from edgefleet.runtime.npz import read_npz
from edgefleet.telemetry import MaxProbability, fit_temperature

__all__ = ["fit_calibration"]

log = logging.getLogger(__name__)

_BATCH = 256


def fit_calibration(model_path: Path, data_path: Path) -> dict[str, Any]:
    """Fit a temperature for the model's probabilities on the labelled holdout at ``data_path``.

    Returns the fields of :class:`~edgefleet.telemetry.calibration.TemperatureScaling`
    (``temperature``, ``samples``, ``nll_before``, ``nll_after``, ``ece_before``,
    ``ece_after``, ``accuracy``, ``applied``, ``fitted_temperature``, ``note``: a temperature
    that would make the holdout's ECE worse is not applied, the temperature stays 1 and ``note``
    says so, also in the server log; ``TemperatureScaling.from_dict`` reads it back) plus ``n``
    (the number of samples) and ``mean_confidence_calibrated``, the mean calibrated
    max-probability on the holdout: the accuracy estimate that label-free monitoring compares
    with ``accuracy``.

    ``x`` is cast to the input's element type when numpy calls that a same-kind cast (float64
    data for a float32 model, say).

    Raises
    ------
    ConfigurationError
        The file is not an ``.npz`` or lacks ``x`` or ``y``; the model has several inputs or
        no softmax output; ``x`` does not fit the input, contains NaN or infinity; labels are
        not one integer per sample or out of range; fewer than 20 samples.
    ModelLoadError
        The model cannot be loaded.
    """
    x, y = _read(data_path)
    model = load(model_path, providers=["CPUExecutionProvider"], warmup=False)
    try:
        output = _probability_output(model)
        probabilities = _run(model, x, output)
    finally:
        model.close()
    classes = probabilities.shape[1]
    if y.min() < 0 or y.max() >= classes:
        bad = sorted({int(v) for v in y if v < 0 or v >= classes})[:5]
        raise ConfigurationError(
            f"calibration labels 'y' must be class ids in [0, {classes - 1}] for the "
            f"{classes} classes of output {output!r}; found {bad}"
        )
    fit = fit_temperature(probabilities, y)
    if not fit.applied:
        log.warning("calibration of %s: %s", model_path.name, fit.note)
    return {
        **fit.to_dict(),
        "n": fit.samples,
        "mean_confidence_calibrated": float(fit.confidence(probabilities).mean()),
    }


def _read(path: Path) -> tuple[NDArray[Any], NDArray[np.int64]]:
    if not path.is_file():
        raise ConfigurationError(f"calibration data not found: {path}")
    arrays = read_npz(path, what="calibration data", keys=("x", "y"), shown=path.name)
    x, y = arrays["x"], arrays["y"]
    if x.ndim == 0:
        raise ConfigurationError("calibration inputs 'x' must have a first axis of samples")
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) and y.dtype != np.bool_):
        raise ConfigurationError(
            f"calibration labels 'y' must be a 1-D array of integer class ids, got "
            f"{y.dtype} shaped {list(y.shape)}"
        )
    if len(x) == 0:
        raise ConfigurationError("calibration data has no samples")
    if len(y) != len(x):
        raise ConfigurationError(
            f"calibration data has {len(x)} samples in 'x' but {len(y)} labels in 'y'"
        )
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        raise ConfigurationError("calibration inputs 'x' contain NaN or infinity")
    return x, y.astype(np.int64)


def _probability_output(model: Model) -> str:
    if len(model.inputs) != 1:
        names = [s.name for s in model.inputs]
        raise ConfigurationError(
            f"calibration needs a single-input model ('x' feeds that input); {model.name!r} "
            f"has inputs {names}"
        )
    extractor = model.telemetry.extractor
    if not isinstance(extractor, MaxProbability):
        outputs = {s.name: s.describe_shape() for s in model.outputs}
        raise ConfigurationError(
            f"calibration needs a classifier with a Softmax output shaped [batch, classes]; "
            f"{model.name!r} has outputs {outputs}"
        )
    return extractor.output


def _run(model: Model, x: NDArray[Any], output: str) -> NDArray[np.float64]:
    spec = model.inputs[0]
    want = spec.type.numpy
    if x.dtype != want:
        if spec.type.is_string or not np.can_cast(x.dtype, want, casting="same_kind"):
            raise ConfigurationError(
                f"calibration inputs 'x' are {x.dtype}; input {spec.name!r} expects "
                f"{spec.datatype} ({want})"
            )
        x = x.astype(want)
    first = spec.shape[0] if spec.shape else None
    batch = first if isinstance(first, int) else _BATCH
    if isinstance(first, int) and len(x) % first:
        raise ConfigurationError(
            f"input {spec.name!r} has a fixed batch of {batch}; 'x' has {len(x)} samples"
        )
    parts = []
    for start in range(0, len(x), batch):
        try:
            result = model.predict({spec.name: x[start : start + batch]})
        except InputError as exc:
            raise ConfigurationError(f"calibration inputs 'x' do not fit the model: {exc}") from exc
        parts.append(np.asarray(result[output], dtype=np.float64))
    probabilities = np.concatenate(parts)
    if probabilities.ndim != 2 or len(probabilities) != len(x):
        raise ConfigurationError(
            f"output {output!r} gave shape {list(probabilities.shape)} for {len(x)} samples; "
            "calibration needs one row of class probabilities per sample"
        )
    return probabilities
