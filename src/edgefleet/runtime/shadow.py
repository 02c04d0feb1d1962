"""Shadow execution: a candidate model scores a sample of live inputs, off the request path.

A :class:`ShadowRunner` is a :data:`~edgefleet.runtime.repository.Tap` on the active model's
serving name. For a ``sample_rate`` share of the calls the active model answered, it copies the
answer and queues the inputs (the request thread never waits: when the bounded queue is full the
sample is dropped and counted). One worker thread runs the shadow model on them, compares the
two outputs with a pluggable :class:`OutputComparator`, and adds up the comparison per active
version. The shadow model's own telemetry (latency, calibrated confidence, errors) is in its
recorder as usual. Nothing the shadow does can change an answer or fail a request.

Examples
--------
>>> a = {"p": np.array([[0.9, 0.1], [0.2, 0.8]])}
>>> b = {"p": np.array([[0.6, 0.4], [0.7, 0.3]])}
>>> top1_disagreement(a, b).tolist()
[False, True]
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from edgefleet.runtime.servable import Servable

__all__ = ["OutputComparator", "ShadowRunner", "ShadowTally", "top1_disagreement"]

log = logging.getLogger(__name__)

Outputs = Mapping[str, NDArray[Any]]


class OutputComparator(Protocol):
    """Compares the active and the shadow model's outputs for the same inputs."""

    def __call__(self, active: Outputs, shadow: Outputs) -> NDArray[np.bool_]:
        """One flag per sample: ``True`` where the two models disagree."""
        ...


def _first(outputs: Outputs) -> NDArray[Any]:
    if not outputs:
        raise ValueError("the model returned no outputs")
    return np.asarray(next(iter(outputs.values())))


def top1_disagreement(active: Outputs, shadow: Outputs) -> NDArray[np.bool_]:
    """Whether the top-1 class (argmax of the first output's last axis) differs, per sample.

    Raises
    ------
    ValueError
        The first outputs do not have the same number of samples and classes.
    """
    a, b = _first(active), _first(shadow)
    if a.shape != b.shape or a.ndim == 0:
        raise ValueError(f"outputs shaped {list(a.shape)} and {list(b.shape)} cannot be compared")
    rows_a, rows_b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    result: NDArray[np.bool_] = rows_a.argmax(axis=1) != rows_b.argmax(axis=1)
    return result


@dataclass(frozen=True)
class ShadowTally:
    """The comparison with one active version over one window."""

    active_version: str
    compared: int = 0
    disagreed: int = 0
    confidence_delta_sum: float = 0.0

    def add(self, compared: int, disagreed: int, delta: float) -> ShadowTally:
        """A copy with one more comparison added."""
        return ShadowTally(
            self.active_version,
            self.compared + compared,
            self.disagreed + disagreed,
            self.confidence_delta_sum + delta,
        )


@dataclass(frozen=True)
class _Sample:
    active_version: str
    active_confidence: NDArray[np.floating] | None
    feeds: Outputs
    outputs: dict[str, NDArray[Any]]


def _confidence(servable: Servable, outputs: Outputs) -> NDArray[np.floating] | None:
    confidence_of = getattr(servable, "confidence_of", None)
    if confidence_of is None:
        return None
    values: NDArray[np.floating] | None = confidence_of(outputs)
    return values


class ShadowRunner:
    """Runs ``shadow`` beside the active model on sampled live inputs.

    Parameters
    ----------
    shadow
        The candidate (loaded, checked); closed by :meth:`stop`.
    sample_rate
        Share of the active model's answered calls also run on the shadow, in (0, 1].
    comparator
        Compares outputs; top-1 agreement of the first output by default.
    queue_size
        Samples waiting for the worker at most; more are dropped and counted.
    rng
        Draws the samples.
    """

    def __init__(
        self,
        shadow: Servable,
        sample_rate: float,
        *,
        comparator: OutputComparator = top1_disagreement,
        queue_size: int = 64,
        rng: random.Random | None = None,
    ) -> None:
        self.shadow = shadow
        self.sample_rate = sample_rate
        self.comparator = comparator
        self._rng = rng or random.Random()
        self._queue: queue.Queue[_Sample | None] = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()
        self._tallies: dict[str, ShadowTally] = {}
        self.dropped = 0
        """Samples dropped because the queue was full (ever)."""
        self.errors = 0
        """Samples the shadow or the comparison failed on (ever)."""
        self.last_error = ""
        self._thread = threading.Thread(
            target=self._work, name=f"edgefleet-shadow-{shadow.name}", daemon=True
        )
        self._started = False

    def start(self) -> None:
        """Start the worker thread."""
        self._started = True
        self._thread.start()

    # -- request thread -----------------------------------------------------------------------

    def __call__(self, served: Servable, feeds: Outputs, outputs: dict[str, NDArray[Any]]) -> None:
        """Offer one answered call (the tap); return at once whether or not it is sampled."""
        if self._rng.random() >= self.sample_rate:
            return
        # The answer's arrays may be reused buffers: keep a copy, and the confidence now.
        copied = {k: np.array(v, copy=True) for k, v in outputs.items()}
        try:
            sample = _Sample(served.version, _confidence(served, copied), feeds, copied)
            self._queue.put_nowait(sample)
        except queue.Full:
            with self._lock:
                self.dropped += 1

    # -- worker -------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            sample = self._queue.get()
            if sample is None:
                self._queue.task_done()
                return
            try:
                self._score(sample)
            except Exception as exc:  # the shadow's failure is data, never an outage
                with self._lock:
                    self.errors += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                log.debug("shadow %s failed on a sample: %s", self.shadow.name, exc)
            finally:
                self._queue.task_done()

    def _score(self, sample: _Sample) -> None:
        outputs = self.shadow.predict(sample.feeds)
        flags = np.asarray(self.comparator(sample.outputs, outputs), dtype=bool).reshape(-1)
        delta = 0.0
        shadow_confidence = _confidence(self.shadow, outputs)
        active_confidence = sample.active_confidence
        if (
            active_confidence is not None
            and shadow_confidence is not None
            and len(shadow_confidence) == len(active_confidence) == len(flags)
        ):
            delta = float(np.sum(shadow_confidence - active_confidence))
        with self._lock:
            tally = self._tallies.get(sample.active_version) or ShadowTally(sample.active_version)
            self._tallies[sample.active_version] = tally.add(len(flags), int(flags.sum()), delta)

    # -- windows and stop ---------------------------------------------------------------------

    def take(self) -> list[ShadowTally]:
        """The comparisons since the last call, one per active version, and start anew."""
        with self._lock:
            tallies = list(self._tallies.values())
            self._tallies = {}
        return tallies

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until every queued sample was scored; return whether that happened in time."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the worker (queued samples are discarded) and close the shadow model."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
            self._queue.task_done()
        if self._started:
            with contextlib.suppress(queue.Full):  # only the worker takes from the queue
                self._queue.put(None, timeout=timeout)
            self._thread.join(timeout)
        self.shadow.close(timeout)
