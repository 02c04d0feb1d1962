"""Drive one scenario against one target: warm-up, measured period, windows, stop rule.

The measured period ends when both ``min_queries`` and ``duration_s`` are reached (or at
``max_duration_s``, reported as not meeting the minimums). Warm-up queries are excluded. Every
``window_s`` the main thread closes a window (throughput, p50, p99, temperature, CPU frequency)
and reports progress; stability is perf_analyzer's rule: the last three windows within 10% of
their mean, in throughput and in median latency. Ctrl-C ends the run early with what was
measured, marked as interrupted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from edgefleet.bench.scenarios import Issuer
from edgefleet.errors import MeterError
from edgefleet.telemetry.energy import EnergyMeter
from edgefleet.telemetry.thermal import ThermalSample

__all__ = ["Measurement", "RunPlan", "Window", "measure"]

_clock = time.perf_counter_ns
log = logging.getLogger(__name__)
JOIN_TIMEOUT_S = 15.0
"""How long the end of a run waits for in-flight queries (a hung endpoint is left behind)."""
Progress = Callable[[str, float, float, int, float | None], None]
"""``progress(phase, elapsed_s, planned_s, queries, p99_ms)``."""


@dataclass(frozen=True)
class RunPlan:
    """How long to measure and how to cut the run into windows."""

    duration_s: float = 10.0
    min_queries: int = 100
    warmup_s: float = 1.0
    window_s: float = 1.0
    max_duration_s: float | None = None  # default: 10 x duration_s + 60 s

    @property
    def limit_s(self) -> float:
        """When the run stops even if the minimum query count was not reached."""
        return self.max_duration_s or self.duration_s * 10 + 60


@dataclass(frozen=True)
class Window:
    """One window of the measured period."""

    t_s: float
    queries: int
    qps: float
    p50_ms: float | None
    p99_ms: float | None
    temp_c: float | None
    cpu_mhz: float | None


@dataclass
class Measurement:
    """What one run of one scenario saw."""

    queries: int
    samples: int
    errors: int
    first_error: str | None
    duration_s: float
    latencies_ms: NDArray[np.float64]
    windows: list[Window]
    met_minimums: bool
    interrupted: bool
    joules: float | None = None
    thermal_start: ThermalSample | None = None
    thermal_end: ThermalSample | None = None
    thermal_windows: list[ThermalSample] = field(default_factory=list)

    @property
    def throughput_qps(self) -> float:
        """Successfully inferred samples (batch rows) per second over the measured period."""
        return self.samples / self.duration_s if self.duration_s > 0 else 0.0

    def stability(self) -> tuple[bool, str]:
        """perf_analyzer's rule over the last three windows: throughput and p50 within 10%."""
        if len(self.windows) < 3:
            return False, f"only {len(self.windows)} windows; 3 are needed to judge"
        last = self.windows[-3:]  # a window without completions (a stall) counts, as 0/s
        for label, values in (
            ("throughput", [w.qps for w in last]),
            ("p50", [w.p50_ms or 0.0 for w in last]),
        ):
            mean = sum(values) / 3
            if mean <= 0 or max(abs(v - mean) for v in values) > 0.1 * mean:
                spread = ", ".join(f"{v:.3g}" for v in values)
                return False, f"{label} of the last 3 windows varies more than 10% ({spread})"
        return True, "last 3 windows within 10% in throughput and p50"


def measure(
    issuer: Issuer,
    plan: RunPlan,
    *,
    meter: EnergyMeter | None = None,
    thermal: Callable[[], ThermalSample] | None = None,
    progress: Progress | None = None,
) -> Measurement:
    """Run ``issuer`` under ``plan`` and return what was measured."""
    records: list[tuple[int, int, int, bool]] = []
    first_error: list[str] = []

    def record(start: int, done: int, samples: int, ok: bool, error: str | None) -> None:
        records.append((start, done, samples, ok))  # list.append is atomic under the GIL
        if error is not None and not first_error:
            first_error.append(error)

    stop = threading.Event()
    threads = [
        threading.Thread(target=issuer.run, args=(stop, record), name=f"load-{i}", daemon=True)
        for i in range(issuer.workers)
    ]
    started = _clock()
    warm_end = started + int(plan.warmup_s * 1e9)
    windows: list[Window] = []
    thermal_windows: list[ThermalSample] = []
    joules_start = thermal_start = None
    interrupted = False
    stopped = started
    for thread in threads:
        thread.start()
    try:
        try:
            joules_start, thermal_start = _warm_up(
                started, warm_end, plan, records, meter, thermal, progress
            )
            _measure_windows(warm_end, plan, records, windows, thermal_windows, thermal, progress)
        except KeyboardInterrupt:
            interrupted = True
        stopped = _clock()
    finally:
        issuer.stopped_ns = stopped
        stop.set()
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        for thread in threads:  # in-flight queries finish; a hung endpoint is not waited for
            thread.join(max(0.0, deadline - time.monotonic()))
    joules = None
    if meter is not None and joules_start is not None:
        try:
            joules = meter.read_joules() - joules_start
        except MeterError as exc:
            log.warning("energy meter failed at the end of the run: %s", exc)
    thermal_end = thermal() if thermal else None
    measurement = _summarize(list(records), min(warm_end, stopped), stopped, plan)
    measurement.first_error = first_error[0] if first_error else None
    measurement.windows = windows
    measurement.interrupted = interrupted
    measurement.joules = joules
    measurement.thermal_start, measurement.thermal_end = thermal_start, thermal_end
    measurement.thermal_windows = thermal_windows
    return measurement


