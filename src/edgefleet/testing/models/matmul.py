"""The smallest useful classifier: ``x`` (batch, 16) -> MatMul -> Softmax -> (batch, 4).

Its inference costs a few microseconds, so per-call overheads (telemetry, validation, the HTTP
layer, process start) dominate what a benchmark of it measures: ``runtime_overhead.py`` and
``footprint.py`` use it for that reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgefleet.testing.models._cache import cached_model

__all__ = ["build_matmul_classifier"]

_BUILDER_VERSION = 1


def build_matmul_classifier(cache_dir: Path | None = None, *, seed: int = 0) -> Path:
    """Build (cached) the 16 -> 4 MatMul + Softmax model and return the path of its ONNX file.

    The input is ``x`` of shape ``(batch, 16)`` float32; the output ``probabilities`` of shape
    ``(batch, 4)``. The weights are drawn from a normal distribution seeded with ``seed``.
    """
    params = {"version": _BUILDER_VERSION, "seed": seed}
    return cached_model("matmul-16x4", params, lambda: _graph(seed), cache_dir)


def _graph(seed: int) -> onnx.ModelProto:
    weights = np.random.default_rng(seed).standard_normal((16, 4)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
        ],
        "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 4])],
        [numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgefleet"
    )
    model.ir_version = 8
    return model
