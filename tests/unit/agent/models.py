"""Tiny ONNX models for the agent's tests, built in memory (milliseconds, nothing cached).

All take ``x`` (float32, ``[n, 4]``) and return ``y`` of the same shape, so one can replace
another behind a serving name without clients noticing.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

_X = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])
_Y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])


def _serialise(nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto], name: str) -> bytes:
    graph = helper.make_graph(nodes, name, [_X], [_Y], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data


def scale_model(k: float) -> bytes:
    """``y = k * x``."""
    factor = numpy_helper.from_array(np.array(k, dtype=np.float32), "k")
    return _serialise([helper.make_node("Mul", ["x", "k"], ["y"])], [factor], f"scale{k}")


def fragile_model(k: float) -> bytes:
    """``y = k * x`` for one row; more rows fail inside ONNX Runtime (a fixed Reshape)."""
    shape = numpy_helper.from_array(np.array([1, 4], dtype=np.int64), "shape")
    factor = numpy_helper.from_array(np.array(k, dtype=np.float32), "k")
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["row"]),
        helper.make_node("Mul", ["row", "k"], ["y"]),
    ]
    return _serialise(nodes, [shape, factor], "fragile")


def slow_model(k: float, size: int = 256, rounds: int = 12) -> bytes:
    """``y = k * x``, after ``rounds`` input-dependent ``size``-square matrix products."""
    a = numpy_helper.from_array(np.full((size, size), 1e-3, dtype=np.float32), "a")
    factor = numpy_helper.from_array(np.array(k, dtype=np.float32), "k")
    zero = numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero")
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["t"], keepdims=0),
        helper.make_node("Mul", ["a", "t"], ["m0"]),
    ]
    for i in range(rounds):
        nodes.append(helper.make_node("MatMul", [f"m{i}", "a"], [f"m{i + 1}"]))
    nodes += [
        helper.make_node("ReduceSum", [f"m{rounds}"], ["s"], keepdims=0),
        helper.make_node("Mul", ["s", "zero"], ["nothing"]),
        helper.make_node("Mul", ["x", "k"], ["scaled"]),
        helper.make_node("Add", ["scaled", "nothing"], ["y"]),
    ]
    return _serialise(nodes, [a, factor, zero], "slow")


def classifier_model(order: tuple[int, int, int, int] = (0, 1, 2, 3), k: float = 4.0) -> bytes:
    """``y = softmax(k * x[:, order])``: a four-class classifier (its top-1 is ``order[argmax]``).

    Its ``Softmax`` output is what the runtime's confidence telemetry recognises.
    """
    weights = np.zeros((4, 4), dtype=np.float32)
    for column, row in enumerate(order):
        weights[row, column] = k
    w = numpy_helper.from_array(weights, "w")
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["y"], axis=-1),
    ]
    return _serialise(nodes, [w], "classifier")


def golden(model: bytes, *, wrong: bool = False) -> bytes:
    """Golden inputs and the model's outputs (``case<i>/in|out/<name>``); ``wrong`` spoils them."""
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    arrays: dict[str, NDArray[Any]] = {}
    for i in range(2):
        x = np.random.default_rng(i).random((1, 4), dtype=np.float32)
        (y,) = session.run(None, {"x": x})
        arrays[f"case{i}/in/x"] = x
        arrays[f"case{i}/out/y"] = y + (1.0 if wrong else 0.0)
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()
