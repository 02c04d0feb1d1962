"""A labelled estimate of energy: CPU time of some processes times a per-core power figure.

Used when no real meter exists (codecarbon's fallback is the model). The CPU time of a process
is ``utime + stime`` from ``<root>/proc/<pid>/stat`` in clock ticks; its energy is the CPU
seconds times a power per busy core. The figure is, in order: the ``watts_per_core`` argument,
else the first entry of :data:`WATTS_PER_CORE` whose key occurs in the CPU model read from
``<root>/proc/cpuinfo``, else :data:`DEFAULT_WATTS_PER_CORE`. The table holds rough
TDP-divided-by-cores figures, good to a factor of two at best: every result of this meter is an
estimate and says so (``estimated = True``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

from edgefleet.errors import MeterError
from edgefleet.telemetry.energy.base import MeterBase

__all__ = [
    "DEFAULT_WATTS_PER_CORE",
    "WATTS_PER_CORE",
    "EstimateMeter",
    "cpu_model",
    "read_cpu_ticks",
    "watts_per_core_for",
]

WATTS_PER_CORE: tuple[tuple[str, float], ...] = (
    ("raspberry pi 5", 1.5),
    ("raspberry pi", 1.0),
    ("cortex-a76", 1.5),
    ("cortex-a72", 1.0),
    ("cortex-a78ae", 1.5),
    ("jetson", 1.5),
    ("xeon", 6.0),
    ("epyc", 6.0),
    ("core(tm)", 9.0),
    ("ryzen", 8.0),
)
"""Rough per-core power (watts) keyed by a lower-case substring of the CPU model, first match."""

DEFAULT_WATTS_PER_CORE = 5.0
"""The figure used when the CPU model is unknown."""

_ARM_PARTS = {"0xd08": "Cortex-A72", "0xd0b": "Cortex-A76", "0xd42": "Cortex-A78AE"}
_MODEL_KEYS = ("model name", "model", "hardware")


def cpu_model(root: Path) -> str | None:
    """The CPU model named in ``<root>/proc/cpuinfo``, or ``None``.

    x86 and the Raspberry Pi name it (``model name``, ``Model``, ``Hardware``); other ARM boards
    only give a ``CPU part`` number, translated for the cores in the table.
    """
    try:
        text = (root / "proc" / "cpuinfo").read_text(errors="replace")
    except OSError:
        return None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and value.strip():
            fields.setdefault(key.strip().lower(), value.strip())
    names = [fields[key] for key in _MODEL_KEYS if key in fields]
    part = _ARM_PARTS.get(fields.get("cpu part", "").lower())
    if part:
        names.append(part)
    return " / ".join(names) or None


def watts_per_core_for(model: str | None) -> tuple[float, str]:
    """The table figure for ``model`` and a note saying where it came from.

    Examples
    --------
    >>> watts_per_core_for("Raspberry Pi 4 Model B Rev 1.4")
    (1.0, "table entry 'raspberry pi'")
    >>> watts_per_core_for(None)
    (5.0, 'default (CPU model unknown)')
    """
    lowered = (model or "").lower()
    for key, watts in WATTS_PER_CORE:
        if key in lowered:
            return watts, f"table entry {key!r}"
    return DEFAULT_WATTS_PER_CORE, "default (CPU model unknown)"


def read_cpu_ticks(root: Path, pid: int) -> int:
    """``utime + stime`` of ``pid`` in clock ticks, from ``<root>/proc/<pid>/stat``.

    The command name (field 2) may hold spaces and parentheses, so fields are counted from the
    last ``)``.
    """
    path = root / "proc" / str(pid) / "stat"
    try:
        text = path.read_text()
    except OSError as exc:
        raise MeterError(f"cannot read {path}: {exc.strerror or exc}") from exc
    rest = text[text.rfind(")") + 1 :].split()
    try:
        return int(rest[11]) + int(rest[12])  # fields 14 and 15 counted from 1
    except (IndexError, ValueError) as exc:
        raise MeterError(f"{path} is not a /proc stat line: {text[:80]!r}") from exc


class EstimateMeter(MeterBase):
    """Estimated energy of a set of processes: their CPU seconds times watts per core.

    Parameters
    ----------
    root
        Filesystem root holding ``proc/``.
    pids
        Processes to account; more can be added with :meth:`add_pid`. Empty means the current
        process.
    watts_per_core
        Power per busy core; defaults to the table figure for the CPU model.
    note
        Extra text appended to the description (e.g. why no real meter was used).

    Notes
    -----
    A process counts from the moment it is added: its CPU time before that is not included.
    Only the process's own time counts, not its children's. A process that exits keeps the CPU
    time last seen.

    Examples
    --------
    >>> with EstimateMeter(watts_per_core=2.0) as meter:
    ...     meter.estimated, meter.read_joules() >= 0.0
    (True, True)
    """

    name = "estimate"
    estimated = True

    def __init__(
        self,
        root: Path = Path("/"),
        pids: Iterable[int] = (),
        *,
        watts_per_core: float | None = None,
        note: str = "",
    ) -> None:
        self.root = root
        if watts_per_core is not None:
            if watts_per_core <= 0:
                raise MeterError(f"watts_per_core must be positive, got {watts_per_core}")
            self.watts_per_core, source = watts_per_core, "given"
        else:
            model = cpu_model(root)
            self.watts_per_core, source = watts_per_core_for(model)
            if model:
                source += f" for {' '.join(model.split())!r}"
        self.clock_ticks = os.sysconf("SC_CLK_TCK")
        self.description = (
            f"ESTIMATE: process CPU time x {self.watts_per_core:g} W per core ({source})"
            + (f"; {note}" if note else "")
        )
        self._first: dict[int, int] = {}
        self._last: dict[int, int] = {}
        for pid in list(pids) or [os.getpid()]:
            self.add_pid(pid)

    @property
    def pids(self) -> tuple[int, ...]:
        """The processes accounted, in the order added."""
        return tuple(self._first)

    def add_pid(self, pid: int) -> None:
        """Start accounting ``pid`` from now; :class:`MeterError` if it cannot be read."""
        if pid not in self._first:
            ticks = read_cpu_ticks(self.root, pid)
            self._first[pid] = self._last[pid] = ticks

    def read_joules(self) -> float:
        """Estimated energy since each process was added, in joules."""
        for pid in self._first:
            with contextlib.suppress(MeterError):  # an exited process keeps its last CPU time
                self._last[pid] = max(self._last[pid], read_cpu_ticks(self.root, pid))
        ticks = sum(self._last[pid] - self._first[pid] for pid in self._first)
        return ticks / self.clock_ticks * self.watts_per_core
