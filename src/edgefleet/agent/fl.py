"""The agent's part in federated jobs: train the assigned round on local data, send the delta.

An :class:`~edgefleet.protocol.v1.FLAssignment` arrives in the signed desired state. The
:class:`FLWorker` thread then:

1. declines the round when the task is not enabled here (``EDGEFLEET_FL_TASKS``): the server
   never makes a device run code it was not configured to run;
2. fetches the round's global model and checks it against the assignment's hash;
3. trains it with the task on this device's data (``EDGEFLEET_FL_PARTITION``), which never
   leaves the device;
4. clips and noises the delta when the job asks for differential privacy on the device, then
   encodes ``trained - global`` with the round's codec for the assignment's round (DGC's
   warm-up follows the job's round, not how often this device took part), whose state
   (error-feedback residuals, momentum) lives in ``<data dir>/fl/<job>/codec.state``;
5. uploads the payload, retrying network failures until the round's deadline, and only once
   the server took it stores the codec's new state and notes the round as done.

So a device killed mid-round loses nothing but that round, and a restarted one resumes with
the residual it had; an update the server refused (round closed) leaves the stored state as it
was before the round. Training runs in this thread, beside serving: it shares the device's
CPU (and the process's interpreter lock) with inference while a round trains.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgefleet.agent._files import read_json, write_atomic, write_json_atomic
from edgefleet.agent.backoff import Backoff
from edgefleet.agent.reporter import EventLog
from edgefleet.agent.uplink import RefusedError, Uplink
from edgefleet.errors import UplinkError
from edgefleet.federated import (
    Dataset,
    Task,
    TrainConfig,
    Vector,
    codec_from_spec,
    encode_for_round,
    get_params,
    load_task,
    model_hash,
    privacy_from_spec,
    privatize_update,
    set_params,
)
from edgefleet.protocol.v1 import FLAssignment

__all__ = ["FLWorker", "parse_partition"]

log = logging.getLogger(__name__)


def parse_partition(text: str) -> tuple[int, int]:
    """``"I/N"`` -> ``(I, N)``: this device holds shard ``I`` of ``N`` of the task's data.

    >>> parse_partition("3/10")
    (3, 10)
    >>> parse_partition("10/10")
    Traceback (most recent call last):
    ...
    ValueError: partition '10/10' must be I/N with 0 <= I < N
    """
    index, slash, count = text.strip().partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i, n = -1, 0
    if not slash or not 0 <= i < n:
        raise ValueError(f"partition {text!r} must be I/N with 0 <= I < N")
    return i, n


def _device_number(device_id: str) -> int:
    return int(hashlib.sha256(device_id.encode()).hexdigest()[:8], 16)


def _train_seed(seed: int, round_: int, device_id: str) -> int:
    mixed = np.random.SeedSequence([seed, round_, _device_number(device_id)])
    return int(mixed.generate_state(1)[0])


class FLWorker:
    """Trains assigned rounds, one at a time, in its own thread.

    Parameters
    ----------
    device_id
        This device.
    uplink
        Authenticated client of the control plane.
    folder
        Where per-job state lives (``<data dir>/fl``).
    tasks
        Task specs this device trains (others are declined).
    partition
        ``(I, N)``: the shard of the task's data this device holds.
    events
        Where each round's outcome is reported.
    stop
        Set when the agent stops.
    backoff
        Makes the retry policy of uploads.
    """

    def __init__(
        self,
        *,
        device_id: str,
        uplink: Uplink,
        folder: Path,
        tasks: list[str],
        partition: tuple[int, int],
        events: EventLog,
        stop: threading.Event,
        backoff: Callable[[], Backoff],
    ) -> None:
        self.device_id = device_id
        self.uplink = uplink
        self.folder = folder
        self.tasks = list(tasks)
        self.partition = partition
        self.events = events
        self.stop = stop
        self._backoff = backoff
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._assignment: FLAssignment | None = None
        self._loaded: dict[str, tuple[Task, Dataset]] = {}

    # -- called by the desired-state loop ---------------------------------------------------------

    def offer(self, assignment: FLAssignment | None) -> None:
        """The assignment of the newest desired state (None: none); wakes the worker."""
        with self._lock:
            changed = assignment != self._assignment
            self._assignment = assignment
        if changed:
            self._wake.set()

    # -- the thread -------------------------------------------------------------------------------

    def run(self) -> None:
        """Load the enabled tasks and their data, then train assigned rounds until stopped.

        Loading first means a round does not wait for PyTorch and the data to load.
        """
        for spec in self.tasks:
            try:
                self._task_and_data(spec)
            except Exception as exc:  # reported now; a round of this task declines later
                log.error("federated task %r cannot be loaded here: %s", spec, exc)
                self.events.emit("fl_update", ok=False, detail=f"task {spec!r}: {exc!r}")
        while not self.stop.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            with self._lock:
                assignment = self._assignment
            if assignment is None or self.stop.is_set():
                continue
            try:
                if self.done(assignment):
                    continue
                self.work(assignment)
            except Exception as exc:  # keep the agent up; the server closes the round anyway
                log.exception("federated round %s/%d", assignment.job_id, assignment.round)
                self._finish(assignment, ok=False, detail=f"failed: {exc!r}")

    def work(self, a: FLAssignment) -> None:
        """Take part in round ``a`` (see the module docs); returns once it is settled here."""
        if a.task not in self.tasks:
            enabled = ", ".join(self.tasks) or "none"
            self._decline(a, f"task {a.task!r} is not enabled here (enabled: {enabled})")
            return
        global_model = self._fetch_model(a)
        if global_model is None:
            return
        try:
            task, data = self._task_and_data(a.task)
        except Exception as exc:  # a broken task or data source: the round goes on without us
            self._decline(a, f"task {a.task!r} cannot be loaded here: {exc}")
            return
        if len(data) == 0:
            self._decline(a, "no local training data")
            return
        started = time.monotonic()
        model = task.build_model()
        set_params(model, global_model)
        config = TrainConfig(
            mu=a.mu,
            global_params=global_model if a.mu > 0 else None,
            seed=_train_seed(a.seed, a.round, self.device_id),
            learning_rate=a.learning_rate,
            batch_size=a.batch_size,
        )
        examples = task.train(model, data, a.local_epochs, config)
        metrics = task.evaluate(model, data)
        delta = get_params(model)[0] - global_model
        if a.privacy is not None:
            spec = privacy_from_spec(a.privacy)
            if spec.at == "device":  # noise from the OS's entropy: never reproducible
                delta, _ = privatize_update(delta, spec.mechanism(), np.random.default_rng())
        codec = codec_from_spec(a.compression)
        state_path = self._job_dir(a) / "codec.state"
        if state_path.is_file():
            try:
                codec.load_state(state_path.read_bytes())
            except ValueError as exc:
                log.warning("ignoring unreadable codec state %s: %s", state_path, exc)
        payload = encode_for_round(codec, a.round, delta)  # the simulation's rule too
        train_s = time.monotonic() - started
        sent = self._upload(a, payload, max(1, examples), metrics)
        if sent is None:
            return
        write_atomic(state_path, codec.state_bytes())
        self._finish(
            a,
            ok=True,
            detail=f"sent {len(payload)} bytes ({examples} examples, {train_s:.1f} s training, "
            f"local loss {metrics.get('loss', float('nan')):.4f}): {sent}",
        )

    # -- steps ------------------------------------------------------------------------------------

    def _task_and_data(self, spec: str) -> tuple[Task, Dataset]:
        loaded = self._loaded.get(spec)
        if loaded is None:
            task = load_task(spec)
            index, count = self.partition
            loaded = (task, task.load_data(index, count))
            self._loaded[spec] = loaded
        return loaded

    def _fetch_model(self, a: FLAssignment) -> Vector | None:
        backoff = self._backoff()
        while not self.stop.is_set():
            try:
                data = self.uplink.fl_model(a.job_id, a.round)
                break
            except RefusedError as exc:
                if exc.retryable:
                    self.stop.wait(backoff.next_delay())
                    continue
                self._finish(a, ok=False, detail=f"model refused: {exc}")
                return None
            except UplinkError as exc:
                if time.time() > a.deadline:
                    self._finish(a, ok=False, detail=f"no model before the deadline: {exc}")
                    return None
                self.stop.wait(backoff.next_delay())
        else:
            return None
        params = np.frombuffer(data, dtype="<f4").astype(np.float32)
        if params.size != a.num_params or model_hash(params) != a.model_hash:
            self._finish(
                a,
                ok=False,
                detail=f"the round's model does not match its signed hash {a.model_hash} "
                f"({params.size} parameters, hash {model_hash(params)})",
            )
            return None
        return params

    def _upload(
        self, a: FLAssignment, payload: bytes, examples: int, metrics: dict[str, float]
    ) -> str | None:
        """Send the update; the server's answer, or None when it was refused or is too late."""
        backoff = self._backoff()
        body = {k: float(v) for k, v in metrics.items() if np.isfinite(v)}
        while not self.stop.is_set():
            try:
                ack = self.uplink.fl_update(a.job_id, a.round, payload, examples, json.dumps(body))
                return ack.detail or "accepted"
            except RefusedError as exc:
                if exc.retryable and time.time() <= a.deadline:
                    self.stop.wait(backoff.next_delay())
                    continue
                self._finish(a, ok=False, detail=f"update refused: {exc}")
                return None
            except UplinkError as exc:
                if time.time() > a.deadline:
                    self._finish(a, ok=False, detail=f"update not sent by the deadline: {exc}")
                    return None
                self.stop.wait(backoff.next_delay())
        return None

    def _decline(self, a: FLAssignment, reason: str) -> None:
        try:
            self.uplink.fl_decline(a.job_id, a.round, reason)
        except UplinkError as exc:
            log.info("could not decline round %s/%d: %s", a.job_id, a.round, exc)
        self._finish(a, ok=False, detail=f"declined: {reason}")

    # -- bookkeeping ------------------------------------------------------------------------------

    def _job_dir(self, a: FLAssignment) -> Path:
        folder = self.folder / a.job_id  # a plain name: FLAssignment's pattern checks it
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def done(self, a: FLAssignment) -> bool:
        """Whether round ``a`` was already settled here (also before a restart)."""
        path = self._job_dir(a) / "rounds.json"
        try:
            data: Any = read_json(path) if path.is_file() else {}
        except ValueError:
            return False
        return isinstance(data, dict) and data.get("last_round", 0) >= a.round

    def _finish(self, a: FLAssignment, *, ok: bool, detail: str) -> None:
        write_json_atomic(
            self._job_dir(a) / "rounds.json", {"last_round": a.round, "ok": ok, "detail": detail}
        )
        self.events.emit("fl_update", ok=ok, detail=f"job {a.job_id} round {a.round}: {detail}")
        (log.info if ok else log.warning)("federated %s round %d: %s", a.job_id, a.round, detail)
