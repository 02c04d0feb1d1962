"""Reading an ONNX file's opset and output producers without the onnx package.

The reader must agree with the onnx package's own parser on every model it reads, and refuse
anything that is not a model with a ``ValueError`` (which ``load`` turns into a clear error).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgefleet.runtime.onnx_file import identity_model, read_onnx_bytes, read_onnx_file
from edgefleet.testing.models import build_detector, build_resnet18


def producers_by_onnx(proto: onnx.ModelProto) -> dict[str, str]:
    return {
        out: node.op_type
        for node in proto.graph.node
        if node.domain in ("", "ai.onnx")
        for out in node.output
    }


def opset_by_onnx(proto: onnx.ModelProto) -> int:
    return max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)


def mixed_model() -> onnx.ModelProto:
    """Weights, a Constant with a tensor attribute, a custom-domain node, two opset imports."""
    weights = numpy_helper.from_array(np.ones((4, 3), dtype=np.float32), "w")
    nodes = [
        helper.make_node(
            "Constant", [], ["c"], value=numpy_helper.from_array(np.zeros(3, np.float32))
        ),
        helper.make_node("MatMul", ["x", "w"], ["m"], name="matmul"),
        helper.make_node("Add", ["m", "c"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
        helper.make_node("Custom", ["probs"], ["extra"], domain="com.example"),
    ]
    graph = helper.make_graph(
        nodes,
        "mixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [
            helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("extra", TensorProto.FLOAT, ["batch", 3]),
        ],
        [weights],
    )
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("com.example", 3), helper.make_opsetid("", 19)],
        producer_name="tests",
    )


def test_agrees_with_the_onnx_package_on_real_models(
    digits_path: Path, model_cache: Path, tmp_path: Path
) -> None:
    mixed = tmp_path / "mixed.onnx"
    onnx.save(mixed_model(), str(mixed))
    for path in (digits_path, build_detector(model_cache), build_resnet18(model_cache), mixed):
        proto = onnx.load(str(path), load_external_data=False)
        facts = read_onnx_file(path)
        assert facts.opset == opset_by_onnx(proto), path
        assert facts.producers == producers_by_onnx(proto), path
        assert (facts.nodes, facts.outputs) == (len(proto.graph.node), len(proto.graph.output))


def test_a_softmax_output_and_a_custom_domain_are_told_apart(tmp_path: Path) -> None:
    facts = read_onnx_bytes(mixed_model().SerializeToString())
    assert facts.producers["probs"] == "Softmax"
    assert "extra" not in facts.producers  # com.example's "Custom" is not an ai.onnx op
    assert facts.opset == 19  # the default domain's, not com.example's


def test_the_probe_model_is_a_valid_model_for_every_opset() -> None:
    for opset in (7, 13, 17):
        proto = onnx.load_model_from_string(identity_model(opset))
        onnx.checker.check_model(proto)
        assert opset_by_onnx(proto) == opset
        session = ort.InferenceSession(identity_model(opset), providers=["CPUExecutionProvider"])
        x = np.array([2.5], dtype=np.float32)
        assert session.run(None, {"x": x})[0].tolist() == [2.5]


@pytest.mark.parametrize(
    "data",
    [
        b"this is not a model\n" * 10,
        b"\x08",  # a key with no value
        b"\x3a\x05ab",  # a graph field longer than the file
        b"\x08\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01",  # an overlong varint
        b"\x0b",  # wire type 3 (groups) never appears in ONNX
        b"\x08\x08",  # a model with no graph
    ],
)
def test_what_is_not_a_model_is_a_value_error(data: bytes) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        read_onnx_bytes(data)


def test_every_truncation_and_random_bytes_are_value_errors_or_facts(digits_path: Path) -> None:
    data = digits_path.read_bytes()
    rng = np.random.default_rng(0)
    candidates = [data[:n] for n in range(0, len(data), max(1, len(data) // 300))]
    candidates += [rng.bytes(int(rng.integers(1, 200))) for _ in range(300)]
    for candidate in candidates:
        with contextlib.suppress(ValueError):  # anything else (IndexError...) fails
            read_onnx_bytes(candidate)


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        read_onnx_file(path)
