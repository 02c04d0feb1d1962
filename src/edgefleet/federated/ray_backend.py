"""A simulation backend that runs the simulated devices as Ray tasks, here or on a cluster.

:class:`RayBackend` runs each round's client jobs
(:func:`~edgefleet.federated.simulation.run_client`) as Ray tasks, ``cpus_per_device`` CPUs
each, so a simulation of thousands of devices spreads over every core of this machine or over a
Ray cluster. Jobs are pure and seeded, so the results are those of
:class:`~edgefleet.federated.simulation.LocalBackend`, bit for bit, on machines that compute
alike.

What travels: the task and the shared training data go to the object store once per simulation
(the first round puts them, later rounds pass the same references); the model each device
trains from goes once per distinct model per round (with ``downlink="full"`` every device of a
round holds the same one). Each task gets its job's shard indices and codec state, and sends
back the device's report. PyTorch runs on one thread in each task, so tasks never fight over
cores.

A device that raises stops the round with :class:`ClientJobError`, naming the device, the
round and the error; the device's traceback is kept in ``remote_traceback``.

Ray is optional: ``pip install 'edgefleet[ray]'``. It is imported when a backend starts.

Nothing phones home: Ray reports usage statistics to its makers by default. Before Ray is
imported or started, :func:`require_ray` sets ``RAY_USAGE_STATS_ENABLED=0`` and
``RAY_USAGE_STATS_PROMPT_ENABLED=0`` in this process's environment (unless they are set
already: ``RAY_USAGE_STATS_ENABLED=1`` is yours to choose), which the Ray processes started here
inherit. A Ray started here runs without its dashboard and keeps its workers' logs out of the
driver's output. A cluster joined with ``address`` follows its own settings.

Ray started here also stays on this machine's loopback (:data:`LOOPBACK_NODE_IP`): left to
itself, it binds its control store to the machine's network address, reachable from the LAN.
And Ray 2.60's API-server process, which starts whatever ``include_dashboard`` says, asks cloud
metadata services (``169.254.169.254``, ``metadata.google.internal``) which cloud it runs on,
even with usage statistics off (``usage_stats_head.run`` reads the cluster config before
it checks the setting). No Ray option turns that off, so Ray is started with
:data:`CLOSED_PROXY` as its HTTP(S) proxy for everything but loopback: those requests fail at
once on a closed port of this machine instead of leaving it. The proxy variables are set only
while ``ray.init`` starts Ray's processes (which keep them) and restored afterwards.

Examples
--------
A thousand devices on this machine, two CPUs (skipped as a doctest: starting Ray takes
seconds):

>>> from edgefleet.federated.simulation import SimulationConfig, simulate
>>> config = SimulationConfig(clients=1000, per_round=100, rounds=3, compression="dgc:0.99")
>>> with RayBackend(num_cpus=2) as backend:  # doctest: +SKIP
...     result = simulate("digits", config, backend=backend)
>>> [r.participants for r in result.rounds]  # doctest: +SKIP
[100, 100, 100]

Settings are checked when the backend is made, before Ray starts:

>>> RayBackend(address="localhost")
Traceback (most recent call last):
...
ValueError: Ray address must be 'auto', 'ray://HOST:PORT' or 'HOST:PORT', got 'localhost'
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import traceback
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any

import numpy as np

from edgefleet.errors import EdgefleetError
from edgefleet.federated.params import Vector
from edgefleet.federated.simulation import Backend, ClientJob, ClientReport, run_client
from edgefleet.federated.task import Dataset, Task

__all__ = [
    "CLOSED_PROXY",
    "LOOPBACK_NODE_IP",
    "NO_TELEMETRY",
    "ClientJobError",
    "RayBackend",
    "require_ray",
]

NO_TELEMETRY = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_USAGE_STATS_PROMPT_ENABLED": "0"}
"""Ray's settings that turn its usage reporting off; set before Ray is imported or started."""

LOOPBACK_NODE_IP = "127.0.0.2"
"""The address of the Ray node started here. Ray replaces ``127.0.0.1`` (and ``localhost``) by
the machine's network address, which is reachable from the LAN; any other loopback address it
keeps, and Linux routes all of ``127.0.0.0/8`` to the loopback interface."""

