"""Intel/AMD RAPL energy counters from the Linux powercap interface.

Each top-level zone ``<root>/sys/class/powercap/intel-rapl:N`` has a ``name`` (``package-0``,
``psys``, ...), a cumulative ``energy_uj`` counter and ``max_energy_range_uj``. Subdomains such as
``intel-rapl:0:0`` (core, uncore, dram) are parts of their package and are never added on top of
it. AMD processors appear under the same ``intel-rapl`` name since Linux 5.8; a zone named
``amd-rapl:N`` is accepted too.

Wrap-around
-----------
``energy_uj`` counts up to ``max_energy_range_uj`` and starts again at zero. This meter takes the
counter's values to be ``0 .. max_energy_range_uj`` inclusive, so the modulus is
``max_energy_range_uj + 1``: a reading lower than the previous one means the counter wrapped, and
the energy used is ``(max_energy_range_uj + 1 - previous) + current``. (In hardware the step is
one energy unit, typically 61 uJ, not 1 uJ: the error is at most one unit per wrap, against a
range of about 262 kJ.)

A wrap is only seen if the counter is read at least once per range, so a background thread
reads it every :func:`poll_interval_for` seconds: an eighth of the time the counter takes to
wrap at ``max_power_w`` (1 kW by default, more than any CPU package draws), at most a minute. A
typical 262 kJ range is then read every 33 s (it wraps after 17 minutes at 250 W); a counter
with a small range is read as often as it needs, whatever the length of the run.

Since Linux 5.10 ``energy_uj`` is readable by root only; a permission error says so.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path

from edgefleet.errors import MeterError
from edgefleet.telemetry.energy.base import MeterBase

__all__ = [
    "MAX_PLAUSIBLE_WATTS",
    "RaplMeter",
    "RaplZone",
    "find_rapl_zones",
    "poll_interval_for",
    "wrapped_delta",
]

_TOP_LEVEL = re.compile(r"^(intel|amd)-rapl:(\d+)$")

MAX_PLAUSIBLE_WATTS = 1000.0
"""Power no RAPL zone reaches: the counter is polled fast enough for it not to wrap unseen."""
_POLLS_PER_WRAP = 8
_MIN_POLL_S = 0.001
_MAX_POLL_S = 60.0


def poll_interval_for(max_range_uj: int, max_power_w: float = MAX_PLAUSIBLE_WATTS) -> float:
    """Seconds between counter reads so that no wrap is missed at up to ``max_power_w``.

    An eighth of the time the counter takes to go once round its range at ``max_power_w``,
    between 1 ms and 60 s.

    Examples
    --------
    >>> round(poll_interval_for(262_143_328_850), 1)  # a typical package: wraps in 262 s at 1 kW
    32.8
    >>> poll_interval_for(194_999_999, max_power_w=15.0)  # 195 J: 13 s at 15 W
    1.625
    >>> poll_interval_for(10**15)  # never longer than a minute
    60.0
    """
    if max_power_w <= 0:
        raise MeterError(f"max_power_w must be positive, got {max_power_w}")
    wrap_s = (max_range_uj + 1) / (max_power_w * 1e6)
    return min(_MAX_POLL_S, max(_MIN_POLL_S, wrap_s / _POLLS_PER_WRAP))


def wrapped_delta(previous: int, current: int, max_range: int) -> int:
    """Counter increase from ``previous`` to ``current``, allowing for one wrap-around.

    Examples
    --------
    >>> wrapped_delta(100, 250, 1000)
    150
    >>> wrapped_delta(900, 50, 1000)  # 900 -> 1000 is 100, the wrap to 0 is 1, 0 -> 50 is 50
    151
    """
    if current >= previous:
        return current - previous
    return (max_range + 1 - previous) + current


def _read_int(path: Path) -> int:
    try:
        text = path.read_text()
    except PermissionError as exc:
        raise MeterError(
            f"cannot read {path}: permission denied (since Linux 5.10 RAPL energy counters are "
            "readable by root only: run as root or grant read access to energy_uj)"
        ) from exc
    except OSError as exc:
        raise MeterError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return int(text.strip())
    except ValueError as exc:
        raise MeterError(f"{path} does not hold an integer: {text.strip()[:40]!r}") from exc


class RaplZone:
    """One top-level RAPL zone: its directory, name and counter range."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.name = (path / "name").read_text().strip()
        except OSError:
            self.name = path.name
        self.max_range = _read_int(path / "max_energy_range_uj")

    def read_uj(self) -> int:
        """Current raw counter value in microjoules."""
        return _read_int(self.path / "energy_uj")


