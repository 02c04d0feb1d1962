"""Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter").

The n-th delay after consecutive failures is uniform in ``[0, min(cap, base * 2**n)]``: clients
that failed together spread out instead of retrying in lock step.

>>> import random
>>> backoff = Backoff(base=1.0, cap=8.0, rng=random.Random(0))
>>> [round(backoff.next_delay(), 2) for _ in range(5)]
[0.84, 1.52, 1.68, 2.07, 4.09]
>>> backoff.failures
5
>>> backoff.reset()
>>> backoff.failures
0
"""

from __future__ import annotations

import random

__all__ = ["Backoff", "jitter_delay"]


def jitter_delay(failures: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """A full-jitter delay after ``failures`` consecutive failures (0 counts as the first).

    Raises
    ------
    ValueError
        ``base`` or ``cap`` is not positive, or ``failures`` is negative.
    """
    if base <= 0 or cap <= 0:
        raise ValueError(f"backoff base and cap must be positive, got {base} and {cap}")
    if failures < 0:
        raise ValueError(f"failures must be non-negative, got {failures}")
    ceiling = cap if failures >= 64 else min(cap, base * 2.0**failures)
    return (rng or random).uniform(0.0, ceiling)


class Backoff:
    """Delays for consecutive failures of one activity; :meth:`reset` after a success.

    Parameters
    ----------
    base
        Upper bound of the first delay, in seconds.
    cap
        Upper bound of every delay, in seconds.
    rng
        Random source (seeded in tests).
    """

    def __init__(self, base: float, cap: float, rng: random.Random | None = None) -> None:
        jitter_delay(0, base, cap)  # validates
        self.base = base
        self.cap = cap
        self.failures = 0
        self._rng = rng or random.Random()

    def ceiling(self) -> float:
        """Upper bound of the next delay."""
        return min(self.cap, self.base * 2.0 ** min(self.failures, 64))

    def next_delay(self) -> float:
        """Count a failure and return how long to wait before the next try."""
        delay = jitter_delay(self.failures, self.base, self.cap, self._rng)
        self.failures += 1
        return delay

    def reset(self) -> None:
        """Forget past failures (after a success)."""
        self.failures = 0
