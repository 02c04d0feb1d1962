"""The server side of a federated job's model: tasks, global parameters, evaluation, export.

Global parameters are stored as artifacts (float32 little-endian bytes, named by SHA-256), as
models are, so every server process sharing the artifact store reads the same ones. The job's
task is loaded once per process; evaluating and exporting need PyTorch (the ``train`` extra)
on the server, as training does on the devices.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from edgefleet.errors import ConfigurationError, NotFoundError
from edgefleet.federated import Task, Vector, load_task, set_params
from edgefleet.server.context import ServerContext
from edgefleet.server.services import registry

__all__ = [
    "evaluate",
    "job_task",
    "load_params",
    "params_of_version",
    "register_result",
    "store_params",
]

log = logging.getLogger(__name__)

_tasks: dict[str, Task] = {}
_tasks_lock = threading.Lock()
_GOLDEN_CASES = 8


def job_task(spec: str) -> Task:
    """The task named ``spec``, loaded once per process.

    Raises
    ------
    ConfigurationError
        The task cannot be loaded here (unknown, not importable, PyTorch missing).
    """
    with _tasks_lock:
        task = _tasks.get(spec)
        if task is None:
            try:
                task = load_task(spec)
            except ImportError as exc:
                raise ConfigurationError(f"task {spec!r}: {exc}") from exc
            _tasks[spec] = task
        return task


def store_params(ctx: ServerContext, params: Vector) -> str:
    """Store ``params`` as an artifact; its SHA-256."""
    data = np.ascontiguousarray(params, dtype="<f4").tobytes()
    sha256, _ = ctx.artifacts.put_bytes(data)
    return sha256


def load_params(ctx: ServerContext, sha256: str) -> Vector:
    """The parameters stored as artifact ``sha256``."""
    data = ctx.artifacts.path(sha256).read_bytes()
    return np.frombuffer(data, dtype="<f4").astype(np.float32)


def evaluate(task: Task, params: Vector) -> dict[str, float]:
    """The task's metrics of ``params`` on its held-out data (empty when it has none)."""
    model = task.build_model()
    set_params(model, params)
    try:
        holdout = task.holdout()
    except (NotImplementedError, OSError) as exc:
        log.info("task %s has no held-out data here: %s", task.name, exc)
        return {}
    if len(holdout) == 0:
        return {}
    return {k: float(v) for k, v in task.evaluate(model, holdout).items()}


def params_of_version(ctx: ServerContext, task: Task, name: str, version: str) -> Vector:
    """The flat parameters of registered model ``name@version``, checked against ``task``.

    Raises
    ------
    NotFoundError
        No such model version.
    ConfigurationError
        The model does not fit the task.
    """
    row = ctx.store.get_model_version(name, version)
    if row is None:
        raise NotFoundError(f"no model version {name}@{version}")
    data = ctx.artifacts.path(row.sha256).read_bytes()
    try:
        return task.params_from_onnx(data)
    except (ValueError, NotImplementedError) as exc:
        raise ConfigurationError(
            f"model {name}@{version} does not fit task {task.name!r}: {exc}"
        ) from exc


def register_result(
    ctx: ServerContext, task: Task, name: str, params: Vector, now: float, job_id: str
) -> str:
    """Export ``params`` to ONNX, calibrate on the held-out data, register; the new version.

    Raises
    ------
    NotImplementedError
        The task cannot export ONNX.
    """
    model = task.build_model()
    set_params(model, params)
    onnx_bytes = task.to_onnx(model)
    with tempfile.TemporaryDirectory(dir=ctx.settings.data_dir) as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(onnx_bytes)
        calibration = _calibration_file(task, Path(tmp))
        row, _ = registry.push_model(
            ctx,
            path,
            name=name,
            version=None,
            golden=_GOLDEN_CASES,
            calibration=calibration,
            now=now,
        )
    log.info("federated job %s registered %s@%s", job_id, name, row.version)
    return row.version


def _calibration_file(task: Task, folder: Path) -> Path | None:
    """The task's held-out data as a calibration ``.npz`` (``x``, ``y``), or None."""
    try:
        holdout = task.holdout()
    except (NotImplementedError, OSError):
        return None
    if len(holdout) < 20:
        return None
    path = folder / "calibration.npz"
    x: Any = np.asarray(holdout.x, np.float32)
    np.savez(path, x=x, y=np.asarray(holdout.y, np.int64))
    return path
