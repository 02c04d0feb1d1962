"""Compatibility: a device refuses a model it cannot run, naming every reason at once."""

from __future__ import annotations

from typing import Any

import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from edgefleet.agent.compat import (
    check_compatibility,
    compatibility_problems,
    max_supported_opset,
)
from edgefleet.errors import CompatibilityError

CPU = ["CPUExecutionProvider"]
GiB = 2**30


def check(requirements: Any, **overrides: Any) -> None:
    kwargs: dict[str, Any] = {
        "opset": 17,
        "max_supported_opset": 21,
        "available_providers": CPU,
        "memory_available_bytes": GiB,
    }
    kwargs.update(overrides)
    check_compatibility(requirements, **kwargs)


def session_for_opset(opset: int) -> ort.InferenceSession:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=CPU)


def test_max_supported_opset_is_what_onnx_runtime_really_accepts() -> None:
    newest = max_supported_opset()
    assert newest >= 17
    session_for_opset(newest)  # accepted
    with pytest.raises(Exception, match=r"[Oo]pset"):
        session_for_opset(newest + 1)
    assert max_supported_opset() == newest  # cached


@pytest.mark.parametrize(
    "requirements",
    [
        {},
        {"execution_providers": [], "memory_bytes": 0},
        {"execution_providers": ["CPUExecutionProvider"], "memory_bytes": GiB},
        {"execution_providers": ["CUDAExecutionProvider", "CPUExecutionProvider"]},
        {"execution_providers": None, "memory_bytes": 1},
    ],
)
def test_a_model_that_fits_passes(requirements: dict[str, Any]) -> None:
    check(requirements)
    assert (
        compatibility_problems(
            requirements,
            opset=21,
            max_supported_opset=21,
            available_providers=CPU,
            memory_available_bytes=GiB,
        )
        == []
    )


def test_a_newer_opset_is_refused() -> None:
    with pytest.raises(CompatibilityError, match=r"opset 22 is newer .* \(up to 21\)"):
        check({}, opset=22)


def test_providers_mean_any_one_of_them() -> None:
    with pytest.raises(
        CompatibilityError,
        match=r"one of the execution providers CUDAExecutionProvider, "
        r"TensorrtExecutionProvider \(this device has CPUExecutionProvider\)",
    ):
        check({"execution_providers": ["CUDAExecutionProvider", "TensorrtExecutionProvider"]})
    check(
        {"execution_providers": ["CUDAExecutionProvider"]},
        available_providers=["CUDAExecutionProvider", *CPU],
    )


def test_a_device_with_no_providers_is_named() -> None:
    with pytest.raises(CompatibilityError, match="this device has none"):
        check({"execution_providers": ["CPUExecutionProvider"]}, available_providers=[])


def test_more_memory_than_available_is_refused() -> None:
    with pytest.raises(CompatibilityError, match=r"2048\.0 MiB of memory but 1024\.0 MiB"):
        check({"memory_bytes": 2 * GiB})
    check({"memory_bytes": GiB})  # exactly what is available fits


def test_unknown_available_memory_refuses_a_model_that_needs_some() -> None:
    with pytest.raises(CompatibilityError, match="memory"):
        check({"memory_bytes": 1}, memory_available_bytes=0)
    check({"memory_bytes": 0}, memory_available_bytes=0)


def test_every_reason_is_named_at_once() -> None:
    with pytest.raises(CompatibilityError) as caught:
        check(
            {"execution_providers": ["CUDAExecutionProvider"], "memory_bytes": 4 * GiB},
            opset=30,
        )
    message = str(caught.value)
    assert message.count("; ") == 2
    assert "opset 30" in message
    assert "CUDAExecutionProvider" in message
    assert "4096.0 MiB" in message
    assert caught.value.code == "model.incompatible"


@pytest.mark.parametrize(
    ("requirements", "message"),
    [
        ({"gpu_memory_bytes": 5}, "unknown requirement 'gpu_memory_bytes'"),
        ({"execution_providers": "CUDAExecutionProvider"}, "must be a list of names"),
        ({"execution_providers": [1, 2]}, "must be a list of names"),
        ({"memory_bytes": -1}, "non-negative integer, got -1"),
        ({"memory_bytes": "1GB"}, "non-negative integer, got '1GB'"),
        ({"memory_bytes": 1.5}, "non-negative integer"),
        ({"memory_bytes": True}, "non-negative integer"),
        (["execution_providers"], "must be a mapping, got list"),
    ],
)
def test_malformed_requirements_are_refused(requirements: Any, message: str) -> None:
    with pytest.raises(CompatibilityError, match=message):
        check(requirements)
