"""Shared helpers for the benchmark scripts: timing in interleaved blocks, JSON results."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def interleaved(
    candidates: dict[str, Callable[[], object]], *, rounds: int, block: int
) -> dict[str, np.ndarray]:
    """Time every candidate call by call, alternating blocks of ``block`` calls per candidate.

    Alternating blocks exposes every candidate to the same drift of a noisy machine (frequency,
    neighbours), so the ratio of medians is fair even when absolute figures wander.
    """
    samples: dict[str, list[int]] = {name: [] for name in candidates}
    clock = time.perf_counter_ns
    for r in range(rounds):
        order = list(candidates.items())
        if r % 2:
            order.reverse()
        for name, call in order:
            out = samples[name]
            for _ in range(block):
                start = clock()
                call()
                out.append(clock() - start)
    return {name: np.asarray(v, dtype=np.float64) / 1e3 for name, v in samples.items()}


def describe(us: np.ndarray) -> dict[str, float]:
    """Percentiles in microseconds."""
    return {
        "p50_us": float(np.percentile(us, 50)),
        "p90_us": float(np.percentile(us, 90)),
        "p99_us": float(np.percentile(us, 99)),
        "mean_us": float(us.mean()),
    }


def environment() -> dict[str, Any]:
    """Where the figures were measured."""
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "onnxruntime": ort.__version__,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def save(name: str, result: dict[str, Any]) -> Path:
    """Write ``result`` to ``benchmarks/results/NAME.json`` and return the path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps({"environment": environment(), **result}, indent=2) + "\n")
    return path
