"""Maintenance windows: a strict five-field cron parser and window arithmetic (UTC).

A :class:`~edgefleet.protocol.v1.MaintenanceWindow` opens at every start time its cron
expression names and stays open ``duration_s`` seconds. Both the control plane (to validate a
policy) and the agent (to decide when it may activate a model) use this module, so it only
needs the standard library.

Fields are ``minute hour day-of-month month day-of-week``. Each is ``*`` or a comma-separated
list of ``N``, ``A-B``, ``*/S`` or ``A-B/S``. Day-of-week is 0-6 from Sunday, and 7 is Sunday
too. As in Vixie cron, when both day-of-month and day-of-week are restricted (neither starts
with ``*``), a day matches when either does. Names (``MON``, ``JAN``) and macros (``@daily``)
are refused, so one expression means the same to every reader.

Examples
--------
>>> from edgefleet.protocol.v1 import MaintenanceWindow
>>> nightly = [MaintenanceWindow(cron="0 2 * * *", duration_s=3600)]  # 02:00-03:00 UTC
>>> window_open(nightly, 1_700_000_000.0)  # 2023-11-14 22:13 UTC
False
>>> next_window_start(nightly, 1_700_000_000.0)  # 2023-11-15 02:00 UTC
1700013600.0
>>> window_open(nightly, 1_700_013_600.0 + 1800)
True
>>> CronSchedule.parse("0 2 * * 8")
Traceback (most recent call last):
...
edgefleet.errors.ConfigurationError: cron '0 2 * * 8': day-of-week field '8': 8 is not in 0..7
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from edgefleet.errors import ConfigurationError

if TYPE_CHECKING:
    from edgefleet.protocol.v1 import MaintenanceWindow

__all__ = ["CronSchedule", "next_window_start", "window_open"]

_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day-of-month", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 0, 7),
)
HORIZON_DAYS = 8 * 366
"""How far a search for a start looks (covers a 29 February on a given weekday)."""


def _number(text: str, low: int, high: int) -> int:
    if not text.isdigit():
        raise ValueError(f"{text!r} is not a number")
    value = int(text)
    if not low <= value <= high:
        raise ValueError(f"{value} is not in {low}..{high}")
    return value


def _field(text: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise ValueError("an empty list item")
        span, slash, step_text = item.partition("/")
        step = 1
        if slash:
            step = _number(step_text, 1, high - low + 1)
        if span == "*":
            first, last = low, high
        elif "-" in span:
            a, _, b = span.partition("-")
            first, last = _number(a, low, high), _number(b, low, high)
            if first > last:
                raise ValueError(f"range {span!r} runs backwards")
        elif slash:
            raise ValueError(f"a step needs '*' or a range before it, not {span!r}")
        else:
            first = last = _number(span, low, high)
        values.update(range(first, last + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class CronSchedule:
    """The start times one five-field cron expression names (UTC, minute resolution)."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    """0 is Sunday."""
    days_restricted: bool
    weekdays_restricted: bool

    @classmethod
    def parse(cls, text: str) -> CronSchedule:
        """Parse ``text``.

        Raises
        ------
        ConfigurationError
            The expression does not have five fields, or a field is malformed or out of range;
            the message names the field.
        """
        parts = text.split()
        if len(parts) != 5:
            raise ConfigurationError(
                f"cron {text!r} has {len(parts)} fields; expected 5 "
                "(minute hour day-of-month month day-of-week)"
            )
        sets: list[frozenset[int]] = []
        for part, (name, low, high) in zip(parts, _FIELDS, strict=True):
            try:
                sets.append(_field(part, low, high))
            except ValueError as exc:
                raise ConfigurationError(f"cron {text!r}: {name} field {part!r}: {exc}") from None
        weekdays = frozenset(d % 7 for d in sets[4])
        return cls(
            text=text,
            minutes=sets[0],
            hours=sets[1],
            days=sets[2],
            months=sets[3],
            weekdays=weekdays,
            days_restricted=not parts[2].startswith("*"),
            weekdays_restricted=not parts[4].startswith("*"),
        )

    def matches_day(self, day: date) -> bool:
        """Whether starts happen on ``day``.

        >>> CronSchedule.parse("0 0 1 * 1").matches_day(date(2024, 1, 8))  # a Monday
        True
        """
        if day.month not in self.months:
            return False
        in_days = day.day in self.days
        in_weekdays = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_days or in_weekdays
        return in_days and in_weekdays

    def _starts_of(self, day: date) -> list[float]:
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
        return [
            midnight + h * 3600 + m * 60 for h in sorted(self.hours) for m in sorted(self.minutes)
        ]

    def next_start(self, now: float, *, horizon_days: int = HORIZON_DAYS) -> float | None:
        """The first start at or after ``now`` (Unix seconds), ``None`` within the horizon."""
        today = datetime.fromtimestamp(now, UTC).date()
        for offset in range(horizon_days + 1):
            day = today + timedelta(days=offset)
            if self.matches_day(day):
                for start in self._starts_of(day):
                    if start >= now:
                        return start
        return None

    def last_start(self, now: float, *, lookback_days: int) -> float | None:
        """The latest start at or before ``now`` within ``lookback_days`` whole days back."""
        today = datetime.fromtimestamp(now, UTC).date()
        for offset in range(lookback_days + 1):
            day = today - timedelta(days=offset)
            if self.matches_day(day):
                for start in reversed(self._starts_of(day)):
                    if start <= now:
                        return start
        return None


def window_open(windows: Sequence[MaintenanceWindow], now: float) -> bool:
    """Whether any window is open at ``now``: a start ``s`` with ``s <= now < s + duration_s``.

    >>> from edgefleet.protocol.v1 import MaintenanceWindow
    >>> window_open([MaintenanceWindow(cron="*/15 * * * *", duration_s=60)], 900.0)
    True
    >>> window_open([MaintenanceWindow(cron="*/15 * * * *", duration_s=60)], 960.0)
    False

    Raises
    ------
    ConfigurationError
        A window's cron expression is invalid.
    """
    for window in windows:
        schedule = CronSchedule.parse(window.cron)
        lookback = min(HORIZON_DAYS, math.ceil(window.duration_s / 86400) + 1)
        start = schedule.last_start(now, lookback_days=lookback)
        if start is not None and now < start + window.duration_s:
            return True
    return False


def next_window_start(windows: Sequence[MaintenanceWindow], now: float) -> float | None:
    """The earliest window start after ``now``; ``None`` when no window ever starts again.

    >>> from edgefleet.protocol.v1 import MaintenanceWindow
    >>> next_window_start([MaintenanceWindow(cron="30 1 * * *", duration_s=60)], 0.0)
    5400.0

    Raises
    ------
    ConfigurationError
        A window's cron expression is invalid.
    """
    starts = [CronSchedule.parse(w.cron).next_start(math.nextafter(now, math.inf)) for w in windows]
    found = [s for s in starts if s is not None]
    return min(found) if found else None
