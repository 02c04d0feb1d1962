"""The digits task: a small CNN learning scikit-learn's 8x8 handwritten digits.

The data is scikit-learn's bundled ``load_digits`` (1797 images, nothing downloaded), scaled
to ``[0, 1]`` and split deterministically: a quarter held out for evaluation, the rest for
training. The model has two 3x3 convolutions (8 and 16 channels, each followed by ReLU and 2x2
max pooling) and a linear layer to 10 logits: 1,898 parameters. Local training is SGD with
momentum on cross-entropy, plus FedProx's proximal term when ``mu > 0``.

The default step is learning rate 0.02 with momentum 0.9 on batches of 8: an effective step of
``0.02 / (1 - 0.9) = 0.2``. At 0.05 (an effective 0.5) a few epochs on the whole training set
overshoot: the held-out loss fell in the first epoch, then rose again (on one machine from
2.30 to 3.55 after two epochs) while accuracy still rose, the model growing confidently wrong on
what it misclassifies, and on some seeds accuracy fell back to 25% in the third epoch. At 0.02
the held-out loss falls epoch after epoch on every seed tried (0-4: 0.19-0.35 after two epochs,
0.09-0.14 after five). A job
can still ask for another rate (``learning_rate`` of the job or of :class:`TrainConfig`).

``width`` multiplies the channels: :class:`WideDigitsTask` (``digits-wide``) is the same
network at width 16 (128 and 256 channels, 306,698 parameters), large enough for sparse update
codecs to send a useful number of values at 99.9% sparsity (about 300 per update).

:func:`export_onnx` writes a trained model as ONNX with ``onnx.helper`` from its weights:
input ``input`` ``[batch, 1, 8, 8]`` float32, output ``probabilities`` ``[batch, 10]`` (softmax),
the contract of the demo's digits classifier.

Examples
--------
>>> task = DigitsTask()
>>> train, held = task.load_data(), task.holdout()
>>> len(train), len(held), train.x.shape[1:]
(1348, 449, (1, 8, 8))
>>> model = task.build_model(seed=0)
>>> task.train(model, train.subset(np.arange(200)), epochs=1, config=TrainConfig())
200
>>> sorted(task.evaluate(model, held))
['accuracy', 'loss']
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from edgefleet.federated.task import Dataset, Task, TrainConfig, require_torch

__all__ = ["DigitsTask", "WideDigitsTask", "digits_arrays", "digits_onnx", "export_onnx"]

OPSET = 17


def digits_arrays(holdout_fraction: float = 0.25, seed: int = 0) -> tuple[Dataset, Dataset]:
    """The digits as ``(train, holdout)``: images ``(N, 1, 8, 8)`` float32, labels int64."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError(
            "the digits task needs scikit-learn: pip install 'edgefleet[train]'"
        ) from exc
    bunch = load_digits()
    images = (np.asarray(bunch.images, dtype=np.float32) / 16.0).reshape(-1, 1, 8, 8)
    labels = np.asarray(bunch.target, dtype=np.int64)
    order = np.random.default_rng(seed).permutation(len(labels))
    n_holdout = int(len(labels) * holdout_fraction)
    hold, train = order[:n_holdout], order[n_holdout:]
    return Dataset(images[train], labels[train]), Dataset(images[hold], labels[hold])


