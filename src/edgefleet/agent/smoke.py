"""The golden-input smoke test a device runs on a new model before it serves it.

The golden file (made by the registry, :mod:`edgefleet.server.registry.golden`) is an ``.npz``
archive without pickles: case ``i`` holds ``case<i>/in/<input name>`` and
``case<i>/out/<output name>``. Every case runs through ``model.predict``; numeric outputs must
match within ``rtol``/``atol`` (``np.allclose``, NaN equal to NaN), booleans and strings
exactly. Outputs the golden file does not list are not compared.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edgefleet.errors import EdgefleetError, SmokeTestError
from edgefleet.runtime import Servable

__all__ = ["load_golden", "run_smoke_test"]

_KEY = re.compile(r"case(\d+)/(in|out)/(.+)")
Case = tuple[dict[str, NDArray[Any]], dict[str, NDArray[Any]]]


def run_smoke_test(
    model: Servable, golden_path: Path, *, rtol: float = 1e-3, atol: float = 1e-5
) -> int:
    """Run every golden case through ``model``; return the number of cases checked.

    Raises
    ------
    SmokeTestError
        The golden file is missing or malformed; the model refused a case's inputs or failed
        on them; or an output is missing, has another shape, or differs (the message names
        the case, the output and the largest absolute difference).
    """
    if not (rtol >= 0 and atol >= 0):
        raise SmokeTestError(f"tolerances must be >= 0, got rtol={rtol}, atol={atol}")
    cases = load_golden(golden_path)
    for number, (inputs, expected) in cases.items():
        try:
            outputs = model.predict(inputs)
        except Exception as exc:  # whatever a new model does wrong fails its smoke test
            kind = "" if isinstance(exc, EdgefleetError) else f"{type(exc).__name__}: "
            raise SmokeTestError(f"golden case {number}: the model failed: {kind}{exc}") from exc
        for name, want in expected.items():
            if name not in outputs:
                raise SmokeTestError(
                    f"golden case {number}: the model has no output {name!r} "
                    f"(it returned {sorted(outputs)})"
                )
            _compare(number, name, np.asarray(outputs[name]), want, rtol, atol)
    return len(cases)


def load_golden(path: Path) -> dict[int, Case]:
    """Read a golden file: case number to (inputs, expected outputs), in case order.

    Raises
    ------
    SmokeTestError
        The file is missing, not an ``.npz`` without pickles, holds a key that is not
        ``case<i>/in/<name>`` or ``case<i>/out/<name>``, holds no case, or a case lacks inputs
        or outputs.
    """
    cases: dict[int, Case] = {}
    try:
        with open(path, "rb") as handle:
            archive = np.load(handle, allow_pickle=False)
            if isinstance(archive, np.ndarray):
                raise SmokeTestError(f"golden file {path.name} is a single array, not an .npz")
            for key in archive.files:
                match = _KEY.fullmatch(key)
                if match is None:
                    raise SmokeTestError(
                        f"golden file {path.name} has a key {key!r}; expected "
                        "case<i>/in/<input> or case<i>/out/<output>"
                    )
                inputs, outputs = cases.setdefault(int(match[1]), ({}, {}))
                side = inputs if match[2] == "in" else outputs
                side[match[3]] = _restore(archive[key])
    except SmokeTestError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise SmokeTestError(f"golden file {path.name} is not a readable .npz: {exc}") from exc
    if not cases:
        raise SmokeTestError(f"golden file {path.name} holds no cases")
    for number, (inputs, outputs) in cases.items():
        if not inputs or not outputs:
            missing = "inputs" if not inputs else "outputs"
            raise SmokeTestError(f"golden file {path.name}: case {number} has no {missing}")
    return dict(sorted(cases.items()))


def _restore(arr: NDArray[Any]) -> NDArray[Any]:
    """Strings are stored as unicode arrays; models take and give them as objects."""
    return arr.astype(object) if arr.dtype.kind == "U" else arr


def _compare(
    number: int, name: str, got: NDArray[Any], want: NDArray[Any], rtol: float, atol: float
) -> None:
    where = f"golden case {number}, output {name!r}"
    if got.shape != want.shape:
        raise SmokeTestError(f"{where}: shape {list(got.shape)}, expected {list(want.shape)}")
    numeric = got.dtype.kind in "iufc" and want.dtype.kind in "iufc"
    if not numeric:
        if not np.array_equal(got.astype(str), want.astype(str)):
            mismatched = int(np.count_nonzero(got.astype(str) != want.astype(str)))
            raise SmokeTestError(f"{where}: {mismatched} of {want.size} values differ")
        return
    a, b = got.astype(np.float64), want.astype(np.float64)
    if np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True):
        return
    nan_mismatch = int(np.count_nonzero(np.isnan(a) != np.isnan(b)))
    diff = _max_abs_difference(a, b)
    raise SmokeTestError(
        f"{where}: max abs difference {diff:.6g} exceeds rtol={rtol:g}, atol={atol:g}"
        + (
            f" ({nan_mismatch} NaN where the golden output has none, or vice versa)"
            if nan_mismatch
            else ""
        )
    )


def _max_abs_difference(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    """Largest |a - b| over elements where neither is NaN; equal infinities differ by 0."""
    both = ~(np.isnan(a) | np.isnan(b))
    a, b = a[both], b[both]
    with np.errstate(invalid="ignore"):
        diff = np.where(a == b, 0.0, np.abs(a - b))
    return float(np.max(diff, initial=0.0))
