"""The sustained-load verdict: did throughput fall, and do the sensors say why."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from edgefleet.bench.runner import Measurement, Window
from edgefleet.telemetry.thermal import throttle_evidence

__all__ = ["DROP_THRESHOLD", "sustained_verdict", "throughput_drop"]

DROP_THRESHOLD = 0.10
"""A fall in throughput of this share or more is a degradation."""


def throughput_drop(windows: Sequence[Window]) -> float | None:
    """1 - (median of the last 3 windows' throughput / median of the first 3).

    >>> qps = [100, 100, 100, 80, 80, 80]
    >>> w = [Window(i, 10, q, 1.0, 2.0, None, None) for i, q in enumerate(qps)]
    >>> round(throughput_drop(w), 3)
    0.2
    >>> throughput_drop(w[:4]) is None
    True
    """
    busy = [w.qps for w in windows if w.queries > 0]
    if len(busy) < 6:
        return None
    first, last = statistics.median(busy[:3]), statistics.median(busy[-3:])
    return 1.0 - last / first if first > 0 else None


def sustained_verdict(m: Measurement, window_s: float) -> dict[str, Any]:
    """Judge a sustained run: ``stable``, ``throttled`` or ``degraded without sensor evidence``.

    Throttled means a fall in throughput of 10% or more with sensor evidence; the result also
    holds the windows and the evidence lines.
    """
    drop = throughput_drop(m.windows)
    evidence: list[str] = []
    if m.thermal_start is not None:
        for sample in [*m.thermal_windows, m.thermal_end]:
            if sample is None:
                continue
            for line in throttle_evidence(m.thermal_start, sample):
                if line not in evidence:
                    evidence.append(line)
    if drop is None:
        verdict = "too short to judge (needs 6 windows)"
    elif drop < DROP_THRESHOLD:
        verdict = "stable"
    else:
        verdict = "throttled" if evidence else "degraded without sensor evidence"
    return {
        "window_s": window_s,
        "verdict": verdict,
        "throughput_drop": None if drop is None else round(drop, 4),
        "evidence": evidence,
        "windows": [
            {
                "t_s": w.t_s,
                "qps": w.qps,
                "p99_ms": w.p99_ms,
                "temp_c": w.temp_c,
                "cpu_mhz": w.cpu_mhz,
            }
            for w in m.windows
        ],
    }