CLOSED_PROXY = "http://127.0.0.1:9"
"""The HTTP(S) proxy of the Ray processes started here: port 9 of loopback, where nothing
listens, so a request Ray makes to anything but loopback fails without leaving the machine."""

_LOOPBACK = "127.0.0.1,localhost,::1"
_STARTING_ENV = {
    **dict.fromkeys(("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"), CLOSED_PROXY),
    **dict.fromkeys(("no_proxy", "NO_PROXY"), _LOOPBACK),
}


@contextlib.contextmanager
def _starting_ray() -> Iterator[None]:
    """Set the proxy variables for the processes ``ray.init`` starts; restore them after."""
    saved = {name: os.environ.get(name) for name in _STARTING_ENV}
    os.environ.update(_STARTING_ENV)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


_ADDRESS = re.compile(r"(ray://)?[^\s:/]+:\d{1,5}")
_NO_MODEL: Vector = np.empty(0, np.float32)


class ClientJobError(EdgefleetError, RuntimeError):
    """A simulated device failed in a round; ``device``, ``round`` and its traceback as text."""

    code = "fl.client_failed"

    def __init__(self, device: int, round_: int, problem: str, remote_traceback: str = "") -> None:
        super().__init__(f"device {device} failed in round {round_}: {problem}")
        self.device = device
        self.round = round_
        self.remote_traceback = remote_traceback


def require_ray() -> Any:
    """The ``ray`` module, or ``ImportError`` with the install hint.

    Sets :data:`NO_TELEMETRY` in the environment first (unless already set), so that neither
    this process nor the Ray processes it starts report usage statistics.
    """
    for name, value in NO_TELEMETRY.items():
        os.environ.setdefault(name, value)
    try:
        import ray
    except ImportError as exc:
        raise ImportError(
            "the Ray simulation backend needs Ray: pip install 'edgefleet[ray]'"
        ) from exc
    return ray


@dataclasses.dataclass(frozen=True)
class _Failure:
    """What a device's exception leaves behind: picklable whatever the exception was."""

    device: int
    round: int
    problem: str
    traceback: str


def _device(
    task: Task, data: Dataset, job: ClientJob, model: Vector, anchored: bool
) -> ClientReport | _Failure:
    """One Ray task: the job with its model put back, through ``run_client`` on one thread."""
    try:
        import torch
    except ImportError:  # pragma: no cover - a task without PyTorch
        pass
    else:
        torch.set_num_threads(1)
    held = np.array(model, np.float32)  # the object store's copy is read-only
    config = dataclasses.replace(job.config, global_params=held) if anchored else job.config
    try:
        return run_client(task, data, dataclasses.replace(job, model=held, config=config))
    except Exception as exc:
        problem = f"{type(exc).__name__}: {exc}"
        return _Failure(job.device, job.round, problem, traceback.format_exc())