def find_rapl_zones(root: Path) -> list[RaplZone]:
    """Top-level RAPL zones under ``root``, ordered by index (subdomains excluded)."""
    base = root / "sys" / "class" / "powercap"
    if not base.is_dir():
        return []
    found = []
    for entry in base.iterdir():
        match = _TOP_LEVEL.match(entry.name)
        if match and (entry / "energy_uj").exists():
            found.append((int(match.group(2)), match.group(1), entry))
    found.sort()
    return [RaplZone(entry) for _, _, entry in found]


class RaplMeter(MeterBase):
    """Energy from RAPL package domains (all sockets summed), or ``psys`` alone.

    Parameters
    ----------
    root
        Filesystem root holding ``sys/`` (``/`` on a real machine).
    domain
        ``"package"`` (default): every ``package-N`` zone, falling back to ``psys`` when there is
        no package zone. ``"psys"``: the platform zone only (covers more than the CPU on laptops).
    poll_interval_s
        Seconds between the background thread's reads of the counters; by default
        :func:`poll_interval_for` the smallest range among the chosen zones and ``max_power_w``,
        so that no wrap is missed between two distant :meth:`read_joules` calls.
    max_power_w
        The most power a zone is assumed to draw, for the default ``poll_interval_s``.
    wait
        How the background thread waits between reads: called with the interval, returns True
        to stop. By default it waits on the meter's stop event (set by :meth:`close`); tests
        inject a hand-driven ticker (:class:`edgefleet.testing.sysfs.HandTicker`) so that
        simulated time decides when the counter is read. :meth:`close` joins the thread, so an
        injected ``wait`` must return True by then.

    Raises
    ------
    MeterError
        No RAPL zone, no zone of the requested domain, or an unreadable counter.
    """

    name = "rapl"
    estimated = False

    def __init__(
        self,
        root: Path = Path("/"),
        *,
        domain: str = "package",
        poll_interval_s: float | None = None,
        max_power_w: float = MAX_PLAUSIBLE_WATTS,
        wait: Callable[[float], bool] | None = None,
    ) -> None:
        if domain not in ("package", "psys"):
            raise MeterError(f"unknown RAPL domain {domain!r}: expected 'package' or 'psys'")
        zones = find_rapl_zones(root)
        if not zones:
            raise MeterError(f"no RAPL zones under {root / 'sys/class/powercap'}")
        chosen = [z for z in zones if z.name.startswith(domain)]
        if not chosen and domain == "package":
            chosen = [z for z in zones if z.name == "psys"]
        if not chosen:
            raise MeterError(f"no RAPL {domain} zone among {[z.name for z in zones]}")
        self.zones = chosen
        kind = chosen[0].path.name.split(":")[0]
        self.description = f"RAPL {' + '.join(z.name for z in chosen)} ({kind})"
        self._lock = threading.Lock()
        self._last = [z.read_uj() for z in chosen]
        self._total_uj = 0
        self._stop = threading.Event()
        self._error: MeterError | None = None
        if poll_interval_s is None:
            poll_interval_s = poll_interval_for(min(z.max_range for z in chosen), max_power_w)
        elif not poll_interval_s > 0:
            raise MeterError(f"poll_interval_s must be positive, got {poll_interval_s}")
        self.poll_interval_s = poll_interval_s
        """Seconds between the background thread's reads of the counters."""
        self._wait = wait or self._stop.wait
        self._thread: threading.Thread | None = threading.Thread(
            target=self._poll, name="edgefleet-rapl", daemon=True
        )
        self._thread.start()

    def _update(self) -> None:
        current = [z.read_uj() for z in self.zones]
        for zone, before, now in zip(self.zones, self._last, current, strict=True):
            self._total_uj += wrapped_delta(before, now, zone.max_range)
        self._last = current

    def _poll(self) -> None:
        while not self._wait(self.poll_interval_s):
            with self._lock:
                try:
                    self._update()
                except MeterError as exc:  # kept: the count may have missed a wrap since
                    self._error = exc
                    return

    def read_joules(self) -> float:
        """Energy of the chosen zones since the meter opened, in joules.

        Raises
        ------
        MeterError
            A counter cannot be read now, or could not be read by the background thread (the
            count may then have missed a wrap).
        """
        with self._lock:
            if self._error is not None:
                raise self._error
            self._update()
            return self._total_uj / 1e6

    def close(self) -> None:
        """Stop the polling thread, if any."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
