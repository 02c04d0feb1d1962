"""``report.json`` (schema version 1) and ``report.html``: what one ``edgefleet bench`` run saw.

The JSON layout is documented in ``docs/bench.md``; :data:`SCHEMA_VERSION` changes whenever a
key changes meaning or disappears (new keys may be added within a version).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edgefleet import __version__
from edgefleet.bench.runner import Measurement
from edgefleet.bench.targets import Target

__all__ = ["SCHEMA_VERSION", "latency_summary", "new_report", "target_entry", "write_report"]

SCHEMA_VERSION = 1
KIND = "edgefleet-bench-report"


def latency_summary(latencies_ms: NDArray[np.float64]) -> dict[str, float | None]:
    """p50, p90, p99, p99.9, mean, min and max in milliseconds (None without data).

    >>> latency_summary(np.arange(1, 1001, dtype=np.float64))["p99"]
    990.01
    """
    keys = ("p50", "p90", "p99", "p999", "mean", "min", "max")
    if latencies_ms.size == 0:
        return dict.fromkeys(keys)
    p50, p90, p99, p999 = np.percentile(latencies_ms, [50, 90, 99, 99.9])
    values = (p50, p90, p99, p999, latencies_ms.mean(), latencies_ms.min(), latencies_ms.max())
    return {k: round(float(v), 6) for k, v in zip(keys, values, strict=True)}


def histogram(latencies_ms: NDArray[np.float64], bins: int = 40) -> dict[str, list[float]]:
    """Log-spaced histogram of the latencies for the distribution chart."""
    if latencies_ms.size == 0:
        return {"edges_ms": [], "counts": []}
    low, high = float(latencies_ms.min()), float(latencies_ms.max())
    high = max(high, low * 1.01 + 1e-6)
    edges = np.geomspace(max(low, 1e-4), high, bins + 1)
    counts, _ = np.histogram(np.clip(latencies_ms, edges[0], edges[-1]), edges)
    return {"edges_ms": [round(float(e), 6) for e in edges], "counts": counts.tolist()}


def target_entry(target: Target, scenario: str, m: Measurement) -> dict[str, Any]:
    """One entry of ``targets``; energy, accuracy, server and sustained are filled in later."""
    stable, why = m.stability()
    return {
        "name": target.name,
        "kind": target.kind,
        "url": target.url,
        "format": target.format,
        "emulation": target.emulation.as_dict() if target.emulation else None,
        "scenario": scenario,
        "queries": m.queries,
        "samples": m.samples,
        "errors": m.errors,
        "first_error": m.first_error,
        "duration_s": round(m.duration_s, 3),
        "met_minimums": m.met_minimums,
        "interrupted": m.interrupted,
        "latency_ms": latency_summary(m.latencies_ms),
        "throughput_qps": round(m.throughput_qps, 3),
        "stable": stable,
        "stability": why,
        "histogram": histogram(m.latencies_ms),
        "timeline": [
            {
                "t_s": round(w.t_s, 3),
                "qps": round(w.qps, 3),
                "p50_ms": w.p50_ms,
                "p99_ms": w.p99_ms,
                "temp_c": w.temp_c,
                "cpu_mhz": w.cpu_mhz,
            }
            for w in m.windows
        ],
        "energy": None,
        "accuracy": None,
        "server": None,
        "sustained": None,
    }


def new_report(
    *,
    label: str,
    model: Mapping[str, Any],
    settings: Mapping[str, Any],
    environment: Mapping[str, Any],
) -> dict[str, Any]:
    """An empty report; targets are appended as they are measured."""
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": KIND,
        "edgefleet_version": __version__,
        "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "partial": False,
        "label": label,
        "model": dict(model),
        "settings": dict(settings),
        "environment": dict(environment),
        "targets": [],
    }


def write_report(report: Mapping[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write ``report.json`` and the self-contained ``report.html``; return both paths.

    Files are written next to their final name and renamed, so a reader never sees half a file.
    """
    from edgefleet.bench.html import render_report_html

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in (
        ("report.json", json.dumps(report, indent=2, allow_nan=False)),
        ("report.html", render_report_html(report)),
    ):
        path = out_dir / name
        temporary = path.with_suffix(path.suffix + ".tmp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
        paths.append(path)
    return paths[0], paths[1]
