"""A small CNN digit classifier trained on scikit-learn's bundled digits data set.

The network is trained with PyTorch (the ``train`` extra) and written to ONNX with
``onnx.helper`` from the trained weights, so the graph is exactly what is declared here and no
exporter is involved. Training is seeded and single-threaded, so the same code gives the same
bytes on the same machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from numpy.typing import NDArray

from edgefleet.federated.tasks.digits import digits_onnx
from edgefleet.testing.models._cache import cached_model

__all__ = ["DigitsData", "build_digits_classifier", "digits_data"]

_BUILDER_VERSION = 2  # 2: graph from edgefleet.federated.tasks.digits, initializers by name
OPSET = 17


@dataclass(frozen=True)
class DigitsData:
    """The digits data set split into a training part and a held-out part.

    Images are float32 in ``[0, 1]`` with shape ``(N, 1, 8, 8)``; labels are int64.
    """

    x_train: NDArray[np.float32]
    y_train: NDArray[np.int64]
    x_holdout: NDArray[np.float32]
    y_holdout: NDArray[np.int64]


def digits_data(holdout_fraction: float = 0.25, seed: int = 0) -> DigitsData:
    """Load scikit-learn's digits (shipped inside the package) and split it deterministically."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (np.asarray(bunch.images, dtype=np.float32) / 16.0).reshape(-1, 1, 8, 8)
    labels = np.asarray(bunch.target, dtype=np.int64)
    order = np.random.default_rng(seed).permutation(len(labels))
    n_holdout = int(len(labels) * holdout_fraction)
    hold, train = order[:n_holdout], order[n_holdout:]
    return DigitsData(images[train], labels[train], images[hold], labels[hold])


def build_digits_classifier(
    cache_dir: Path | None = None, *, epochs: int = 25, seed: int = 0
) -> Path:
    """Train the digit classifier (cached) and return the path of its ONNX file.

    The model takes ``input`` of shape ``(batch, 1, 8, 8)`` float32 in ``[0, 1]`` and returns
    ``probabilities`` of shape ``(batch, 10)`` (a softmax).
    """
    params = {"version": _BUILDER_VERSION, "epochs": epochs, "seed": seed}
    return cached_model("digits-cnn", params, lambda: _train_and_convert(epochs, seed), cache_dir)


def _require_torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError(
            "training the digits model needs PyTorch: pip install 'edgefleet[train]'"
        ) from exc
    return torch


def _train_and_convert(epochs: int, seed: int) -> onnx.ModelProto:
    torch = _require_torch()
    nn = torch.nn
    data = digits_data()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        net = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64, 10),
        )
        optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
        x = torch.from_numpy(data.x_train)
        y = torch.from_numpy(data.y_train)
        generator = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            order = torch.randperm(len(y), generator=generator)
            for start in range(0, len(y), 64):
                batch = order[start : start + 64]
                optimizer.zero_grad()
                loss = nn.functional.cross_entropy(net(x[batch]), y[batch])
                loss.backward()
                optimizer.step()
        weights = {name: t.detach().numpy().copy() for name, t in net.state_dict().items()}
    finally:
        torch.set_num_threads(previous_threads)
    return _to_onnx(weights)


def _to_onnx(w: dict[str, NDArray[np.float32]]) -> onnx.ModelProto:
    names = {"0": "conv1", "3": "conv2", "7": "fc"}  # nn.Sequential indices -> graph names
    weights = {f"{names[k.split('.')[0]]}.{k.split('.')[1]}": v for k, v in w.items()}
    model: onnx.ModelProto = digits_onnx(
        weights,
        graph_name="digits_cnn",
        doc_string="CNN digit classifier trained on scikit-learn's digits",
    )
    return model
