"""A tiny sliding-window "detector" that proposes square crops of a grayscale canvas.

It scores every ``window x window`` window (stride ``stride``) by its mean intensity, which is
enough to find digits drawn on a dark canvas, and outputs the fixed window boxes beside the
scores. It is a stand-in for a real detector in pipeline tests and demos: the pipeline code
does not care how the scores were made.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

from edgefleet.testing.models._cache import cached_model

__all__ = ["build_detector", "compose_canvas", "window_boxes"]

_BUILDER_VERSION = 1


def window_boxes(canvas: int = 32, window: int = 8, stride: int = 4) -> NDArray[np.float32]:
    """Return the ``(num_windows, 4)`` boxes ``[y0, x0, y1, x1]`` in row-major window order."""
    starts = range(0, canvas - window + 1, stride)
    boxes = [[y, x, y + window, x + window] for y in starts for x in starts]
    return np.asarray(boxes, dtype=np.float32)


def build_detector(
    cache_dir: Path | None = None, *, canvas: int = 32, window: int = 8, stride: int = 4
) -> Path:
    """Build (cached) the detector and return the path of its ONNX file.

    Input ``image``: ``(batch, 1, canvas, canvas)`` float32. Outputs ``scores``:
    ``(batch, num_windows)`` and ``boxes``: ``(num_windows, 4)`` as ``[y0, x0, y1, x1]``.
    """
    if window > canvas or stride < 1:
        raise ValueError(f"window {window} and stride {stride} do not fit a canvas of {canvas}")
    params = {"version": _BUILDER_VERSION, "canvas": canvas, "window": window, "stride": stride}
    return cached_model("detector", params, lambda: _graph(canvas, window, stride), cache_dir)


def _graph(canvas: int, window: int, stride: int) -> onnx.ModelProto:
    boxes = window_boxes(canvas, window, stride)
    nodes = [
        helper.make_node(
            "AveragePool",
            ["image"],
            ["pooled"],
            kernel_shape=[window, window],
            strides=[stride, stride],
        ),
        helper.make_node("Flatten", ["pooled"], ["scores"], axis=1),
        helper.make_node("Identity", ["window_boxes"], ["boxes"]),
    ]
    graph = helper.make_graph(
        nodes,
        "window_detector",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, canvas, canvas])],
        [
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", len(boxes)]),
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [len(boxes), 4]),
        ],
        initializer=[numpy_helper.from_array(boxes, "window_boxes")],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgefleet"
    )
    model.ir_version = 8
    helper.set_model_props(model, {"edgefleet.task": "detection"})
    return model


def compose_canvas(
    digits: NDArray[np.float32],
    positions: list[tuple[int, int]],
    canvas: int = 32,
) -> NDArray[np.float32]:
    """Draw 8x8 digit images onto one dark canvas at the given top-left positions.

    Returns an array of shape ``(1, 1, canvas, canvas)``.
    """
    if len(digits) != len(positions):
        raise ValueError(f"{len(digits)} digits but {len(positions)} positions")
    out = np.zeros((1, 1, canvas, canvas), dtype=np.float32)
    for image, (y, x) in zip(digits, positions, strict=True):
        patch = np.asarray(image, dtype=np.float32).reshape(8, 8)
        out[0, 0, y : y + 8, x : x + 8] = np.maximum(out[0, 0, y : y + 8, x : x + 8], patch)
    return out
