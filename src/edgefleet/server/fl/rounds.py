"""Round decisions, free of I/O: which devices a round selects, and when it closes.

Examples
--------
>>> select_devices(["d3", "d1", "d2", "d4"], 2, seed=0, round_=1)
['d2', 'd4']
>>> select_devices(["d3", "d1", "d2", "d4"], 2, seed=0, round_=1) == select_devices(
...     ["d4", "d2", "d1", "d3"], 2, seed=0, round_=1)
True
>>> close_reason(states=["accepted", "assigned"], min_results=2, deadline=10.0, now=5.0) is None
True
>>> close_reason(states=["accepted", "rejected"], min_results=2, deadline=10.0, now=5.0)
'every selected device answered'
>>> close_reason(states=["accepted", "assigned"], min_results=2, deadline=10.0, now=10.0)
'deadline: 1 of 2 updates arrived'
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["close_reason", "select_devices"]


def select_devices(candidates: Sequence[str], k: int, *, seed: int, round_: int) -> list[str]:
    """``k`` of ``candidates`` (all when fewer), drawn with a generator seeded by job and round.

    The draw depends on the set of candidates, not their order, so every server process
    selects the same devices. The result is sorted.
    """
    pool = sorted(set(candidates))
    if len(pool) <= k:
        return pool
    rng = np.random.default_rng(np.random.SeedSequence([seed, round_, 0x5E1]))
    picked = rng.choice(len(pool), size=k, replace=False)
    return sorted(pool[int(i)] for i in picked)


def close_reason(
    *, states: Sequence[str], min_results: int, deadline: float, now: float
) -> str | None:
    """Why a round with parts in ``states`` closes now, or None while it stays open.

    It closes when every selected device answered (an update, accepted or rejected, or a
    decline), when ``min_results`` updates were accepted, or at its deadline.
    """
    accepted = sum(1 for state in states if state == "accepted")
    if states and all(state != "assigned" for state in states):
        return "every selected device answered"
    if accepted >= min_results:
        return f"{accepted} updates arrived (enough)"
    if now >= deadline:
        return f"deadline: {accepted} of {len(states)} updates arrived"
    return None
