"""Local training hooks: what a user "task" gives federated learning, and how to find one.

A :class:`Task` is the device-side half of a federated job: it builds the (PyTorch) model,
loads the device's local data, trains the model on it for a few epochs and evaluates it. The
federated code never looks inside the model: :func:`get_params` and :func:`set_params` move its
floating-point ``state_dict`` entries to and from one flat float32
:data:`~edgefleet.federated.params.Vector`, the form strategies and codecs work on (integer
buffers such as batch-norm counters stay on the device).

Tasks are named by a spec: a built-in name (``"digits"``, ``"digits-wide"``) or
``"module:attr"``, where ``attr`` is a :class:`Task` subclass, a task instance, or a function
returning one. :func:`load_task` resolves it.

PyTorch is optional (the ``train`` extra); it is imported only when a task trains, with an
install hint when missing.

Examples
--------
>>> import numpy as np
>>> config = TrainConfig(mu=0.01, global_params=np.zeros(3, np.float32), seed=3)
>>> config.mu, config.seed
(0.01, 3)
>>> TrainConfig(mu=0.01)
Traceback (most recent call last):
...
ValueError: a proximal term (mu > 0) needs the global parameters
>>> load_task("no-such-task")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
edgefleet.federated.task.TaskSpecError: unknown task 'no-such-task' (built in: digits, ...)
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from edgefleet.errors import ConfigurationError
from edgefleet.federated.params import Layout, Vector, flatten, unflatten

__all__ = [
    "TASKS",
    "Dataset",
    "Task",
    "TaskSpecError",
    "TrainConfig",
    "get_params",
    "load_task",
    "require_torch",
    "set_params",
]

TASKS: Mapping[str, str] = {
    "digits": "edgefleet.federated.tasks.digits:DigitsTask",
    "digits-wide": "edgefleet.federated.tasks.digits:WideDigitsTask",
}
"""Built-in tasks by name, as ``module:attr``."""


class TaskSpecError(ConfigurationError, ValueError):
    """A task spec names no task: unknown name, missing module or attribute, not a task."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """Examples and labels held by one device (or the held-out set); ``x[i]`` goes with ``y[i]``."""

    x: NDArray[Any]
    y: NDArray[Any]

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise ValueError(f"{len(self.x)} examples but {len(self.y)} labels")

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, indices: NDArray[np.int64]) -> Dataset:
        """The examples at ``indices``, in that order."""
        return Dataset(self.x[indices], self.y[indices])


@dataclass(frozen=True, eq=False)
class TrainConfig:
    """How one round of local training runs.

    Parameters
    ----------
    mu
        FedProx's proximal coefficient (0 for plain local training); see
        :class:`~edgefleet.federated.strategies.FedProx`.
    global_params
        The global model the round started from, as a flat vector; needed when ``mu > 0``.
    seed
        Seeds the order of the examples, so a round is reproducible.
    learning_rate, batch_size
        Override the task's defaults when given.
    """

    mu: float = 0.0
    global_params: Vector | None = None
    seed: int = 0
    learning_rate: float | None = None
    batch_size: int | None = None

    def __post_init__(self) -> None:
        if not np.isfinite(self.mu) or self.mu < 0:
            raise ValueError(f"mu must be a finite number >= 0, got {self.mu}")
        if self.mu > 0 and self.global_params is None:
            raise ValueError("a proximal term (mu > 0) needs the global parameters")


class Task(abc.ABC):
    """A federated learning task: model, local data, local training and evaluation."""

    name: ClassVar[str]
    """Short name, shown in reports."""

    @abc.abstractmethod
    def build_model(self, seed: int = 0) -> Any:
        """A freshly initialised ``torch.nn.Module`` (initialisation seeded by ``seed``)."""

    @abc.abstractmethod
    def load_data(self, partition: int = 0, num_partitions: int = 1) -> Dataset:
        """The local training data of device ``partition`` out of ``num_partitions``.

        ``load_data()`` (partition 0 of 1) is the whole training set, which a simulation then
        splits with :mod:`edgefleet.federated.partition`.
        """

    @abc.abstractmethod
    def holdout(self) -> Dataset:
        """Held-out data for evaluating the global model (never trained on)."""

    @abc.abstractmethod
    def train(self, model: Any, data: Dataset, epochs: int, config: TrainConfig) -> int:
        """Train ``model`` in place on ``data`` for ``epochs``; the number of examples used."""

    @abc.abstractmethod
    def evaluate(self, model: Any, data: Dataset) -> dict[str, float]:
        """Metrics of ``model`` on ``data``; at least ``accuracy`` and ``loss``."""

    def to_onnx(self, model: Any) -> bytes:
        """``model`` as a serialized ONNX model, for the registry (the job's result).

        Tasks whose result is registered override it; the default names what is missing.
        """
        raise NotImplementedError(
            f"task {self.name!r} cannot export ONNX: implement Task.to_onnx to register its result"
        )

    def params_from_onnx(self, onnx_bytes: bytes) -> Vector:
        """The flat parameters of a registered ONNX model, to start a federated job from it.

        The default reads the model's initializers named like the floating-point entries of
        :meth:`build_model`'s ``state_dict`` (as ``torch.onnx.export`` and :meth:`to_onnx`
        name them), in that order.

        Raises
        ------
        ValueError
            An initializer is missing or has another shape than the task's model.
        """
        import onnx
        from onnx import numpy_helper

        proto = onnx.load_from_string(onnx_bytes)
        found = {init.name: init for init in proto.graph.initializer}
        template = _float_state(self.build_model())
        arrays: dict[str, NDArray[np.float32]] = {}
        for name, expected in template.items():
            if name not in found:
                raise ValueError(f"the ONNX model has no initializer {name!r} of task {self.name}")
            array = numpy_helper.to_array(found[name]).astype(np.float32)
            if array.shape != expected.shape:
                raise ValueError(
                    f"initializer {name!r} has shape {list(array.shape)}, "
                    f"task {self.name} expects {list(expected.shape)}"
                )
            arrays[name] = array
        return flatten(arrays)[0]


def require_torch() -> Any:
    """The ``torch`` module, or ``ImportError`` with the install hint."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError(
            "federated training needs PyTorch: pip install 'edgefleet[train]'"
        ) from exc
    return torch