@contextmanager
def _one_thread(torch: Any) -> Iterator[None]:
    """Run torch on one thread (deterministic, and kind to a simulation of many devices)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class DigitsTask(Task):
    """The digits CNN with SGD local training (``learning_rate`` 0.02, momentum 0.9, batch 8).

    ``width`` multiplies the channels of both convolutions (8 and 16 at width 1).
    """

    name: ClassVar[str] = "digits"

    def __init__(
        self,
        learning_rate: float = 0.02,
        batch_size: int = 8,
        momentum: float = 0.9,
        width: int = 1,
    ) -> None:
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be an integer >= 1, got {width!r}")
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.momentum = momentum
        self.width = width
        self._data: tuple[Dataset, Dataset] | None = None

    def _split(self) -> tuple[Dataset, Dataset]:
        if self._data is None:
            self._data = digits_arrays()
        return self._data

    def build_model(self, seed: int = 0) -> Any:
        """The CNN, initialised from ``seed`` (PyTorch's global generator is left alone)."""
        torch = require_torch()
        nn = torch.nn
        c1, c2 = 8 * self.width, 16 * self.width
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return nn.Sequential(
                OrderedDict(
                    conv1=nn.Conv2d(1, c1, 3, padding=1),
                    relu1=nn.ReLU(),
                    pool1=nn.MaxPool2d(2),
                    conv2=nn.Conv2d(c1, c2, 3, padding=1),
                    relu2=nn.ReLU(),
                    pool2=nn.MaxPool2d(2),
                    flatten=nn.Flatten(),
                    fc=nn.Linear(4 * c2, 10),
                )
            )

    def load_data(self, partition: int = 0, num_partitions: int = 1) -> Dataset:
        """Every ``num_partitions``-th training example from ``partition`` (an IID shard)."""
        if num_partitions < 1 or not 0 <= partition < num_partitions:
            raise ValueError(f"partition {partition} of {num_partitions} does not exist")
        train = self._split()[0]
        return train.subset(np.arange(partition, len(train), num_partitions, dtype=np.int64))

    def holdout(self) -> Dataset:
        """The held-out quarter of the digits."""
        return self._split()[1]

    def train(self, model: Any, data: Dataset, epochs: int, config: TrainConfig) -> int:
        """SGD on cross-entropy (+ ``mu / 2 * ||w - w_global||^2``); returns examples seen."""
        torch = require_torch()
        if len(data) == 0 or epochs <= 0:
            return 0
        lr = config.learning_rate or self.learning_rate
        batch_size = config.batch_size or self.batch_size
        x = torch.from_numpy(np.ascontiguousarray(data.x, np.float32))
        y = torch.from_numpy(np.ascontiguousarray(data.y, np.int64))
        anchor = None
        if config.mu > 0 and config.global_params is not None:
            anchor = self._anchor(model, config.global_params)
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=self.momentum)
        generator = torch.Generator().manual_seed(config.seed)
        model.train()
        with _one_thread(torch):
            for _ in range(epochs):
                order = torch.randperm(len(y), generator=generator)
                for start in range(0, len(y), batch_size):
                    batch = order[start : start + batch_size]
                    optimizer.zero_grad()
                    loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
                    if anchor is not None:
                        prox = sum(
                            ((p - a) ** 2).sum()
                            for p, a in zip(model.parameters(), anchor, strict=True)
                        )
                        loss = loss + config.mu / 2 * prox
                    loss.backward()
                    optimizer.step()
        return len(data) * epochs

    def _anchor(self, model: Any, global_params: NDArray[np.float32]) -> list[Any]:
        """The global model's tensors in ``model.parameters()`` order (for the proximal term)."""
        from edgefleet.federated.task import set_params

        torch = require_torch()
        twin = self.build_model()
        set_params(twin, global_params)
        named = dict(twin.named_parameters())
        return [
            named[name].detach().clone().to(torch.float32) for name, _ in model.named_parameters()
        ]

    def evaluate(self, model: Any, data: Dataset) -> dict[str, float]:
        """Accuracy and mean cross-entropy on ``data``."""
        torch = require_torch()
        if len(data) == 0:
            return {"accuracy": float("nan"), "loss": float("nan")}
        model.eval()
        with _one_thread(torch), torch.no_grad():
            logits = model(torch.from_numpy(np.ascontiguousarray(data.x, np.float32)))
            y = torch.from_numpy(np.ascontiguousarray(data.y, np.int64))
            loss = float(torch.nn.functional.cross_entropy(logits, y))
            accuracy = float((logits.argmax(dim=1) == y).float().mean())
        return {"accuracy": accuracy, "loss": loss}

    def to_onnx(self, model: Any) -> bytes:
        """The CNN as ONNX (``input`` ``[batch,1,8,8]`` -> ``probabilities``), serialized."""
        w = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items()}
        proto = digits_onnx(w, graph_name="digits_cnn_federated")
        return bytes(proto.SerializeToString())


class WideDigitsTask(DigitsTask):
    """The digits CNN at width 16 (128 and 256 channels, 306,698 parameters), same training."""

    name: ClassVar[str] = "digits-wide"

    def __init__(
        self,
        learning_rate: float = 0.02,
        batch_size: int = 8,
        momentum: float = 0.9,
        width: int = 16,
    ) -> None:
        super().__init__(learning_rate, batch_size, momentum, width)


def export_onnx(model: Any, path: Path | str) -> Path:
    """Write the digits CNN ``model`` as ONNX (``input`` -> ``probabilities``); the path."""
    target = Path(path)
    target.write_bytes(DigitsTask().to_onnx(model))
    return target


def digits_onnx(
    weights: dict[str, NDArray[np.float32]], *, graph_name: str, doc_string: str = ""
) -> Any:
    """The digits CNN as an ``onnx.ModelProto`` from its weights (``conv1``, ``conv2``, ``fc``).

    ``input`` ``[batch,1,8,8]`` float32 -> ``probabilities`` ``[batch,10]`` (a softmax).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    initializers = [numpy_helper.from_array(weights[name], name) for name in sorted(weights)]
    pads = [1, 1, 1, 1]
    nodes = [
        helper.make_node("Conv", ["input", "conv1.weight", "conv1.bias"], ["c1"], pads=pads),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "conv2.weight", "conv2.bias"], ["c2"], pads=pads),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p2"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        graph_name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 8, 8])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10])],
        initializer=initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="edgefleet",
        doc_string=doc_string,
    )
    model.ir_version = 8
    helper.set_model_props(model, {"edgefleet.task": "classification", "edgefleet.classes": "10"})
    onnx.checker.check_model(model)
    return model
