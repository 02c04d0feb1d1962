"""NVIDIA Jetson power rails (INA3221 monitors), integrated into energy.

Two sysfs layouts exist:

* hwmon (JetPack 5 and later): ``<root>/sys/bus/i2c/devices/*/hwmon/hwmon*/`` with
  ``in{N}_label`` (rail name), ``in{N}_input`` (millivolts) and ``curr{N}_input`` (milliamps);
* iio (older JetPack): ``<root>/sys/bus/i2c/devices/*/iio:device*/`` with ``rail_name_{N}`` and
  ``in_power{N}_input`` (milliwatts).

The board total is the rail labelled ``VDD_IN`` or ``POM_5V_IN`` when there is one (the other
rails are parts of it), otherwise the sum of all rails. Rails labelled ``NC`` (not connected)
are ignored. The sensors give power, so :class:`JetsonMeter` integrates it in a background
thread (every 50 ms by default, trapezoid rule).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgefleet.errors import MeterError
from edgefleet.telemetry.energy.base import DEFAULT_INTERVAL_S, MeterBase, PowerIntegrator

__all__ = ["JetsonMeter", "Rail", "find_rails", "total_watts"]

TOTAL_RAILS = ("VDD_IN", "POM_5V_IN")


@dataclass(frozen=True)
class Rail:
    """One monitored power rail: its label and how to read its power in watts."""

    label: str
    read_watts: Callable[[], float]


def _read_number(path: Path) -> float:
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise MeterError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return float(text)
    except ValueError as exc:
        raise MeterError(f"{path} does not hold a number: {text[:40]!r}") from exc


def _hwmon_rails(hwmon: Path) -> list[Rail]:
    rails = []
    for label_file in sorted(hwmon.glob("in*_label")):
        match = re.fullmatch(r"in(\d+)_label", label_file.name)
        if match is None:
            continue
        volts = hwmon / f"in{match.group(1)}_input"
        amps = hwmon / f"curr{match.group(1)}_input"
        if not volts.exists() or not amps.exists():
            continue

        def read(v: Path = volts, a: Path = amps) -> float:
            return _read_number(v) * _read_number(a) / 1e6  # mV * mA = uW

        rails.append(Rail(label_file.read_text().strip(), read))
    return rails


def _iio_rails(iio: Path) -> list[Rail]:
    rails = []
    for name_file in sorted(iio.glob("rail_name_*")):
        power = iio / f"in_power{name_file.name.removeprefix('rail_name_')}_input"
        if not power.exists():
            continue

        def read(p: Path = power) -> float:
            return _read_number(p) / 1e3  # mW

        rails.append(Rail(name_file.read_text().strip(), read))
    return rails


def find_rails(root: Path) -> list[Rail]:
    """Every connected INA3221 rail under ``root``, hwmon layout first."""
    devices = root / "sys" / "bus" / "i2c" / "devices"
    rails: list[Rail] = []
    for hwmon in sorted(devices.glob("*/hwmon/hwmon*")):
        rails.extend(_hwmon_rails(hwmon))
    for iio in sorted(devices.glob("*/iio:device*")):
        rails.extend(_iio_rails(iio))
    return [rail for rail in rails if rail.label.upper() != "NC"]


def total_watts(rails: list[Rail]) -> tuple[Callable[[], float], str]:
    """A reader of total board power and a description of what it sums."""
    for rail in rails:
        if rail.label.upper() in TOTAL_RAILS:
            return rail.read_watts, f"Jetson INA3221 rail {rail.label}"

    def summed() -> float:
        return sum(rail.read_watts() for rail in rails)

    return summed, "Jetson INA3221 sum of rails " + " + ".join(r.label for r in rails)


class JetsonMeter(MeterBase):
    """Energy of a Jetson board from its INA3221 power rails.

    Parameters
    ----------
    root
        Filesystem root holding ``sys/``.
    interval_s
        Seconds between power samples.

    Raises
    ------
    MeterError
        No INA3221 rail under ``root``, or a rail that cannot be read.
    """

    name = "jetson"
    estimated = False

    def __init__(self, root: Path = Path("/"), *, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        rails = find_rails(root)
        if not rails:
            raise MeterError(f"no INA3221 power rails under {root / 'sys/bus/i2c/devices'}")
        read, self.description = total_watts(rails)
        self._integrator = PowerIntegrator(read, interval_s=interval_s)

    def read_joules(self) -> float:
        """Board energy since the meter opened, in joules."""
        return self._integrator.joules()

    def close(self) -> None:
        """Stop the sampling thread."""
        self._integrator.close()
