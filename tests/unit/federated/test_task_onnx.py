"""A task's model goes to ONNX for the registry and comes back from it to start a job."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from edgefleet.federated.task import Dataset, Task, TrainConfig, get_params, load_task
from edgefleet.runtime import load

pytest.importorskip("torch")


def test_digits_round_trips_through_onnx_bit_for_bit() -> None:
    task = load_task("digits")
    model = task.build_model(seed=7)
    params = get_params(model)[0]
    assert np.array_equal(task.params_from_onnx(task.to_onnx(model)), params)


def test_the_exported_model_predicts_like_the_torch_model(tmp_path: Path) -> None:
    import torch

    task = load_task("digits")
    model = task.build_model(seed=1)
    holdout = task.holdout()
    path = tmp_path / "digits.onnx"
    path.write_bytes(task.to_onnx(model))
    served = load(path, providers=["CPUExecutionProvider"], warmup=False)
    try:
        x = holdout.x[:32].astype(np.float32)
        ours = served.predict({"input": x})["probabilities"]
    finally:
        served.close()
    with torch.no_grad():
        expected = torch.softmax(model(torch.from_numpy(x)), dim=1).numpy()
    np.testing.assert_allclose(ours, expected, atol=1e-5)


def test_a_model_of_another_shape_is_refused_naming_the_initializer() -> None:
    task = load_task("digits")
    proto = onnx.load_from_string(task.to_onnx(task.build_model()))
    proto.graph.initializer[0].dims[0] += 1  # conv1.bias now claims 9 values
    del proto.graph.initializer[0].float_data[:]
    proto.graph.initializer[0].raw_data = np.zeros(9, np.float32).tobytes()
    with pytest.raises(ValueError, match=r"initializer 'conv1\.bias' has shape \[9\]"):
        task.params_from_onnx(proto.SerializeToString())


def test_a_model_without_the_tasks_weights_is_refused() -> None:
    task = load_task("digits")
    proto = onnx.load_from_string(task.to_onnx(task.build_model()))
    del proto.graph.initializer[-1]
    with pytest.raises(ValueError, match=r"has no initializer 'fc\.weight'"):
        task.params_from_onnx(proto.SerializeToString())


def test_a_task_without_an_exporter_says_so() -> None:
    class Bare(Task):
        name = "bare"

        def build_model(self, seed: int = 0) -> object:
            return object()

        def load_data(self, partition: int = 0, num_partitions: int = 1) -> Dataset:
            return Dataset(np.zeros((0, 1)), np.zeros(0))

        def holdout(self) -> Dataset:
            return self.load_data()

        def train(self, model: object, data: Dataset, epochs: int, config: TrainConfig) -> int:
            return 0

        def evaluate(self, model: object, data: Dataset) -> dict[str, float]:
            return {}

    with pytest.raises(NotImplementedError, match="task 'bare' cannot export ONNX"):
        Bare().to_onnx(object())
