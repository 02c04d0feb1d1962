"""The task hooks: parameters in and out of a torch model, task lookup, the digits task."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from edgefleet.errors import ConfigurationError
from edgefleet.federated.task import (
    Dataset,
    Task,
    TaskSpecError,
    TrainConfig,
    get_params,
    load_task,
    set_params,
)
from edgefleet.federated.tasks.digits import DigitsTask, WideDigitsTask, export_onnx

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def task() -> DigitsTask:
    return DigitsTask()


def test_params_round_trip_through_a_model(task: DigitsTask) -> None:
    model = task.build_model(seed=0)
    flat, layout = get_params(model)
    assert flat.dtype == np.float32
    assert flat.size == 1898
    assert [name for name, _ in layout] == sorted(name for name, _ in layout)
    other = task.build_model(seed=1)
    assert not np.array_equal(get_params(other)[0], flat)
    set_params(other, flat)
    assert np.array_equal(get_params(other)[0], flat)
    with pytest.raises(ValueError, match="does not fit"):
        set_params(other, flat[:-1])


def test_the_same_seed_builds_the_same_model(task: DigitsTask) -> None:
    assert np.array_equal(get_params(task.build_model(7))[0], get_params(task.build_model(7))[0])


def test_training_is_deterministic(task: DigitsTask) -> None:
    data = task.load_data()
    results = []
    for _ in range(2):
        model = task.build_model(0)
        assert task.train(model, data, epochs=2, config=TrainConfig(seed=5)) == 2 * len(data)
        results.append(get_params(model)[0])
    assert np.array_equal(results[0], results[1])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_training_lowers_the_held_out_loss_epoch_after_epoch(task: DigitsTask, seed: int) -> None:
    """The default step learns without overshooting: loss falls each epoch, accuracy rises."""
    data, held = task.load_data(), task.holdout()
    model = task.build_model(seed)
    metrics = [task.evaluate(model, held)]
    for epoch in range(1, 4):
        task.train(model, data, epochs=1, config=TrainConfig(seed=100 * seed + epoch))
        metrics.append(task.evaluate(model, held))
    losses = [m["loss"] for m in metrics]
    assert losses[1] < losses[0], losses
    assert losses[2] < losses[1], losses
    assert losses[3] < losses[0] / 4, losses
    assert metrics[2]["accuracy"] > metrics[0]["accuracy"] + 0.3, metrics


def test_a_large_proximal_term_keeps_training_near_the_global_model(task: DigitsTask) -> None:
    data = task.load_data().subset(np.arange(300))
    start = get_params(task.build_model(0))[0]
    moved = {}
    for mu in (0.0, 10.0):
        model = task.build_model(0)
        task.train(model, data, 2, TrainConfig(mu=mu, global_params=start, seed=1))
        moved[mu] = float(np.linalg.norm(get_params(model)[0] - start))
    assert moved[10.0] < 0.7 * moved[0.0]


def test_iid_shards_of_load_data_cover_the_training_set(task: DigitsTask) -> None:
    total = sum(len(task.load_data(i, 3)) for i in range(3))
    assert total == len(task.load_data())
    with pytest.raises(ValueError, match="does not exist"):
        task.load_data(3, 3)


def test_export_onnx_matches_torch(task: DigitsTask, tmp_path: Path) -> None:
    import torch

    model = task.build_model(0)
    task.train(model, task.load_data().subset(np.arange(200)), 1, TrainConfig())
    path = export_onnx(model, tmp_path / "digits.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    assert [o.name for o in session.get_outputs()] == ["probabilities"]
    x = task.holdout().x[:16]
    probabilities = session.run(None, {"input": x})[0]
    with torch.no_grad():
        expected = torch.softmax(model(torch.from_numpy(x)), dim=1).numpy()
    assert probabilities.shape == (16, 10)
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)


def test_the_wide_task_is_the_same_network_with_more_channels(tmp_path: Path) -> None:
    import torch

    wide = load_task("digits-wide")
    assert isinstance(wide, WideDigitsTask)
    assert (wide.name, wide.width, DigitsTask().width) == ("digits-wide", 16, 1)
    model = wide.build_model(0)
    flat = get_params(model)[0]
    assert flat.size == 306_698
    assert np.array_equal(flat, get_params(DigitsTask(width=16).build_model(0))[0])
    data = wide.load_data().subset(np.arange(64))
    assert wide.train(model, data, 1, TrainConfig(mu=0.1, global_params=flat, seed=2)) == 64
    path = export_onnx(model, tmp_path / "wide.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = wide.holdout().x[:8]
    with torch.no_grad():
        expected = torch.softmax(model(torch.from_numpy(x)), dim=1).numpy()
    np.testing.assert_allclose(session.run(None, {"input": x})[0], expected, atol=1e-5)


@pytest.mark.parametrize("width", [0, -1, 1.5, True])
def test_a_digits_width_must_be_a_positive_integer(width: object) -> None:
    with pytest.raises(ValueError, match="width must be an integer >= 1"):
        DigitsTask(width=width)  # type: ignore[arg-type]


class _Constant(Task):
    name = "constant"

    def build_model(self, seed: int = 0) -> object:
        return None

    def load_data(self, partition: int = 0, num_partitions: int = 1) -> Dataset:
        return Dataset(np.zeros((2, 1)), np.zeros(2))

    def holdout(self) -> Dataset:
        return self.load_data()

    def train(self, model: object, data: Dataset, epochs: int, config: TrainConfig) -> int:
        return 0

    def evaluate(self, model: object, data: Dataset) -> dict[str, float]:
        return {"accuracy": 1.0, "loss": 0.0}


CONSTANT = _Constant()
NOT_A_TASK = 42


def make_constant() -> Task:
    return _Constant()


def test_tasks_are_found_by_name_or_module_attr() -> None:
    assert isinstance(load_task("digits"), DigitsTask)
    assert isinstance(load_task("edgefleet.federated.tasks.digits:DigitsTask"), DigitsTask)
    assert load_task(f"{__name__}:CONSTANT") is CONSTANT
    assert isinstance(load_task(f"{__name__}:make_constant"), _Constant)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nope", "unknown task 'nope'"),
        ("no_such_module_xyz:Task", "cannot import 'no_such_module_xyz'"),
        (f"{__name__}:missing", "has no 'missing'"),
        (f"{__name__}:NOT_A_TASK", "is not a Task"),
    ],
)
def test_bad_task_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(TaskSpecError, match=message) as info:
        load_task(spec)
    assert isinstance(info.value, ConfigurationError)


def test_a_dataset_refuses_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="3 examples but 2 labels"):
        Dataset(np.zeros(3), np.zeros(2))
