"""The query library: the inputs a benchmark sends, prepared before any timing starts.

As in MLPerf LoadGen's query sample library, samples are built (or loaded from a labelled file)
up front so that the measured loop only issues them. Without labels, inputs are random but
deterministic, shaped from the model's declared inputs with dynamic dimensions set to 1 and
the batch (first) dimension set to ``batch``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edgefleet.errors import ConfigurationError
from edgefleet.runtime import TensorSpec

__all__ = ["QuerySet", "labelled_queries", "random_queries"]

Feeds = dict[str, NDArray[Any]]


@dataclass(frozen=True)
class QuerySet:
    """Samples to send, each a complete set of feeds, with optional labels per sample."""

    samples: list[Feeds]
    labels: list[NDArray[np.int64]] | None = None

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def batch(self) -> int:
        """Rows per sample: the leading dimension of the first input (1 for scalars)."""
        if not self.samples:
            return 1
        first = next(iter(self.samples[0].values()))
        return int(first.shape[0]) if first.ndim else 1


def _shape(spec: TensorSpec, batch: int) -> tuple[int, ...]:
    dims = [d if isinstance(d, int) and d >= 0 else 1 for d in spec.shape]
    if dims and not (isinstance(spec.shape[0], int) and spec.shape[0] >= 0):
        dims[0] = batch
    return tuple(dims)


def random_queries(
    inputs: Sequence[TensorSpec], *, batch: int = 1, count: int = 64, seed: int = 0
) -> QuerySet:
    """``count`` deterministic random samples for ``inputs``.

    >>> from edgefleet.runtime.dtypes import from_numpy
    >>> spec = TensorSpec("x", from_numpy(np.dtype(np.float32)), ("batch", 3))
    >>> qs = random_queries([spec], batch=2, count=4)
    >>> len(qs), qs.samples[0]["x"].shape, qs.samples[0]["x"].dtype
    (4, (2, 3), dtype('float32'))
    """
    if batch < 1 or count < 1:
        raise ConfigurationError(f"batch and sample count must be >= 1, got {batch} and {count}")
    rng = np.random.default_rng(seed)
    samples: list[Feeds] = []
    for _ in range(count):
        feeds: Feeds = {}
        for spec in inputs:
            shape, dtype = _shape(spec, batch), spec.type.numpy
            if spec.type.is_string:
                feeds[spec.name] = np.full(shape, b"edgefleet", dtype=object)
            elif dtype == np.bool_:
                feeds[spec.name] = rng.random(shape) < 0.5
            elif np.issubdtype(dtype, np.floating):
                feeds[spec.name] = rng.random(shape, dtype=np.float32).astype(dtype)
            else:
                feeds[spec.name] = rng.integers(0, 2, size=shape).astype(dtype)
        samples.append(feeds)
    return QuerySet(samples)


def labelled_queries(path: Path, inputs: Sequence[TensorSpec], *, batch: int = 1) -> QuerySet:
    """Samples and labels from an ``.npz`` file with arrays ``x`` (or one per input name) and ``y``.

    The rows are cut into batches of ``batch``; a last, shorter batch is dropped.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise ConfigurationError(f"label file {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"label file {path} is not a readable .npz file: {exc}") from None
    if "y" not in arrays:
        raise ConfigurationError(f"label file {path} has no array 'y' (found {sorted(arrays)})")
    names = [spec.name for spec in inputs]
    if "x" in arrays and len(inputs) == 1:
        columns = {names[0]: arrays["x"]}
    elif all(name in arrays for name in names):
        columns = {name: arrays[name] for name in names}
    else:
        raise ConfigurationError(
            f"label file {path} needs an array 'x' or one per model input {names}; "
            f"found {sorted(arrays)}"
        )
    y = np.asarray(arrays["y"])
    if not np.issubdtype(y.dtype, np.integer) or y.ndim != 1:
        raise ConfigurationError(
            f"label file {path}: 'y' must be one integer class id per row, got "
            f"{y.dtype} with shape {list(y.shape)}"
        )
    for name, column in columns.items():
        if len(column) != len(y):
            raise ConfigurationError(
                f"label file {path}: input {name!r} has {len(column)} rows but 'y' has {len(y)}"
            )
    spec_of = {spec.name: spec for spec in inputs}
    for name, column in columns.items():
        want = spec_of[name].shape[1:]
        got = column.shape[1:]
        fixed = [d if isinstance(d, int) and d >= 0 else None for d in want]
        if len(got) != len(want) or any(
            f is not None and f != g for f, g in zip(fixed, got, strict=True)
        ):
            raise ConfigurationError(
                f"label file {path}: rows of {name!r} have shape {list(got)}, the model "
                f"expects {spec_of[name].describe_shape()} (first dimension: rows)"
            )
    count = len(y) // batch
    if count == 0:
        raise ConfigurationError(f"label file {path} has {len(y)} rows, fewer than one batch")
    samples, labels = [], []
    for i in range(count):
        rows = slice(i * batch, (i + 1) * batch)
        feeds = {
            name: np.ascontiguousarray(column[rows], dtype=spec_of[name].type.numpy)
            for name, column in columns.items()
        }
        samples.append(feeds)
        labels.append(y[rows].astype(np.int64))
    return QuerySet(samples, labels)