def _warm_up(
    started: int,
    warm_end: int,
    plan: RunPlan,
    records: list[tuple[int, int, int, bool]],
    meter: EnergyMeter | None,
    thermal: Callable[[], ThermalSample] | None,
    progress: Progress | None,
) -> tuple[float | None, ThermalSample | None]:
    """Wait out the warm-up; return the energy counter and the sensors at its end."""
    while (now := _clock()) < warm_end:
        if progress:
            progress("warm-up", (now - started) / 1e9, plan.warmup_s, len(records), None)
        time.sleep(min(0.25, (warm_end - now) / 1e9))
    return (meter.read_joules() if meter else None), (thermal() if thermal else None)


def _measure_windows(
    warm_end: int,
    plan: RunPlan,
    records: list[tuple[int, int, int, bool]],
    windows: list[Window],
    thermal_windows: list[ThermalSample],
    thermal: Callable[[], ThermalSample] | None,
    progress: Progress | None,
) -> None:
    """Close a window every ``window_s`` until the stop rule holds."""
    scanned = len(records)
    window_ns = int(plan.window_s * 1e9)
    next_window = warm_end + window_ns
    measured = 0
    while True:
        now = _clock()
        elapsed = (now - warm_end) / 1e9
        if now >= next_window:
            end = len(records)
            fresh = records[scanned:end]
            scanned = end
            measured += sum(1 for r in fresh if r[0] >= warm_end)
            sample = thermal() if thermal else None
            if sample is not None:
                thermal_windows.append(sample)
            windows.append(_window(fresh, warm_end, next_window, plan.window_s, sample))
            next_window += window_ns
            if progress:
                progress("measure", elapsed, plan.duration_s, measured, windows[-1].p99_ms)
        if elapsed >= plan.limit_s:
            return
        if elapsed >= plan.duration_s:
            pending = sum(1 for r in records[scanned:] if r[0] >= warm_end)
            if measured + pending >= plan.min_queries:
                return
        time.sleep(max(0.0, min(0.25, (next_window - _clock()) / 1e9)))


def _summarize(
    records: list[tuple[int, int, int, bool]], warm_end: int, stopped: int, plan: RunPlan
) -> Measurement:
    """Queries issued in the measured period, whenever they completed."""
    measured = [r for r in records if warm_end <= r[0] < stopped]
    ok = np.asarray([(d - s) / 1e6 for s, d, _, good in measured if good], dtype=np.float64)
    last_done = max((d for _, d, _, _ in measured), default=stopped)
    duration = max(stopped, last_done) - warm_end
    return Measurement(
        queries=len(measured),
        samples=sum(n for _, _, n, good in measured if good),
        errors=sum(1 for r in measured if not r[3]),
        first_error=None,
        duration_s=duration / 1e9,
        latencies_ms=ok,
        windows=[],
        met_minimums=len(measured) >= plan.min_queries
        and (stopped - warm_end) / 1e9 >= plan.duration_s,
        interrupted=False,
    )


def _window(
    fresh: list[tuple[int, int, int, bool]],
    warm_end: int,
    window_end: int,
    window_s: float,
    sample: ThermalSample | None,
) -> Window:
    ok = np.asarray([(d - s) / 1e6 for s, d, _, good in fresh if good and s >= warm_end])
    samples = sum(n for s, _, n, _ in fresh if s >= warm_end)
    p50 = p99 = None
    if ok.size:
        p50, p99 = (float(v) for v in np.percentile(ok, [50, 99]))
    temp = max(sample.temperatures_c.values(), default=None) if sample else None
    mhz = None
    if sample is not None and sample.cpu_mhz:
        mhz = round(sum(sample.cpu_mhz.values()) / len(sample.cpu_mhz), 1)
    return Window((window_end - warm_end) / 1e9, ok.size, samples / window_s, p50, p99, temp, mhz)
