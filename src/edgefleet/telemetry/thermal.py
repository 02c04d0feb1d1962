"""Thermal state and throttling evidence from Linux sysfs (and NVML reasons passed in).

:func:`read_thermal` takes a snapshot; :func:`throttle_evidence` compares two snapshots (before
and during or after a sustained load) and lists what shows the hardware slowed down:

* an Intel ``thermal_throttle`` core or package counter went up;
* the fastest CPU runs below 85% of its ``cpuinfo_max_freq`` (the fastest, because idle cores
  clock down by design; a loaded core far below its maximum is being held back);
* a Raspberry Pi "now" throttle bit is set, or a "since boot" bit was newly set;
* NVML reports a power or thermal clock-event reason.

A temperature rise alone is **not** evidence: every load warms a chip, and a warm chip running
at full speed is fine. :func:`temperature_changes` gives those lines as context for a report.
Missing files are simply absent from a sample; malformed ones are recorded in ``problems``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from edgefleet.telemetry.energy.nvml import THROTTLE_REASON_NAMES

__all__ = [
    "FREQUENCY_EVIDENCE_RATIO",
    "RPI_THROTTLE_BITS",
    "ThermalSample",
    "read_thermal",
    "temperature_changes",
    "throttle_evidence",
]

FREQUENCY_EVIDENCE_RATIO = 0.85
"""The fastest CPU below this share of its maximum frequency counts as throttling."""

RPI_THROTTLE_BITS = {
    0: "under-voltage",
    1: "frequency capped",
    2: "throttled",
    3: "soft temperature limit",
}
"""Raspberry Pi ``get_throttled`` bits 0-3 (now); bit + 16 is the same since boot."""

_CPU_DIR = re.compile(r"^cpu(\d+)$")


@dataclass(frozen=True)
class ThermalSample:
    """One snapshot of thermal state; every field may be empty where the hardware lacks it.

    Attributes
    ----------
    temperatures_c
        Zone type (``x86_pkg_temp``, ``cpu-thermal``; ``type/thermal_zoneN`` for a repeated
        type) to degrees Celsius.
    cpu_mhz, cpu_max_mhz
        Current and maximum frequency of each CPU number, in MHz.
    throttle_counts
        ``(cpu, "core" | "package")`` to Intel thermal_throttle event counts.
    rpi_throttled
        The Raspberry Pi ``get_throttled`` bitmask, or ``None``.
    nvml_reasons
        NVML clock-event reason names, as given to :func:`read_thermal`.
    problems
        Files that existed but could not be parsed, with what was wrong.
    """

    temperatures_c: Mapping[str, float] = field(default_factory=dict)
    cpu_mhz: Mapping[int, float] = field(default_factory=dict)
    cpu_max_mhz: Mapping[int, float] = field(default_factory=dict)
    throttle_counts: Mapping[tuple[int, str], int] = field(default_factory=dict)
    rpi_throttled: int | None = None
    nvml_reasons: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()


def _read(path: Path, problems: list[str], base: int = 10) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    try:
        return int(text, base)
    except ValueError:
        problems.append(f"{path}: expected an integer, got {text[:40]!r}")
        return None


def _zones(root: Path, problems: list[str]) -> dict[str, float]:
    temps: dict[str, float] = {}
    base = root / "sys" / "class" / "thermal"
    zones = sorted(base.glob("thermal_zone*"), key=lambda p: (len(p.name), p.name))
    for zone in zones:
        try:
            kind = (zone / "type").read_text().strip() or zone.name
        except OSError:
            kind = zone.name
        millideg = _read(zone / "temp", problems)
        if millideg is not None:
            temps[kind if kind not in temps else f"{kind}/{zone.name}"] = millideg / 1000.0
    return temps


def read_thermal(root: Path, nvml_reasons: Iterable[str] = ()) -> ThermalSample:
    """Read temperatures, CPU frequencies and throttle indicators under ``root``.

    Never raises for missing or malformed files.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as empty:
    ...     sample = read_thermal(Path(empty))
    >>> sample.temperatures_c, sample.problems
    ({}, ())
    """
    problems: list[str] = []
    temps = _zones(root, problems)
    cur: dict[int, float] = {}
    top: dict[int, float] = {}
    counts: dict[tuple[int, str], int] = {}
    for cpu_dir in sorted((root / "sys" / "devices" / "system" / "cpu").glob("cpu*")):
        match = _CPU_DIR.match(cpu_dir.name)
        if match is None:
            continue
        cpu = int(match.group(1))
        for name, target in (("scaling_cur_freq", cur), ("cpuinfo_max_freq", top)):
            khz = _read(cpu_dir / "cpufreq" / name, problems)
            if khz is not None:
                target[cpu] = khz / 1000.0
        for kind in ("core", "package"):
            count = _read(cpu_dir / "thermal_throttle" / f"{kind}_throttle_count", problems)
            if count is not None:
                counts[(cpu, kind)] = count
    rpi = root / "sys" / "devices" / "platform" / "soc" / "soc:firmware" / "get_throttled"
    return ThermalSample(
        temperatures_c=temps,
        cpu_mhz=cur,
        cpu_max_mhz=top,
        throttle_counts=counts,
        rpi_throttled=_read(rpi, problems, base=16),
        nvml_reasons=tuple(nvml_reasons),
        problems=tuple(problems),
    )


def _counter_evidence(before: ThermalSample, after: ThermalSample) -> list[str]:
    lines = []
    package_seen = False
    for (cpu, kind), count in sorted(after.throttle_counts.items(), key=lambda kv: kv[0][::-1]):
        rise = count - before.throttle_counts.get((cpu, kind), count)
        if rise > 0 and not (kind == "package" and package_seen):
            lines.append(f"thermal_throttle {kind} count +{rise} on cpu{cpu}")
            package_seen = package_seen or kind == "package"  # shared by a socket: say it once
    return lines


def _frequency_evidence(before: ThermalSample, after: ThermalSample) -> list[str]:
    def fastest(sample: ThermalSample) -> float | None:
        ratios = [
            mhz / sample.cpu_max_mhz[cpu]
            for cpu, mhz in sample.cpu_mhz.items()
            if sample.cpu_max_mhz.get(cpu, 0) > 0
        ]
        return max(ratios) if ratios else None

    ratio = fastest(after)
    if ratio is None or ratio >= FREQUENCY_EVIDENCE_RATIO:
        return []
    line = f"cpu frequency fell to {ratio:.0%} of max (fastest core)"
    earlier = fastest(before)
    if earlier is not None:
        line += f", from {earlier:.0%} before"
    return [line]


def _rpi_evidence(before: ThermalSample, after: ThermalSample) -> list[str]:
    if after.rpi_throttled is None:
        return []
    lines = []
    old = before.rpi_throttled or 0
    for bit, meaning in RPI_THROTTLE_BITS.items():
        if after.rpi_throttled & (1 << bit):
            lines.append(f"Raspberry Pi: {meaning} now (bit {bit})")
        sticky = bit + 16
        if after.rpi_throttled & (1 << sticky) and not old & (1 << sticky):
            lines.append(f"Raspberry Pi: {meaning} since boot, newly set (bit {sticky})")
    return lines


def throttle_evidence(before: ThermalSample, after: ThermalSample) -> list[str]:
    """Human-readable lines showing the hardware throttled between ``before`` and ``after``.

    An empty list means no evidence was found (which, where sensors are missing, does not prove
    there was no throttling).

    Examples
    --------
    >>> before = ThermalSample(throttle_counts={(0, "core"): 3})
    >>> after = ThermalSample(throttle_counts={(0, "core"): 15}, rpi_throttled=0x4)
    >>> throttle_evidence(before, after)
    ['thermal_throttle core count +12 on cpu0', 'Raspberry Pi: throttled now (bit 2)']
    """
    return [
        *_counter_evidence(before, after),
        *_frequency_evidence(before, after),
        *_rpi_evidence(before, after),
        *(f"NVML: {r}" for r in after.nvml_reasons if r in THROTTLE_REASON_NAMES),
    ]


def temperature_changes(
    before: ThermalSample, after: ThermalSample, *, min_rise_c: float = 5.0
) -> list[str]:
    """Context lines for zones that warmed by at least ``min_rise_c`` degrees (not evidence).

    Examples
    --------
    >>> temperature_changes(ThermalSample(temperatures_c={"x86_pkg_temp": 48.0}),
    ...                     ThermalSample(temperatures_c={"x86_pkg_temp": 81.5}))
    ['temperature rose from 48.0 to 81.5 °C on x86_pkg_temp']
    """
    return [
        f"temperature rose from {before.temperatures_c[zone]:.1f} to {temp:.1f} °C on {zone}"
        for zone, temp in after.temperatures_c.items()
        if zone in before.temperatures_c and temp - before.temperatures_c[zone] >= min_rise_c
    ]
