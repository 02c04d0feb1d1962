"""The energy meter interface and a power integrator shared by the sampling meters.

Every meter reports *cumulative* energy in joules since it was opened, never decreasing, so a
caller measures an interval by reading twice and subtracting. Meters that can only read power
(Jetson INA3221 rails, an external command, a CSV log) integrate it with :class:`PowerIntegrator`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from edgefleet.errors import EdgefleetError, MeterError

__all__ = ["EnergyMeter", "MeterBase", "PowerIntegrator"]

DEFAULT_INTERVAL_S = 0.05


@runtime_checkable
class EnergyMeter(Protocol):
    """What every energy meter provides.

    Attributes
    ----------
    name
        Kind of meter: ``"rapl"``, ``"nvml"``, ``"jetson"``, ``"cmd"``, ``"csv"`` or
        ``"estimate"``.
    estimated
        True only for the CPU-time estimate; reports must label its figures as estimates.
    description
        One human-readable line saying what is measured, shown in reports.
    """

    name: str
    estimated: bool
    description: str

    def read_joules(self) -> float:
        """Cumulative energy in joules since the meter opened (monotonic, non-decreasing)."""
        ...

    def close(self) -> None:
        """Release files, handles and threads; safe to call twice."""
        ...


class MeterBase:
    """Context-manager support for meters: ``with meter: ...`` closes the meter on exit."""

    def close(self) -> None:
        """Release resources (nothing by default)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class PowerIntegrator:
    """Integrate a power reading (watts) over time with the trapezoid rule.

    A background thread samples ``sample()`` every ``interval_s`` seconds; :meth:`joules` takes
    one more sample so the integral always reaches the moment of the call. Negative readings
    are clamped to zero, so the integral never decreases. The first sample is taken in the
    constructor: a sensor that fails at once raises :class:`MeterError` there. A failure in the
    background thread is kept and raised by the next :meth:`joules` call.

    Parameters
    ----------
    sample
        Returns the current power in watts; may raise :class:`MeterError`.
    interval_s
        Seconds between background samples; ``None`` disables the thread (samples are then
        taken only when :meth:`joules` is called).
    clock
        Monotonic clock in seconds.

    Examples
    --------
    >>> ticks = iter([0.0, 2.0])
    >>> integrator = PowerIntegrator(lambda: 5.0, interval_s=None, clock=lambda: next(ticks))
    >>> integrator.joules()
    10.0
    >>> integrator.close()
    """

    def __init__(
        self,
        sample: Callable[[], float],
        *,
        interval_s: float | None = DEFAULT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sample = sample
        self._clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._error: EdgefleetError | None = None
        self._joules = 0.0
        self._last_t = clock()
        self._last_w = max(0.0, sample())
        self._thread: threading.Thread | None = None
        if interval_s is not None:
            if interval_s <= 0:
                raise ValueError(f"interval_s must be positive, got {interval_s}")
            self._thread = threading.Thread(
                target=self._run, args=(interval_s,), name="edgefleet-power-sampler", daemon=True
            )
            self._thread.start()

    def _step(self) -> None:
        watts = max(0.0, self._sample())
        now = self._clock()
        self._joules += (now - self._last_t) * (watts + self._last_w) / 2.0
        self._last_t, self._last_w = now, watts

    def _run(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            with self._lock:
                try:
                    self._step()
                except EdgefleetError as exc:
                    self._error = exc
                    return
                except Exception as exc:  # a sensor must never kill the thread silently
                    self._error = MeterError(f"power sampling failed: {exc!r}")
                    return

    def joules(self) -> float:
        """Energy integrated since construction, including a fresh sample taken now."""
        with self._lock:
            if self._error is not None:
                raise self._error
            self._step()
            return self._joules

    def close(self) -> None:
        """Stop and join the sampling thread (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
