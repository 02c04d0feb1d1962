"""The ``--emulate`` network specification: what WAN link :class:`NetemProxy` pretends to be.

Syntax: comma-separated ``key=value`` items, each key at most once, any order::

    rtt=45ms,jitter=10ms,bw=20mbit,loss=0.5%,dist=normal

``rtt``
    Round-trip time added on top of the real path (``us``, ``ms`` or ``s``). Each direction
    gets half of it.
``jitter``
    Standard deviation of the added round-trip delay (``us``, ``ms`` or ``s``); see
    :class:`Emulation`.
``bw``
    Link rate, the same in each direction. Bits per second: ``bit``, ``kbit``, ``mbit``,
    ``gbit`` (powers of 1000). Bytes per second, as in Linux ``tc``: ``bps``, ``kbps``,
    ``mbps``, ``gbps`` -- so ``bw=1mbps`` is 8 Mbit/s, not 1. Units are case-insensitive.
    Leave ``bw`` out for an unlimited link.
``loss``
    Probability that a request-sized chunk is lost, as a percentage (``0.5%``) or a fraction
    (``0.005``); the proxy emulates it by resetting the connection.
``dist``
    Distribution of the jitter: ``normal`` (default) or ``uniform``.

Every value needs its unit (``rtt=45`` is an error, so is ``rtt=0``: write ``rtt=0ms``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from edgefleet.errors import ConfigurationError

__all__ = ["JITTER_DISTRIBUTIONS", "SYNTAX", "Emulation", "parse_emulation"]

SYNTAX = (
    "rtt=<time>,jitter=<time>,bw=<rate>,loss=<percent>,dist=normal|uniform "
    "with time in us|ms|s and rate in kbit|mbit|gbit (or kbps|mbps|gbps bytes), "
    "e.g. rtt=45ms,jitter=10ms,bw=20mbit,loss=0.5%"
)
"""One line of syntax help, appended to every parse error."""

JITTER_DISTRIBUTIONS = ("normal", "uniform")

_TIME_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}
_RATE_UNITS = {
    "bit": 1.0,
    "kbit": 1e3,
    "mbit": 1e6,
    "gbit": 1e9,
    "bps": 8.0,
    "kbps": 8e3,
    "mbps": 8e6,
    "gbps": 8e9,
}
_KEYS = ("rtt", "jitter", "bw", "loss", "dist")
_VALUE = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)\s*([a-z%]*)")


@dataclass(frozen=True)
class Emulation:
    """A WAN link to emulate. All fields default to "no change".

    Parameters
    ----------
    rtt_s
        Mean round-trip time added, in seconds; each direction adds ``rtt_s / 2``.
    jitter_s
        Standard deviation of the added round-trip delay of one request/response exchange, in
        seconds. Each direction draws its own delay with standard deviation
        ``jitter_s / sqrt(2)``, so the two independent one-way delays sum to a round trip with
        standard deviation ``jitter_s``. Two effects make the measured spread a little smaller:
        one-way delays are truncated at zero (only matters when ``jitter_s`` is large against
        ``rtt_s``), and a chunk is never released before the chunk sent ahead of it on the
        same connection (TCP is a stream; only matters for back-to-back sends).
    bandwidth_bps
        Link rate in bits per second in each direction, or None for unlimited.
    loss
        Probability (0..1) that a chunk read from the client is lost, which resets the
        connection.
    jitter_distribution
        ``"normal"`` or ``"uniform"`` (same standard deviation, bounded at +-sqrt(3) sigma).

    Examples
    --------
    >>> link = Emulation(rtt_s=0.045, jitter_s=0.01, bandwidth_bps=20e6, loss=0.005)
    >>> link.describe()
    'rtt 45 ms, jitter 10 ms, 20 Mbit/s, loss 0.5%'
    >>> link.as_dict()["bandwidth_mbit"]
    20.0
    >>> Emulation().describe()
    'no emulation'
    """

    rtt_s: float = 0.0
    jitter_s: float = 0.0
    bandwidth_bps: float | None = None
    loss: float = 0.0
    jitter_distribution: str = "normal"

    def __post_init__(self) -> None:
        for name in ("rtt_s", "jitter_s", "loss"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigurationError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.loss > 1:
            raise ConfigurationError(f"loss must be a probability in 0..1, got {self.loss!r}")
        bw = self.bandwidth_bps
        if bw is not None and not (math.isfinite(bw) and bw > 0):
            raise ConfigurationError(f"bandwidth_bps must be > 0 or None, got {bw!r}")
        if self.jitter_distribution not in JITTER_DISTRIBUTIONS:
            raise ConfigurationError(
                f"jitter_distribution must be one of {', '.join(JITTER_DISTRIBUTIONS)}, "
                f"got {self.jitter_distribution!r}"
            )

    @property
    def is_noop(self) -> bool:
        """True when the link adds nothing (the proxy then only relays bytes)."""
        return self == Emulation(jitter_distribution=self.jitter_distribution)

    def describe(self) -> str:
        """A short human description, e.g. ``'rtt 45 ms, jitter 10 ms, 20 Mbit/s, loss 0.5%'``."""
        if self.is_noop:
            return "no emulation"
        parts = [f"rtt {_g(self.rtt_s * 1e3)} ms"]
        if self.jitter_s:
            dist = "" if self.jitter_distribution == "normal" else f" ({self.jitter_distribution})"
            parts.append(f"jitter {_g(self.jitter_s * 1e3)} ms{dist}")
        if self.bandwidth_bps is not None:
            parts.append(f"{_g(self.bandwidth_bps / 1e6)} Mbit/s")
        if self.loss:
            parts.append(f"loss {_g(self.loss * 100)}%")
        return ", ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        """Plain-JSON fields for reports (``bandwidth_mbit`` is None for an unlimited link)."""
        return {
            "rtt_ms": self.rtt_s * 1e3,
            "jitter_ms": self.jitter_s * 1e3,
            "bandwidth_mbit": None if self.bandwidth_bps is None else self.bandwidth_bps / 1e6,
            "loss_percent": self.loss * 100,
            "jitter_distribution": self.jitter_distribution,
        }


def parse_emulation(text: str) -> Emulation:
    """Parse an ``--emulate`` spec such as ``rtt=45ms,jitter=10ms,bw=20mbit,loss=0.5%``.

    Keys left out add nothing. See the module docstring for units.

    Raises
    ------
    ConfigurationError
        Naming the offending item and showing :data:`SYNTAX`, for an empty spec, an item
        without ``=``, an unknown or repeated key, a missing or unknown unit, a negative value,
        a zero rate, or a loss above 100%.

    Examples
    --------
    >>> link = parse_emulation("rtt=45ms,jitter=10ms,bw=20mbit,loss=0.5%")
    >>> link.rtt_s, link.jitter_s, link.bandwidth_bps, link.loss
    (0.045, 0.01, 20000000.0, 0.005)
    >>> parse_emulation("bw=1mbps").bandwidth_bps  # tc convention: bytes per second
    8000000.0
    >>> parse_emulation("loss=0.02").loss
    0.02
    >>> parse_emulation("rtt=45")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    edgefleet.errors.ConfigurationError: invalid network emulation 'rtt=45': rtt=45 is missing...
    """
    fields: dict[str, Any] = {}
    if not text.strip():
        raise _error(text, "the spec is empty")
    for raw in text.split(","):
        item = raw.strip()
        key, sep, value = item.partition("=")
        key, value = key.strip().lower(), value.strip().lower()
        if not sep or not key:
            raise _error(text, f"{item!r} is not key=value")
        if key not in _KEYS:
            raise _error(text, f"unknown key {key!r} (valid keys: {', '.join(_KEYS)})")
        if key in fields:
            raise _error(text, f"{key} is given twice")
        if not value:
            raise _error(text, f"{key} has no value")
        fields[key] = _parse_value(text, key, value)
    return Emulation(
        rtt_s=fields.get("rtt", 0.0),
        jitter_s=fields.get("jitter", 0.0),
        bandwidth_bps=fields.get("bw"),
        loss=fields.get("loss", 0.0),
        jitter_distribution=fields.get("dist", "normal"),
    )


def _parse_value(text: str, key: str, value: str) -> float | str:
    item = f"{key}={value}"
    if key == "dist":
        if value not in JITTER_DISTRIBUTIONS:
            raise _error(text, f"{item}: dist must be one of {', '.join(JITTER_DISTRIBUTIONS)}")
        return value
    match = _VALUE.fullmatch(value)
    if match is None:
        raise _error(text, f"{item} is not a number with a unit")
    number, unit = float(match.group(1)), match.group(2)
    if number < 0:
        raise _error(text, f"{item} is negative")
    if key == "loss":
        if unit not in ("", "%"):
            raise _error(text, f"{item}: loss is a percentage (0.5%) or a fraction (0.005)")
        if unit == "%":
            number /= 100
        if number > 1:
            more = "" if unit else f" (as a fraction; write {match.group(1)}% for percent)"
            raise _error(text, f"{item}: loss is above 100%{more}")
        return number
    units = _RATE_UNITS if key == "bw" else _TIME_UNITS
    if not unit:
        raise _error(text, f"{item} is missing a unit ({', '.join(units)})")
    if unit not in units:
        raise _error(text, f"{item} has unknown unit {unit!r} (use {', '.join(units)})")
    if key == "bw" and number == 0:
        raise _error(text, f"{item}: the rate must be > 0 (leave bw out for unlimited)")
    return number * units[unit]


def _error(text: str, problem: str) -> ConfigurationError:
    return ConfigurationError(f"invalid network emulation {text!r}: {problem}; syntax: {SYNTAX}")


def _g(value: float) -> str:
    return f"{value:.4g}"
