"""Axis scales for :mod:`edgefleet.bench.svg`: data values to pixels, with round tick values.

Examples
--------
>>> scale = Scale(0.0, 9.0, 0.0, 100.0, log=False)
>>> scale.ticks(), scale(5.0)
([0.0, 2.0, 4.0, 6.0, 8.0, 10.0], 50.0)
>>> Scale(0.3, 95.0, 0.0, 300.0, log=True).ticks()[:4]
[0.1, 0.2, 0.5, 1.0]
"""

from __future__ import annotations

import math

__all__ = ["Scale"]


class Scale:
    """Maps a data interval onto a pixel interval, linearly or by log10."""

    def __init__(self, lo: float, hi: float, out_lo: float, out_hi: float, log: bool) -> None:
        self.log = log
        if log:
            lo, hi = 10.0 ** math.floor(math.log10(lo)), 10.0 ** math.ceil(math.log10(hi))
            if hi <= lo:
                hi = lo * 10
        else:
            step = _nice_step(hi - lo if hi > lo else abs(hi) or 1.0)
            lo, hi = math.floor(lo / step) * step, math.ceil(hi / step) * step
            if hi <= lo:
                hi = lo + step
        self.lo, self.hi, self.out_lo, self.out_hi = lo, hi, out_lo, out_hi

    def __call__(self, value: float) -> float:
        if self.log:
            value = math.log10(max(value, self.lo))
            lo, hi = math.log10(self.lo), math.log10(self.hi)
        else:
            lo, hi = self.lo, self.hi
        return self.out_lo + (value - lo) / (hi - lo) * (self.out_hi - self.out_lo)

    def ticks(self) -> list[float]:
        if self.log:
            first, last = round(math.log10(self.lo)), round(math.log10(self.hi))
            mults = (1, 2, 5) if last - first <= 3 else (1,)
            return [
                m * 10.0**e for e in range(first, last + 1) for m in mults if m * 10.0**e <= self.hi
            ]
        step = _nice_step(self.hi - self.lo)
        count = round((self.hi - self.lo) / step)
        return [self.lo + i * step for i in range(count + 1)]


def _nice_step(span: float, target: int = 5) -> float:
    raw = span / target
    power = 10.0 ** math.floor(math.log10(raw))
    for mult in (1, 2, 2.5, 5, 10):
        if raw <= mult * power:
            return mult * power
    return 10 * power
