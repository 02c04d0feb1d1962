"""Fake ``/sys`` and ``/proc`` trees for testing the energy meters and thermal readers.

Every reader in :mod:`edgefleet.telemetry.energy` and :mod:`edgefleet.telemetry.thermal` takes a
filesystem root; point it at a :class:`FakeSysfs` root to run it on any machine. The files hold
what the kernel writes (integers in the kernel's units, newline-terminated).

Examples
--------
>>> import tempfile
>>> from edgefleet.telemetry.energy import RaplMeter
>>> with tempfile.TemporaryDirectory() as tmp:
...     fake = FakeSysfs(Path(tmp))
...     fake.add_rapl(0, energy_uj=1_000_000)
...     with RaplMeter(fake.root) as meter:
...         fake.set_rapl_energy(0, 3_500_000)
...         meter.read_joules()
2.5
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path

__all__ = ["DEFAULT_MAX_ENERGY_RANGE_UJ", "FakeRaplCounter", "FakeSysfs", "HandTicker"]

DEFAULT_MAX_ENERGY_RANGE_UJ = 262_143_328_850
"""A typical ``max_energy_range_uj`` of an Intel package domain (about 262 kJ)."""


class FakeSysfs:
    """Builder of a fake filesystem tree under ``root``.

    Parameters
    ----------
    root
        An (empty) directory; it plays the role of ``/``.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def write(self, relative: str, content: object) -> Path:
        """Write ``content`` plus a newline to ``root/relative``, creating directories."""
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        # atomically, like the kernel's attributes: a reader never sees a half-written file
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(f"{content}\n")
        os.replace(partial, path)
        return path

    # RAPL ---------------------------------------------------------------------------------

    @staticmethod
    def _zone(index: int, sub: int | None) -> str:
        name = f"intel-rapl:{index}" if sub is None else f"intel-rapl:{index}:{sub}"
        return f"sys/class/powercap/{name}"

    def add_rapl(
        self,
        index: int,
        name: str = "",
        *,
        energy_uj: int = 0,
        max_energy_range_uj: int = DEFAULT_MAX_ENERGY_RANGE_UJ,
        sub: int | None = None,
    ) -> None:
        """Add zone ``intel-rapl:index`` (or subdomain ``intel-rapl:index:sub``).

        ``name`` defaults to ``package-<index>`` for a zone and ``core`` for a subdomain.
        """
        zone = self._zone(index, sub)
        self.write(f"{zone}/name", name or (f"package-{index}" if sub is None else "core"))
        self.write(f"{zone}/max_energy_range_uj", max_energy_range_uj)
        self.write(f"{zone}/energy_uj", energy_uj)

    def set_rapl_energy(self, index: int, energy_uj: int, *, sub: int | None = None) -> None:
        """Set the raw counter of a zone (write a lower value to simulate a wrap)."""
        self.write(f"{self._zone(index, sub)}/energy_uj", energy_uj)

    # thermal and cpufreq ------------------------------------------------------------------

    def add_thermal_zone(self, n: int, type: str, millideg: int | str) -> None:
        """Add ``thermal_zone<n>`` of the given type and temperature in millidegrees."""
        self.write(f"sys/class/thermal/thermal_zone{n}/type", type)
        self.write(f"sys/class/thermal/thermal_zone{n}/temp", millideg)

    def add_cpu(
        self,
        n: int,
        cur_khz: int | str,
        max_khz: int | str,
        core_throttle: int | None = None,
        package_throttle: int | None = None,
    ) -> None:
        """Add (or update) ``cpu<n>`` frequencies in kHz and Intel throttle counters."""
        cpu = f"sys/devices/system/cpu/cpu{n}"
        self.write(f"{cpu}/cpufreq/scaling_cur_freq", cur_khz)
        self.write(f"{cpu}/cpufreq/cpuinfo_max_freq", max_khz)
        if core_throttle is not None:
            self.write(f"{cpu}/thermal_throttle/core_throttle_count", core_throttle)
        if package_throttle is not None:
            self.write(f"{cpu}/thermal_throttle/package_throttle_count", package_throttle)

    def set_rpi_throttled(self, value: int | str) -> None:
        """Write the Raspberry Pi firmware ``get_throttled`` value (an int is written as hex)."""
        text = f"{value:#x}" if isinstance(value, int) else value
        self.write("sys/devices/platform/soc/soc:firmware/get_throttled", text)

    # Jetson -------------------------------------------------------------------------------

    def add_ina3221(
        self,
        rails: Mapping[str, tuple[int, int]],
        *,
        layout: str = "hwmon",
        device: str = "1-0040",
    ) -> None:
        """Add an INA3221 with rails ``label -> (millivolts, milliamps)``.

        ``layout="hwmon"`` writes ``in{N}_label``/``in{N}_input``/``curr{N}_input``;
        ``layout="iio"`` (old JetPack) writes ``rail_name_{N}``/``in_power{N}_input`` (mW).
        Calling again with the same labels updates their readings.
        """
        base = f"sys/bus/i2c/devices/{device}"
        for n, (label, (millivolts, milliamps)) in enumerate(rails.items(), start=1):
            if layout == "hwmon":
                self.write(f"{base}/hwmon/hwmon3/in{n}_label", label)
                self.write(f"{base}/hwmon/hwmon3/in{n}_input", millivolts)
                self.write(f"{base}/hwmon/hwmon3/curr{n}_input", milliamps)
            elif layout == "iio":
                self.write(f"{base}/iio:device0/rail_name_{n - 1}", label)
                self.write(
                    f"{base}/iio:device0/in_power{n - 1}_input", millivolts * milliamps // 1000
                )
            else:
                raise ValueError(f"layout must be 'hwmon' or 'iio', got {layout!r}")

    # /proc --------------------------------------------------------------------------------

    def add_process(
        self, pid: int, utime_ticks: int, stime_ticks: int, comm: str = "python (worker) 1"
    ) -> None:
        """Write ``proc/<pid>/stat`` with the given CPU ticks (fields 14 and 15).

        The default command name holds a space and parentheses, as real ones can.
        """
        fields = [
            "S", "1", str(pid), str(pid), "0", "-1", "4194560", "1200", "0", "0", "0",
            str(utime_ticks), str(stime_ticks), "0", "0", "20", "0", "4", "0", "123456",
            "104857600", "2560",
        ]  # fmt: skip
        self.write(f"proc/{pid}/stat", f"{pid} ({comm}) {' '.join(fields)}")

    def add_cpuinfo(self, model_name: str, *, cores: int = 4, key: str = "model name") -> None:
        """Write ``proc/cpuinfo`` naming ``model_name`` under ``key`` for ``cores`` processors."""
        blocks = [f"processor\t: {n}\n{key}\t: {model_name}\n" for n in range(cores)]
        self.write("proc/cpuinfo", "\n".join(blocks))


