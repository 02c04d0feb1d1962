"""Turning meter readings into energy per inference, with the idle baseline subtracted."""

from __future__ import annotations

import time
from dataclasses import dataclass

from edgefleet.telemetry.energy.base import EnergyMeter

__all__ = ["EnergyResult", "energy_result", "measure_idle"]


def measure_idle(meter: EnergyMeter, seconds: float) -> float:
    """Mean power in watts drawn while this process sleeps for ``seconds``.

    Examples
    --------
    >>> from edgefleet.telemetry.energy.estimate import EstimateMeter
    >>> with EstimateMeter(watts_per_core=1.0) as meter:
    ...     measure_idle(meter, 0.01) < 1.0
    True
    """
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    start_j, start_t = meter.read_joules(), time.monotonic()
    time.sleep(seconds)
    used, elapsed = meter.read_joules() - start_j, time.monotonic() - start_t
    return max(0.0, used / elapsed)


@dataclass(frozen=True)
class EnergyResult:
    """Energy of a measured run.

    Attributes
    ----------
    meter, description, estimated
        The meter's name, description and estimate flag.
    mean_watts
        Gross mean power over the run (idle included).
    idle_watts
        The idle baseline measured before the run.
    mj_per_inference
        Net energy per inference in millijoules: ``joules - idle_watts * seconds`` divided by the
        inferences, clamped at zero (noise can make a light load read below its baseline; a
        negative energy would be meaningless).
    joules, seconds, inferences
        The raw inputs.
    """

    meter: str
    description: str
    estimated: bool
    mean_watts: float
    idle_watts: float
    mj_per_inference: float
    joules: float
    seconds: float
    inferences: int

    def as_dict(self) -> dict[str, str | bool | float]:
        """The report fields: meter, estimated, mean_watts, idle_watts, mj_per_inference."""
        return {
            "meter": self.meter,
            "estimated": self.estimated,
            "mean_watts": self.mean_watts,
            "idle_watts": self.idle_watts,
            "mj_per_inference": self.mj_per_inference,
        }


def energy_result(
    meter: EnergyMeter, idle_watts: float, joules_used: float, seconds: float, inferences: int
) -> EnergyResult:
    """Summarise ``joules_used`` over ``seconds`` and ``inferences`` with the idle power removed.

    Examples
    --------
    >>> from edgefleet.telemetry.energy.estimate import EstimateMeter
    >>> with EstimateMeter(watts_per_core=1.0) as meter:
    ...     result = energy_result(meter, idle_watts=2.0, joules_used=30.0, seconds=10.0,
    ...                            inferences=1000)
    >>> result.mean_watts, result.mj_per_inference
    (3.0, 10.0)
    """
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    if inferences <= 0:
        raise ValueError(f"inferences must be positive, got {inferences}")
    net = max(0.0, joules_used - idle_watts * seconds)
    return EnergyResult(
        meter=meter.name,
        description=meter.description,
        estimated=meter.estimated,
        mean_watts=joules_used / seconds,
        idle_watts=idle_watts,
        mj_per_inference=net * 1000.0 / inferences,
        joules=joules_used,
        seconds=seconds,
        inferences=inferences,
    )