def _float_state(model: Any) -> dict[str, NDArray[np.float32]]:
    torch = require_torch()
    return {
        name: tensor.detach().cpu().numpy().astype(np.float32)
        for name, tensor in model.state_dict().items()
        if torch.is_floating_point(tensor)
    }


def get_params(model: Any) -> tuple[Vector, Layout]:
    """The model's floating-point ``state_dict`` entries as one flat vector, and its layout."""
    return flatten(_float_state(model))


def set_params(model: Any, flat: Vector) -> None:
    """Load a flat vector (from :func:`get_params` of the same architecture) into ``model``.

    Raises
    ------
    ValueError
        The vector does not fit the model's floating-point parameters.
    """
    torch = require_torch()
    layout = flatten(_float_state(model))[1]
    arrays = unflatten(np.asarray(flat, np.float32), layout)
    state = model.state_dict()
    with torch.no_grad():
        for name, array in arrays.items():
            state[name].copy_(torch.from_numpy(array))


def load_task(spec: str) -> Task:
    """The task named by ``spec``: a built-in name or ``module:attr``.

    Raises
    ------
    TaskSpecError
        Naming what is wrong: unknown name, module not importable, no such attribute, or an
        attribute that is not a task.
    """
    text = spec.strip()
    target = TASKS.get(text, text)
    module_name, colon, attr = target.partition(":")
    if not colon or not module_name or not attr:
        known = ", ".join(sorted(TASKS))
        raise TaskSpecError(f"unknown task {spec!r} (built in: {known}; or give module:attr)")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TaskSpecError(f"task {spec!r}: cannot import {module_name!r}: {exc}") from exc
    try:
        found = getattr(module, attr)
    except AttributeError:
        raise TaskSpecError(f"task {spec!r}: module {module_name!r} has no {attr!r}") from None
    if isinstance(found, type) and issubclass(found, Task):
        return found()
    if isinstance(found, Task):
        return found
    if callable(found):
        made = found()
        if isinstance(made, Task):
            return made
    raise TaskSpecError(f"task {spec!r}: {attr!r} is not a Task (nor a function returning one)")
