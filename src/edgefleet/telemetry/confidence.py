"""Confidence extractors: turn a model's outputs into one confidence value per sample."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

__all__ = ["ConfidenceExtractor", "MaxProbability"]


@runtime_checkable
class ConfidenceExtractor(Protocol):
    """Anything that maps a model's outputs to a 1-D array of per-sample confidences in [0, 1].

    Plug one into :func:`edgefleet.runtime.load` (``confidence=...``) for models whose outputs
    are not class probabilities, e.g. the best detection score of each image.
    """

    def __call__(self, outputs: Mapping[str, NDArray[np.generic]]) -> NDArray[np.floating]:
        """Return one confidence per sample of the batch."""
        ...


class MaxProbability:
    """The largest class probability of each row of a ``(batch, classes)`` softmax output.

    The telemetry recorder knows this extractor and defers the per-row maximum to a batched
    reduction off the inference path; called directly it computes it at once.

    Examples
    --------
    >>> extract = MaxProbability("probabilities")
    >>> extract({"probabilities": np.array([[0.1, 0.9], [0.6, 0.4]])}).tolist()
    [0.9, 0.6]
    """

    def __init__(self, output: str) -> None:
        self.output = output

    def __call__(self, outputs: Mapping[str, NDArray[np.generic]]) -> NDArray[np.floating]:
        """Return the row-wise maximum of the output."""
        rows = np.asarray(outputs[self.output], dtype=np.float64)
        return np.asarray(rows.reshape(-1, rows.shape[-1]).max(axis=1))

    def __repr__(self) -> str:
        return f"MaxProbability({self.output!r})"
