"""A ResNet-18-shaped network with random weights, for performance work.

Same layers and tensor shapes as ResNet-18 (batch norm folded into the convolutions, as an
inference export would have it): about 11.7 million parameters and 1.8 GFLOPs at 224x224.
The weights are seeded random numbers; the outputs mean nothing, the cost is real.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgefleet.testing.models._cache import cached_model

__all__ = ["build_resnet18"]

_BUILDER_VERSION = 1


def build_resnet18(cache_dir: Path | None = None, *, seed: int = 0, classes: int = 1000) -> Path:
    """Build (cached) the network and return the path of its ONNX file.

    Input ``input``: ``(batch, 3, 224, 224)`` float32; output ``probabilities``:
    ``(batch, classes)`` (a softmax).
    """
    params = {"version": _BUILDER_VERSION, "seed": seed, "classes": classes}
    return cached_model("resnet18", params, lambda: _Builder(seed).model(classes), cache_dir)


class _Builder:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def _name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def conv(self, x: str, cin: int, cout: int, k: int, stride: int, relu: bool) -> str:
        w = self._name("w")
        b = self._name("b")
        fan_in = cin * k * k
        weight = self.rng.standard_normal((cout, cin, k, k), dtype=np.float32)
        weight *= np.float32(np.sqrt(2.0 / fan_in))
        self.inits.append(numpy_helper.from_array(weight, w))
        self.inits.append(numpy_helper.from_array(np.zeros(cout, dtype=np.float32), b))
        out = self._name("conv")
        pad = k // 2
        self.nodes.append(
            helper.make_node(
                "Conv",
                [x, w, b],
                [out],
                kernel_shape=[k, k],
                strides=[stride, stride],
                pads=[pad, pad, pad, pad],
            )
        )
        if not relu:
            return out
        act = self._name("relu")
        self.nodes.append(helper.make_node("Relu", [out], [act]))
        return act

    def block(self, x: str, cin: int, cout: int, stride: int) -> str:
        y = self.conv(x, cin, cout, 3, stride, relu=True)
        y = self.conv(y, cout, cout, 3, 1, relu=False)
        shortcut = x if stride == 1 and cin == cout else self.conv(x, cin, cout, 1, stride, False)
        added = self._name("add")
        self.nodes.append(helper.make_node("Add", [y, shortcut], [added]))
        out = self._name("relu")
        self.nodes.append(helper.make_node("Relu", [added], [out]))
        return out

    def model(self, classes: int) -> onnx.ModelProto:
        x = self.conv("input", 3, 64, 7, 2, relu=True)
        pooled = self._name("pool")
        self.nodes.append(
            helper.make_node(
                "MaxPool", [x], [pooled], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]
            )
        )
        x, cin = pooled, 64
        for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
            x = self.block(x, cin, cout, stride)
            x = self.block(x, cout, cout, 1)
            cin = cout
        self.nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"]))
        self.nodes.append(helper.make_node("Flatten", ["gap"], ["features"], axis=1))
        weight = self.rng.standard_normal((classes, 512), dtype=np.float32) * np.float32(0.05)
        self.inits.append(numpy_helper.from_array(weight, "fc.weight"))
        self.inits.append(numpy_helper.from_array(np.zeros(classes, np.float32), "fc.bias"))
        self.nodes.append(
            helper.make_node("Gemm", ["features", "fc.weight", "fc.bias"], ["logits"], transB=1)
        )
        self.nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1))
        graph = helper.make_graph(
            self.nodes,
            "resnet18_random",
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 224, 224])],
            [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", classes])],
            initializer=self.inits,
        )
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgefleet"
        )
        model.ir_version = 8
        helper.set_model_props(model, {"edgefleet.task": "classification"})
        return model
