"""Meters fed by something outside edgefleet: a command that prints watts, or a CSV power log.

``cmd:COMMAND``
    COMMAND is run through the shell every ``interval_s`` seconds (and once more at every
    :meth:`~CommandMeter.read_joules`). Contract: it exits with status 0 and the last non-empty
    line of its standard output is one plain decimal number, the current power in **watts**
    (for example ``12.5``). The readings are integrated with the trapezoid rule.
``csv:PATH``
    PATH is a CSV file of ``timestamp_s,watts`` rows written by an external power meter, possibly
    still growing. ``timestamp_s`` is Unix time in seconds (``time.time()`` on this machine),
    non-decreasing; an optional header line and lines starting with ``#`` are skipped; a row
    counts once it ends with a newline. Power is integrated from the moment the meter opened
    (interpolating between the rows around it) to the last complete row.
"""

from __future__ import annotations

import math
import subprocess
import time
from pathlib import Path

from edgefleet.errors import MeterError
from edgefleet.telemetry.energy.base import MeterBase, PowerIntegrator

__all__ = ["CommandMeter", "CsvMeter", "parse_watts"]

DEFAULT_COMMAND_INTERVAL_S = 0.25


def parse_watts(text: str, source: str) -> float:
    r"""The watts printed as the last non-empty line of ``text``; ``source`` names it in errors.

    Examples
    --------
    >>> parse_watts("warming up\n7.5\n", "cmd")
    7.5
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise MeterError(f"{source} printed nothing; expected a number of watts")
    try:
        watts = float(lines[-1])
    except ValueError:
        watts = math.nan
    if not math.isfinite(watts) or watts < 0:
        raise MeterError(
            f"{source} printed {lines[-1][:60]!r}; expected a non-negative number of watts"
        )
    return watts


class CommandMeter(MeterBase):
    """Energy integrated from a shell command that prints the current power in watts.

    Parameters
    ----------
    command
        Shell command line; see the module docstring for its output contract.
    interval_s
        Seconds between background runs of the command.
    timeout_s
        A run taking longer than this fails the meter.

    Raises
    ------
    MeterError
        The command fails, times out, or prints something other than a number of watts
        (raised at opening for the first run, by :meth:`read_joules` afterwards).
    """

    name = "cmd"
    estimated = False

    def __init__(
        self,
        command: str,
        *,
        interval_s: float = DEFAULT_COMMAND_INTERVAL_S,
        timeout_s: float = 5.0,
    ) -> None:
        if not command.strip():
            raise MeterError("cmd meter needs a command, as in cmd:COMMAND")
        self.command = command
        self.timeout_s = timeout_s
        self.description = f"external command {command!r} (watts, integrated)"
        self._integrator = PowerIntegrator(self._sample, interval_s=interval_s)

    def _sample(self) -> float:
        source = f"power command {self.command!r}"
        try:
            done = subprocess.run(
                self.command,
                shell=True,
                capture_output=True,
                text=True,
                timeout=self.timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise MeterError(f"{source} took longer than {self.timeout_s} s") from exc
        except OSError as exc:
            raise MeterError(f"{source} could not start: {exc}") from exc
        if done.returncode != 0:
            stderr = done.stderr.strip()[-200:]
            raise MeterError(f"{source} exited with status {done.returncode}: {stderr}")
        return parse_watts(done.stdout, source)

    def read_joules(self) -> float:
        """Energy integrated since the meter opened, in joules."""
        return self._integrator.joules()

    def close(self) -> None:
        """Stop the background runs."""
        self._integrator.close()


class CsvMeter(MeterBase):
    """Energy integrated from a (possibly growing) CSV file of ``timestamp_s,watts`` rows.

    Parameters
    ----------
    path
        The CSV file; it must exist when the meter opens.
    start
        Unix time from which energy counts; defaults to now.

    Raises
    ------
    MeterError
        The file is missing or unreadable, or a row is malformed (the error names the line).
    """

    name = "csv"
    estimated = False

    def __init__(self, path: Path, *, start: float | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise MeterError(f"power log {self.path} does not exist")
        self.description = f"external power log {self.path} (watts, integrated)"
        self.start = time.time() if start is None else start
        self._offset = 0
        self._line_no = 0
        self._previous: tuple[float, float] | None = None
        self._joules = 0.0
        self._consume()

    def _parse(self, line: str) -> tuple[float, float] | None:
        text = line.strip()
        if not text or text.startswith("#"):
            return None
        fields = [f.strip() for f in text.split(",")]
        try:
            if len(fields) != 2:
                raise ValueError
            t, w = float(fields[0]), float(fields[1])
        except ValueError:
            if self._line_no == 1 and not any(c.isdigit() for c in text):
                return None  # header
            raise MeterError(
                f"{self.path}:{self._line_no}: expected 'timestamp_s,watts', got {text[:60]!r}"
            ) from None
        if not (math.isfinite(t) and math.isfinite(w)) or w < 0:
            raise MeterError(f"{self.path}:{self._line_no}: invalid values {text[:60]!r}")
        return t, w

    def _add(self, t1: float, w1: float) -> None:
        if self._previous is None:
            self._previous = (t1, w1)
            return
        t0, w0 = self._previous
        if t1 < t0:
            raise MeterError(f"{self.path}:{self._line_no}: timestamp goes backwards")
        self._previous = (t1, w1)
        if t1 <= self.start:
            return
        if t0 < self.start:  # the row pair straddles the start: interpolate power there
            w0 += (w1 - w0) * (self.start - t0) / (t1 - t0)
            t0 = self.start
        self._joules += (t1 - t0) * (w0 + w1) / 2.0

    def _consume(self) -> None:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except OSError as exc:
            raise MeterError(f"cannot read power log {self.path}: {exc.strerror or exc}") from exc
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        for raw in complete.decode("utf-8", errors="replace").splitlines():
            self._line_no += 1
            row = self._parse(raw)
            if row is not None:
                self._add(*row)

    def read_joules(self) -> float:
        """Energy logged since the meter opened, up to the last complete row, in joules."""
        self._consume()
        return self._joules
