"""Energy meters: RAPL, NVML, Jetson INA3221, external command or CSV, and a labelled estimate.

:func:`open_meter` turns a spec string into a meter. Every meter reads cumulative joules since it
opened; :func:`measure_idle` and :func:`energy_result` turn readings into energy per inference.
Readers take a filesystem ``root`` so they run on fake sysfs trees in tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgefleet.errors import ConfigurationError, MeterError
from edgefleet.telemetry.energy.base import EnergyMeter, PowerIntegrator
from edgefleet.telemetry.energy.estimate import EstimateMeter
from edgefleet.telemetry.energy.external import CommandMeter, CsvMeter
from edgefleet.telemetry.energy.jetson import JetsonMeter
from edgefleet.telemetry.energy.nvml import (
    NvmlMeter,
    decode_clock_event_reasons,
    read_clock_event_reasons,
)
from edgefleet.telemetry.energy.rapl import RaplMeter
from edgefleet.telemetry.energy.result import EnergyResult, energy_result, measure_idle

__all__ = [
    "METER_SPECS",
    "CommandMeter",
    "CsvMeter",
    "EnergyMeter",
    "EnergyResult",
    "EstimateMeter",
    "JetsonMeter",
    "NvmlMeter",
    "PowerIntegrator",
    "RaplMeter",
    "decode_clock_event_reasons",
    "energy_result",
    "measure_idle",
    "open_meter",
    "read_clock_event_reasons",
]

METER_SPECS = ("auto", "rapl", "nvml", "jetson", "estimate", "cmd:COMMAND", "csv:PATH")
"""The accepted forms of a meter spec."""


def open_meter(
    spec: str,
    *,
    root: Path = Path("/"),
    pids: Sequence[int] = (),
    watts_per_core: float | None = None,
    nvml: Any = None,
    proc_root: Path | None = None,
) -> EnergyMeter:
    """Open the energy meter named by ``spec``.

    Parameters
    ----------
    spec
        ``auto`` (the first of rapl, nvml, jetson that opens, else estimate), ``rapl``,
        ``nvml``, ``jetson``, ``estimate``, ``cmd:COMMAND`` or ``csv:PATH``.
    root
        Filesystem root for sysfs and procfs readers.
    pids
        Processes for the estimate (default: this process).
    watts_per_core
        Power figure for the estimate (default: from the CPU model table).
    nvml
        NVML module object for the nvml meter (default: import ``pynvml``).
    proc_root
        Root whose ``proc/`` the estimate reads (default: ``root``). A benchmark reading a
        mounted host ``/sys`` still counts its own processes in its own ``/proc``.

    Raises
    ------
    ConfigurationError
        ``spec`` is not one of the forms above.
    MeterError
        The named meter is absent or unreadable (``auto`` never raises it for a missing meter:
        the estimate's description lists why each real meter was skipped).

    Examples
    --------
    >>> meter = open_meter("estimate", watts_per_core=3.0)
    >>> meter.estimated, meter.name
    (True, 'estimate')
    >>> meter.close()
    >>> open_meter("magic")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    edgefleet.errors.ConfigurationError: unknown energy meter 'magic': expected one of auto, ...
    """
    proc = root if proc_root is None else proc_root
    kind, sep, arg = spec.strip().partition(":")
    if sep and kind == "cmd":
        return CommandMeter(arg)
    if sep and kind == "csv":
        if not arg.strip():
            raise ConfigurationError("csv meter needs a path, as in csv:PATH")
        return CsvMeter(Path(arg))
    if not sep and kind == "rapl":
        return RaplMeter(root)
    if not sep and kind == "nvml":
        return NvmlMeter(nvml=nvml)
    if not sep and kind == "jetson":
        return JetsonMeter(root)
    if not sep and kind == "estimate":
        return EstimateMeter(proc, pids, watts_per_core=watts_per_core)
    if not sep and kind == "auto":
        skipped = []
        for name, opener in (
            ("rapl", lambda: RaplMeter(root)),
            ("nvml", lambda: NvmlMeter(nvml=nvml)),
            ("jetson", lambda: JetsonMeter(root)),
        ):
            try:
                return opener()
            except MeterError as exc:
                skipped.append(f"{name}: {exc}")
        note = "no measured meter (" + "; ".join(skipped) + ")"
        return EstimateMeter(proc, pids, watts_per_core=watts_per_core, note=note)
    raise ConfigurationError(
        f"unknown energy meter {spec!r}: expected one of {', '.join(METER_SPECS)}"
    )
