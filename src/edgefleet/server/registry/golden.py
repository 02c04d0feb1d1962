"""Golden inputs: a few inputs and the outputs the registry's runtime produced for them.

A device runs the golden inputs through a model it has just downloaded and compares its
outputs with the stored ones (:func:`edgefleet.agent.smoke.run_smoke_test`) before it serves
the model. The file is an ``.npz`` archive without pickles: case ``i`` holds
``case<i>/in/<input name>`` and ``case<i>/out/<output name>``; string tensors are stored as
numpy unicode arrays. The archive is written with fixed timestamps, so the same model, inputs
and seed give the same bytes (and the same SHA-256).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edgefleet.errors import ConfigurationError, InputError
from edgefleet.runtime import load
from edgefleet.runtime.spec import TensorSpec

__all__ = ["MAX_CASES", "make_golden", "write_npz"]

MAX_CASES = 64
"""The most golden cases one model may carry."""
_EPOCH = (1980, 1, 1, 0, 0, 0)


def make_golden(
    model_path: Path,
    k: int,
    *,
    inputs: Mapping[str, NDArray[Any]] | None = None,
    seed: int = 0,
) -> bytes:
    """Run ``k`` cases through the model with the project's runtime; return ``.npz`` bytes.

    Parameters
    ----------
    model_path
        The ONNX model, already accepted by ``inspect_model``.
    k
        Number of cases, 1 to 64.
    inputs
        Input name to an array of at least ``k`` rows (calibration data, say); case ``i``
        takes row ``i`` with a batch dimension of 1. Without it, each case is seeded random
        data of each input's element type and shape (dynamic dimensions are 1): floats
        uniform in ``[0, 1)``, integers in ``[0, 10)``, random booleans and short strings.
    seed
        Seed of the random inputs.

    Raises
    ------
    ConfigurationError
        ``k`` is out of range, or ``inputs`` do not fit the model (names, rows, dtype, shape).
    ModelLoadError
        The model cannot be loaded.
    """
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_CASES:
        raise ConfigurationError(f"golden cases must be between 1 and {MAX_CASES}, got {k!r}")
    model = load(
        model_path,
        providers=["CPUExecutionProvider"],
        intra_op_threads=1,
        inter_op_threads=1,
        confidence=None,
        warmup=False,
    )
    try:
        if inputs is not None:
            _check_inputs(inputs, model.inputs, k)
        rng = np.random.default_rng(seed)
        arrays: dict[str, NDArray[Any]] = {}
        for i in range(k):
            if inputs is not None:
                feeds = {s.name: np.asarray(inputs[s.name])[i : i + 1] for s in model.inputs}
            else:
                feeds = {s.name: _random(s, rng) for s in model.inputs}
            try:
                outputs = model.predict(feeds)
            except InputError as exc:
                raise ConfigurationError(f"golden case {i}: {exc}") from exc
            arrays.update({f"case{i}/in/{name}": a for name, a in feeds.items()})
            arrays.update({f"case{i}/out/{name}": a for name, a in outputs.items()})
    finally:
        model.close()
    return write_npz(arrays)


def _check_inputs(inputs: Mapping[str, NDArray[Any]], specs: list[TensorSpec], k: int) -> None:
    want = [s.name for s in specs]
    if sorted(inputs) != sorted(want):
        raise ConfigurationError(
            f"golden inputs must name exactly the model's inputs {want}, got {sorted(inputs)}"
        )
    for name in want:
        arr = np.asarray(inputs[name])
        if arr.ndim == 0 or len(arr) < k:
            rows = 0 if arr.ndim == 0 else len(arr)
            raise ConfigurationError(
                f"golden input {name!r} has {rows} rows; {k} golden cases need at least {k}"
            )


def _random(spec: TensorSpec, rng: np.random.Generator) -> NDArray[Any]:
    shape = tuple(d if isinstance(d, int) else 1 for d in spec.shape)
    dtype = spec.type.numpy
    if spec.type.is_string:
        letters = rng.integers(ord("a"), ord("z") + 1, (*shape, 4))
        words = ["".join(map(chr, row)) for row in letters.reshape(-1, 4)]
        return np.array(words, dtype=object).reshape(shape)
    if dtype == np.bool_:
        return rng.integers(0, 2, shape).astype(np.bool_)
    if spec.type.is_float:
        return rng.random(shape).astype(dtype)
    return rng.integers(0, 10, shape).astype(dtype)


def write_npz(arrays: Mapping[str, NDArray[Any]]) -> bytes:
    """Serialise ``arrays`` as a compressed ``.npz`` with fixed timestamps and no pickles.

    Object arrays of strings are stored as unicode arrays, which load without pickles.

    Examples
    --------
    >>> data = write_npz({"case0/in/x": np.arange(3)})
    >>> data == write_npz({"case0/in/x": np.arange(3)})
    True
    >>> np.load(io.BytesIO(data))["case0/in/x"].tolist()
    [0, 1, 2]
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for key, value in arrays.items():
            arr = np.asarray(value)
            if arr.dtype == object:
                arr = arr.astype(str)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, arr, allow_pickle=False)
    return buffer.getvalue()
