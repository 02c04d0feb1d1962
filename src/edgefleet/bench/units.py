"""Parsing durations given on the command line (``45m``, ``10s``, ``1h30m``, ``90``)."""

from __future__ import annotations

import re

from edgefleet.errors import ConfigurationError

__all__ = ["parse_duration"]

_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)?")
_SCALE = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str, what: str = "duration") -> float:
    """Seconds in ``text``: a number of seconds or parts with ``ms``/``s``/``m``/``h``.

    >>> [parse_duration(t) for t in ("45m", "1h30m", "2.5", "250ms")]
    [2700.0, 5400.0, 2.5, 0.25]
    """
    cleaned = text.strip().lower()
    position, total, parts = 0, 0.0, 0
    while position < len(cleaned):
        match = _PART.match(cleaned, position)
        if match is None:
            break
        total += float(match.group(1)) * _SCALE[match.group(2)]
        position, parts = match.end(), parts + 1
    if not parts or position != len(cleaned):
        raise ConfigurationError(
            f"{what} {text!r} is not a duration; write seconds (10), or 250ms, 30s, 45m, 1h30m"
        )
    return total