class FakeRaplCounter:
    """A fake RAPL zone whose counter runs at a constant power in simulated time.

    The counter wraps as the hardware's does: after ``max_energy_range_uj`` it goes on from 0.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     counter = FakeRaplCounter(FakeSysfs(Path(tmp)), watts=15.0, wrap_s=13.0)
    ...     counter.advance(14.0)
    ...     counter.true_joules, counter.raw_uj
    (210.0, 15000000)
    """

    def __init__(
        self, fake: FakeSysfs, *, watts: float, wrap_s: float, index: int = 0, start_uj: int = 0
    ) -> None:
        self.fake, self.index, self.watts = fake, index, watts
        self.max_range = round(watts * wrap_s * 1e6) - 1  # the counter wraps every wrap_s
        self.start_uj = start_uj
        self.true_uj = 0
        fake.add_rapl(index, energy_uj=start_uj, max_energy_range_uj=self.max_range)

    @property
    def raw_uj(self) -> int:
        """What ``energy_uj`` holds now."""
        return (self.start_uj + self.true_uj) % (self.max_range + 1)

    @property
    def true_joules(self) -> float:
        """Energy used since the counter was created, wraps included."""
        return self.true_uj / 1e6

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of simulated time pass at the counter's power."""
        self.true_uj += round(self.watts * seconds * 1e6)
        self.fake.set_rapl_energy(self.index, self.raw_uj)


class HandTicker:
    """A ``wait`` for a polling thread that returns only when a test lets it.

    The thread calls :meth:`wait` between polls; the test calls :meth:`next_wait`, which returns
    the interval the thread asked to wait once it is waiting (so its previous poll is done),
    moves simulated time on by that much, then calls :meth:`release`. Nothing depends on the
    wall clock: the ``timeout`` only stops a broken test from hanging.
    """

    def __init__(self, timeout: float = 30.0) -> None:
        self._cond = threading.Condition()
        self._asked: float | None = None
        self._released = False
        self._closed = False
        self._timeout = timeout

    def wait(self, interval: float) -> bool:
        """Called by the polling thread; True (stop) once :meth:`close` was called."""
        with self._cond:
            self._asked, self._released = interval, False
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._released or self._closed)
            return self._closed

    def next_wait(self) -> float:
        """Block until the thread waits; the interval it asked for."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._asked is not None, self._timeout):
                raise TimeoutError("the polling thread never waited")
            assert self._asked is not None
            return self._asked

    def release(self) -> None:
        """Let the waiting thread poll once."""
        with self._cond:
            self._asked, self._released = None, True  # the next next_wait waits for the thread
            self._cond.notify_all()

    def close(self) -> None:
        """Make every present and future :meth:`wait` return True."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
