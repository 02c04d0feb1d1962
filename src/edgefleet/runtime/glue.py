"""Glue steps between pipeline models: plain numpy functions over named arrays.

A glue step declares the tensors it reads and the tensors it writes (with their types and
shapes, so a pipeline can describe itself), and is called with its parameters from the
pipeline definition. Register more with :func:`register_glue`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edgefleet.errors import PipelineError
from edgefleet.runtime.dtypes import from_numpy
from edgefleet.runtime.spec import TensorSpec

__all__ = ["GlueStep", "crop_regions", "get_glue", "register_glue"]

Arrays = Mapping[str, NDArray[Any]]


@dataclass(frozen=True)
class GlueStep:
    """A named numpy function with declared inputs, outputs and parameter defaults."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[TensorSpec, ...]
    defaults: Mapping[str, Any]
    function: Callable[..., dict[str, NDArray[Any]]]

    def bind(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Merge ``params`` over the defaults, naming any unknown parameter."""
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise PipelineError(
                f"glue step {self.name!r} has no parameter(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(self.defaults)) or 'none'}"
            )
        return {**self.defaults, **params}


_REGISTRY: dict[str, GlueStep] = {}


def register_glue(step: GlueStep) -> GlueStep:
    """Make ``step`` available to pipeline definitions under its name."""
    _REGISTRY[step.name] = step
    return step


def get_glue(name: str) -> GlueStep:
    """Look up a registered glue step."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise PipelineError(f"unknown glue step {name!r}; known: {known}") from None


def _spec(name: str, dtype: type[np.generic], shape: tuple[int | str, ...]) -> TensorSpec:
    return TensorSpec(name, from_numpy(np.dtype(dtype)), shape)


def _nms(boxes: NDArray[np.float32], order: NDArray[np.intp], iou: float, limit: int) -> list[int]:
    keep: list[int] = []
    for i in order.tolist():
        if len(keep) >= limit:
            break
        if keep:
            kept = boxes[keep]
            y0 = np.maximum(kept[:, 0], boxes[i, 0])
            x0 = np.maximum(kept[:, 1], boxes[i, 1])
            y1 = np.minimum(kept[:, 2], boxes[i, 2])
            x1 = np.minimum(kept[:, 3], boxes[i, 3])
            inter = np.clip(y1 - y0, 0, None) * np.clip(x1 - x0, 0, None)
            area = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
            areas = (kept[:, 2] - kept[:, 0]) * (kept[:, 3] - kept[:, 1])
            if (inter / np.maximum(area + areas - inter, 1e-9) > iou).any():
                continue
        keep.append(i)
    return keep


def crop_regions(
    image: NDArray[np.float32],
    scores: NDArray[np.float32],
    boxes: NDArray[np.float32],
    *,
    size: int,
    max_regions: int,
    score_threshold: float,
    iou_threshold: float,
) -> dict[str, NDArray[Any]]:
    """Pick the best boxes of each image (non-maximum suppression) and crop them to a batch.

    ``image`` is ``(N, C, H, W)``, ``scores`` ``(N, B)`` and ``boxes`` ``(B, 4)`` (shared by all
    images) or ``(N, B, 4)``, boxes as ``[y0, x0, y1, x1]``. Returns ``crops``
    ``(M, C, size, size)`` (nearest-neighbour resampling), ``region_boxes`` ``(M, 4)``,
    ``region_scores`` ``(M,)`` and ``region_image`` ``(M,)`` (which image each crop came from).

    Examples
    --------
    >>> image = np.zeros((1, 1, 16, 16), np.float32); image[0, 0, 8:, 8:] = 1
    >>> boxes = np.array([[0, 0, 8, 8], [8, 8, 16, 16]], np.float32)
    >>> out = crop_regions(image, np.array([[0.0, 1.0]], np.float32), boxes, size=4,
    ...                    max_regions=4, score_threshold=0.5, iou_threshold=0.1)
    >>> out["crops"].shape, out["region_boxes"].tolist()
    ((1, 1, 4, 4), [[8.0, 8.0, 16.0, 16.0]])
    """
    if image.ndim != 4 or scores.ndim != 2 or scores.shape[0] != image.shape[0]:
        raise PipelineError(
            f"crop_regions needs image (N, C, H, W) and scores (N, B); got {list(image.shape)} "
            f"and {list(scores.shape)}"
        )
    n, channels, height, width = image.shape
    crops, kept_boxes, kept_scores, origin = [], [], [], []
    for i in range(n):
        img_boxes = boxes[i] if boxes.ndim == 3 else boxes
        if img_boxes.shape != (scores.shape[1], 4):
            raise PipelineError(
                f"crop_regions: {scores.shape[1]} scores but boxes of shape {list(img_boxes.shape)}"
            )
        candidates = np.flatnonzero(scores[i] >= score_threshold)
        order = candidates[np.argsort(-scores[i][candidates], kind="stable")]
        for b in _nms(img_boxes, order, iou_threshold, max_regions):
            y0, x0, y1, x1 = img_boxes[b]
            ys = np.clip(np.floor(y0 + (np.arange(size) + 0.5) * (y1 - y0) / size), 0, height - 1)
            xs = np.clip(np.floor(x0 + (np.arange(size) + 0.5) * (x1 - x0) / size), 0, width - 1)
            crops.append(image[i][:, ys.astype(np.intp)][:, :, xs.astype(np.intp)])
            kept_boxes.append(img_boxes[b])
            kept_scores.append(scores[i, b])
            origin.append(i)
    if crops:
        batch = np.stack(crops).astype(np.float32, copy=False)
    else:
        batch = np.zeros((0, channels, size, size), dtype=np.float32)
    return {
        "crops": batch,
        "region_boxes": np.asarray(kept_boxes, dtype=np.float32).reshape(-1, 4),
        "region_scores": np.asarray(kept_scores, dtype=np.float32).reshape(-1),
        "region_image": np.asarray(origin, dtype=np.int64).reshape(-1),
    }


register_glue(
    GlueStep(
        name="crop_regions",
        inputs=("image", "scores", "boxes"),
        outputs=(
            _spec("crops", np.float32, ("regions", "channels", "size", "size")),
            _spec("region_boxes", np.float32, ("regions", 4)),
            _spec("region_scores", np.float32, ("regions",)),
            _spec("region_image", np.int64, ("regions",)),
        ),
        defaults={"size": 8, "max_regions": 8, "score_threshold": 0.1, "iou_threshold": 0.1},
        function=crop_regions,
    )
)
