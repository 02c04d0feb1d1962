"""Per-model inference telemetry, cheap enough for the inference hot path.

The hot path only writes raw numbers into preallocated rings under a short lock: the latency of
the call in nanoseconds and, for softmax classifiers, the output rows themselves. The quantile
sketch, the cumulative latency histogram and the confidence statistics are updated from the
rings in batches (when a ring fills and when a snapshot or the totals are taken), where
vectorised numpy makes the per-call cost negligible.

Two views come out: :meth:`InferenceRecorder.snapshot` covers a window (reset when the agent
closes one), :meth:`InferenceRecorder.totals` everything since the model was loaded, for
Prometheus counters and histograms that never go down.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Mapping

import numpy as np
from numpy.typing import NDArray

from edgefleet.telemetry.confidence import ConfidenceExtractor, MaxProbability
from edgefleet.telemetry.confidence_stats import ConfidenceStats
from edgefleet.telemetry.latency_sketch import LatencySketch
from edgefleet.telemetry.snapshot import TelemetrySnapshot
from edgefleet.telemetry.totals import LatencyHistogram, TelemetryTotals

__all__ = ["InferenceRecorder", "RowRing"]

DEFAULT_CAPACITY = 4096
"""Calls (and probability rows) buffered between batch reductions."""
_RING_SLOTS = 256  # calls written into a ring before it is reduced (one IOBinding per slot)


class RowRing:
    """Slots of probability rows that the runtime lets ONNX Runtime write into directly.

    The runtime binds each slot as the output buffer of one call, so the rows reach telemetry
    without a copy; the recorder reduces the written slots in batches. ``written`` is advanced
    only by the thread that owns the ring, after a call completed.
    """

    __slots__ = ("__weakref__", "consumed", "rows", "written")

    def __init__(self, slots: int, row_shape: tuple[int, ...]) -> None:
        self.rows = np.empty((slots, *row_shape), dtype=np.float32)
        self.written = 0
        self.consumed = 0


class InferenceRecorder:
    """Collects the telemetry of one model (one name and version).

    Parameters
    ----------
    model, version
        Identify the model in snapshots.
    confidence
        Extractor of per-sample confidences, or ``None`` to record none.
    classes
        For a :class:`MaxProbability` extractor, the width of the probability rows; lets the
        recorder buffer raw rows and reduce them in batches.
    capacity
        Number of calls (and rows) buffered between batch reductions.
    clock
        Wall clock for snapshot windows (Unix seconds).
    """

    def __init__(
        self,
        model: str,
        version: str,
        confidence: ConfidenceExtractor | None = None,
        *,
        classes: int | None = None,
        capacity: int = DEFAULT_CAPACITY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.model = model
        self.version = version
        self.extractor = confidence
        self._clock = clock
        self._lock = threading.Lock()
        self._capacity = capacity
        self._latency_ns: list[int] = []
        self._rows: NDArray[np.float32] | None = None
        self._row_output = ""
        if isinstance(confidence, MaxProbability) and classes is not None and classes > 1:
            self._rows = np.empty((capacity, classes), dtype=np.float32)
            self._row_output = confidence.output
        self._nrows = 0
        # Per-row maxima of drained rings, folded into the statistics every `capacity` rows.
        self._maxima = np.empty(capacity if self._rows is not None else 0, dtype=np.float32)
        self._nmaxima = 0
        self._pending_conf: list[NDArray[np.floating]] = []
        self._rings: weakref.WeakSet[RowRing] = weakref.WeakSet()
        self._reset_totals()
        self._reset_window()

    def _reset_totals(self) -> None:
        # Totals of closed windows; the open window's are added when totals are read.
        self._closed = TelemetryTotals(self.model, self.version)
        self._histogram = LatencyHistogram()  # every successful call, updated at each flush

    def _reset_window(self) -> None:
        self._started = self._clock()
        self._count = 0
        self._errors = 0
        self._rejected = 0
        self._error_seconds = 0.0
        self._sketch = LatencySketch()
        self._confidence = ConfidenceStats()

    # -- hot path -----------------------------------------------------------------------------

    def ring_for(self, output: str, shape: tuple[int, ...]) -> RowRing | None:
        """A ring the runtime may bind ``output`` of ``shape`` to, or ``None`` if not useful.

        Only the rows of a :class:`MaxProbability` output of the expected width qualify.
        """
        if self._rows is None or output != self._row_output or len(shape) != 2:
            return None
        if shape[1] != self._rows.shape[1] or shape[0] < 1:
            return None
        ring = RowRing(max(1, min(_RING_SLOTS, self._capacity // shape[0])), shape)
        with self._lock:
            self._rings.add(ring)
        return ring

    def ring_full(self, ring: RowRing) -> None:
        """Reduce a full ring and hand it back empty (called by the thread that owns it)."""
        with self._lock:
            self._drain(ring)
            ring.consumed = ring.written = 0

    def _drain(self, ring: RowRing) -> None:
        """Reduce a ring's written rows to their maxima, kept in a buffer folded in batches."""
        written = ring.written
        if written > ring.consumed:
            rows = ring.rows[ring.consumed : written]
            flat = rows.reshape(-1, rows.shape[-1])
            buf, n, m = self._maxima, self._nmaxima, flat.shape[0]
            if n + m > len(buf):
                self._fold_maxima()
                n = 0
            if m > len(buf):
                self._confidence.add_many(flat.max(axis=1))
            else:
                np.max(flat, axis=1, out=buf[n : n + m])
                self._nmaxima = n + m
            ring.consumed = written

    def _fold_maxima(self) -> None:
        if self._nmaxima:
            self._confidence.add_many(self._maxima[: self._nmaxima])
            self._nmaxima = 0

    def record(
        self,
        latency_ns: int,
        outputs: Mapping[str, NDArray[np.generic]],
        in_ring: bool = False,
    ) -> None:
        """Record one successful call that took ``latency_ns`` and returned ``outputs``.

        ``in_ring`` says the call's probability rows were written into a :class:`RowRing`.
        """
        # list.append is atomic; flushes remove only the items they read (see _flush).
        latencies = self._latency_ns
        latencies.append(latency_ns)
        if not in_ring and self.extractor is not None:
            self._record_confidence(outputs)
        if len(latencies) >= self._capacity:
            with self._lock:
                self._flush()

    def _record_confidence(self, outputs: Mapping[str, NDArray[np.generic]]) -> None:
        rows = self._rows
        if rows is None:
            values = self.extractor(outputs)  # type: ignore[misc]
            with self._lock:
                self._pending_conf.append(values)
            return
        out = outputs[self._row_output]
        with self._lock:
            k = self._nrows
            end = k + out.shape[0]
            if end <= self._capacity and out.shape[1:] == rows.shape[1:]:
                rows[k:end] = out
                self._nrows = end
                if end == self._capacity:
                    self._flush_rows()
            else:
                self._flush_rows()
                self._pending_conf.append(MaxProbability(self._row_output)(outputs))

    def record_error(self, latency_ns: int) -> None:
        """Record a call that failed while running the model."""
        with self._lock:
            self._errors += 1
            self._error_seconds += latency_ns / 1e9

    def record_rejected(self) -> None:
        """Record a call refused because of bad inputs."""
        with self._lock:
            self._rejected += 1

    # -- batch side ---------------------------------------------------------------------------

    def _flush_rows(self) -> None:
        if self._rows is not None and self._nrows:
            self._confidence.add_many(self._rows[: self._nrows].max(axis=1))
            self._nrows = 0

    def _flush(self) -> None:
        latencies = self._latency_ns
        n = len(latencies)
        if n:
            seconds = np.asarray(latencies[:n], dtype=np.float64) / 1e9
            self._sketch.add_many(seconds)
            self._histogram.add_many(seconds)
            self._count += n
            del latencies[:n]  # keeps anything appended meanwhile
        self._flush_rows()
        for ring in list(self._rings):
            self._drain(ring)
        self._fold_maxima()
        for values in self._pending_conf:
            self._confidence.add_many(values)
        self._pending_conf.clear()

    def snapshot(self, *, reset: bool = False) -> TelemetrySnapshot:
        """Return the telemetry since the last reset; with ``reset`` start a new window."""
        with self._lock:
            self._flush()
            snap = TelemetrySnapshot(
                model=self.model,
                version=self.version,
                started_at=self._started,
                ended_at=self._clock(),
                count=self._count,
                errors=self._errors,
                rejected=self._rejected,
                error_seconds=self._error_seconds,
                latency=self._sketch.copy(),
                confidence=ConfidenceStats.from_dict(self._confidence.to_dict()),
            )
            if reset:
                closed = self._closed
                closed.count += self._count
                closed.errors += self._errors
                closed.rejected += self._rejected
                closed.confidence.merge(self._confidence)
                self._reset_window()
            return snap

    def totals(self) -> TelemetryTotals:
        """Everything recorded since the model was loaded (or :meth:`discard`), windows or not.

        Counts and histogram buckets never decrease from one call to the next.
        """
        with self._lock:
            self._flush()
            closed = self._closed
            confidence = ConfidenceStats.from_dict(closed.confidence.to_dict())
            confidence.merge(self._confidence)
            return TelemetryTotals(
                model=self.model,
                version=self.version,
                count=closed.count + self._count,
                errors=closed.errors + self._errors,
                rejected=closed.rejected + self._rejected,
                latency=self._histogram.copy(),
                confidence=confidence,
            )

    def discard(self) -> None:
        """Forget everything recorded so far, totals included: calls that were not the users'.

        For warm-up and smoke-test calls made before the model serves; once it serves, close
        windows with :meth:`snapshot` instead, or the totals would go down.
        """
        with self._lock:
            self._flush()
            self._reset_totals()
            self._reset_window()