class RayBackend(Backend):
    """Runs the client jobs as Ray tasks; see the module docs.

    Parameters
    ----------
    address
        ``None``: start Ray on this machine (or use the Ray this process already started).
        ``"auto"``, ``"HOST:PORT"`` or ``"ray://HOST:PORT"``: connect to a running cluster.
    num_cpus
        CPUs of the Ray started on this machine (default: all of them); ignored when
        connecting to a cluster.
    cpus_per_device
        CPUs Ray reserves for each device's task.

    Ray starts on :meth:`start` (or the first round) and stops on :meth:`close` (or leaving the
    ``with`` block), only if this backend started it. A process already connected to Ray keeps
    that connection, whatever ``address`` says.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        num_cpus: int | None = None,
        cpus_per_device: float = 1.0,
    ) -> None:
        if address is not None and address != "auto" and not _ADDRESS.fullmatch(address):
            raise ValueError(
                f"Ray address must be 'auto', 'ray://HOST:PORT' or 'HOST:PORT', got {address!r}"
            )
        if num_cpus is not None and (isinstance(num_cpus, bool) or num_cpus < 1):
            raise ValueError(f"num_cpus must be an integer >= 1, got {num_cpus!r}")
        if not (isinstance(cpus_per_device, int | float) and cpus_per_device > 0):
            raise ValueError(f"cpus_per_device must be a number > 0, got {cpus_per_device!r}")
        self.address = address
        self.num_cpus = num_cpus
        self.cpus_per_device = float(cpus_per_device)
        self._ray: Any = None
        self._owned = False
        self._remote: Any = None
        self._shared: tuple[Task, Dataset, Any, Any] | None = None

    def start(self) -> None:
        """Start Ray here or connect to the cluster; nothing if already done.

        Raises
        ------
        ImportError
            Ray is not installed (the message says how to install it).
        ConnectionError
            No Ray cluster answers at ``address``.
        """
        if self._remote is not None:
            return
        ray = require_ray()
        if not ray.is_initialized():
            quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
            if self.address is None:
                with _starting_ray():
                    ray.init(
                        num_cpus=self.num_cpus or os.cpu_count() or 1,
                        include_dashboard=False,
                        _node_ip_address=LOOPBACK_NODE_IP,
                        **quiet,
                    )
            else:
                try:
                    ray.init(address=self.address, **quiet)
                except ConnectionError as exc:
                    raise ConnectionError(
                        f"no Ray cluster answers at {self.address!r}: {exc}"
                    ) from exc
            self._owned = True
        self._ray = ray
        self._remote = ray.remote(_device).options(num_cpus=self.cpus_per_device)

    def run(self, task: Task, data: Dataset, jobs: Sequence[ClientJob]) -> list[ClientReport]:
        """Each job as a Ray task; the reports in the jobs' order.

        Raises
        ------
        ClientJobError
            A device raised (the first in the jobs' order is reported), or its worker died.
        """
        self.start()
        ray = self._ray
        if self._shared is None or self._shared[0] is not task or self._shared[1] is not data:
            self._shared = (task, data, ray.put(task), ray.put(data))
        task_ref, data_ref = self._shared[2], self._shared[3]
        models: dict[tuple[int, bytes], list[tuple[Vector, Any]]] = {}
        refs = []
        for job in jobs:
            model_ref = _put_once(ray, models, job.model)
            anchored = job.config.global_params is job.model
            config = job.config
            if anchored:
                config = dataclasses.replace(config, global_params=_NO_MODEL)
            bare = dataclasses.replace(job, model=_NO_MODEL, config=config)
            refs.append(self._remote.remote(task_ref, data_ref, bare, model_ref, anchored))
        try:
            results = ray.get(refs)
        except ray.exceptions.RayError:
            for ref in refs:
                ray.cancel(ref)
            for job, ref in zip(jobs, refs, strict=True):
                try:
                    ray.get(ref)
                except ray.exceptions.TaskCancelledError:
                    continue
                except ray.exceptions.RayError as exc:
                    problem = f"{type(exc).__name__}: {_first_line(exc)}"
                    raise ClientJobError(job.device, job.round, problem) from None
            raise  # pragma: no cover - ray.get failed, yet no job did
        for result in results:
            if isinstance(result, _Failure):
                raise ClientJobError(result.device, result.round, result.problem, result.traceback)
        return list(results)

    def close(self) -> None:
        """Drop the shared objects; shut Ray down if this backend started it."""
        self._shared = None
        self._remote = None
        if self._owned and self._ray is not None and self._ray.is_initialized():
            self._ray.shutdown()
        self._owned = False

    def __enter__(self) -> RayBackend:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _put_once(
    ray: Any, models: dict[tuple[int, bytes], list[tuple[Vector, Any]]], model: Vector
) -> Any:
    """The object ref of ``model``, put in the store unless an equal one already is."""
    key = (model.size, model[:: max(1, model.size // 64)].tobytes())
    bucket = models.setdefault(key, [])
    for known, ref in bucket:
        if known is model or np.array_equal(known, model):
            return ref
    ref = ray.put(model)
    bucket.append((model, ref))
    return ref


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no message"
