"""An "echo" model with one input and one output per supported element type.

Each output is its input passed through ``Identity``, so tests can round-trip every Open
Inference Protocol datatype that ONNX supports through a real ONNX Runtime session. All inputs
share the dynamic dimension ``n``; the model also has a fixed-size input ``fixed`` of shape
``(2, 3)``.
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper

from edgefleet.testing.models._cache import cached_model

__all__ = ["ECHO_TYPES", "build_echo_model"]

_BUILDER_VERSION = 1

ECHO_TYPES = {
    "BOOL": TensorProto.BOOL,
    "UINT8": TensorProto.UINT8,
    "UINT16": TensorProto.UINT16,
    "UINT32": TensorProto.UINT32,
    "UINT64": TensorProto.UINT64,
    "INT8": TensorProto.INT8,
    "INT16": TensorProto.INT16,
    "INT32": TensorProto.INT32,
    "INT64": TensorProto.INT64,
    "FP16": TensorProto.FLOAT16,
    "FP32": TensorProto.FLOAT,
    "FP64": TensorProto.DOUBLE,
    "BYTES": TensorProto.STRING,
}
"""Open Inference Protocol datatype -> ONNX element type; input ``x_T``, output ``y_T``."""


def build_echo_model(cache_dir: Path | None = None) -> Path:
    """Build (cached) the echo model and return the path of its ONNX file."""
    return cached_model("echo", {"version": _BUILDER_VERSION}, _graph, cache_dir)


def _graph() -> onnx.ModelProto:
    inputs, outputs, nodes = [], [], []
    for name, element in ECHO_TYPES.items():
        inputs.append(helper.make_tensor_value_info(f"x_{name}", element, ["n"]))
        outputs.append(helper.make_tensor_value_info(f"y_{name}", element, ["n"]))
        nodes.append(helper.make_node("Identity", [f"x_{name}"], [f"y_{name}"]))
    inputs.append(helper.make_tensor_value_info("fixed", TensorProto.FLOAT, [2, 3]))
    outputs.append(helper.make_tensor_value_info("fixed_out", TensorProto.FLOAT, [2, 3]))
    nodes.append(helper.make_node("Identity", ["fixed"], ["fixed_out"]))
    graph = helper.make_graph(nodes, "echo", inputs, outputs)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgefleet"
    )
    model.ir_version = 8
    return model
