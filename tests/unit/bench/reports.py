"""Pure builders of synthetic report.json dicts (schema_version 1) for the report and compare tests.

Nothing here runs a benchmark: the numbers are made up, shaped like what `edgefleet bench`
writes, so the renderers and the decision logic can be specified without the runner.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any


def histogram(p50_ms: float, spread: float = 1.6, bins_per_decade: int = 20) -> dict[str, Any]:
    """A log-spaced histogram roughly centred on ``p50_ms`` with a tail to the right."""
    lo = math.log10(p50_ms / 4)
    edges = [10 ** (lo + i / bins_per_decade) for i in range(2 * bins_per_decade + 1)]
    centre = math.log10(p50_ms)
    counts = []
    for a, b in itertools.pairwise(edges):
        mid = (math.log10(a) + math.log10(b)) / 2
        z = (mid - centre) / (0.08 * spread) if mid < centre else (mid - centre) / (0.2 * spread)
        counts.append(round(1000 * math.exp(-z * z / 2)))
    return {"edges_ms": edges, "counts": counts}


def make_target(
    name: str = "edge",
    *,
    kind: str = "in-process",
    p50: float = 0.3,
    p99: float = 0.6,
    qps: float = 3100.0,
    errors: int = 0,
    mj: float | None = 2.9,
    watts: float = 9.1,
    estimated: bool = True,
    top1: float | None = 0.984,
    temp_c: float | None = 51.0,
    seconds: int = 10,
    server: dict[str, Any] | None = None,
    sustained: dict[str, Any] | None = None,
    url: str | None = None,
    emulation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One target entry; ``mj=None`` / ``top1=None`` / ``temp_c=None`` leave those unmeasured."""
    timeline = [
        {
            "t_s": float(t),
            "qps": qps * (1 - 0.01 * (t % 3)),
            "p50_ms": p50 * (1 + 0.02 * (t % 2)),
            "p99_ms": p99 * (1 + 0.05 * (t % 4)),
            "temp_c": None if temp_c is None else temp_c + 0.8 * t,
            "cpu_mhz": None if temp_c is None else 2400.0 - 10 * t,
        }
        for t in range(1, seconds + 1)
    ]
    energy = None
    if mj is not None:
        energy = {
            "meter": "estimate" if estimated else "rapl",
            "estimated": estimated,
            "description": "estimate: process CPU time x 8 W per core" if estimated else "RAPL",
            "mean_watts": watts,
            "idle_watts": 0.0,
            "mj_per_inference": mj,
        }
    return {
        "name": name,
        "kind": kind,
        "url": url,
        "format": "json" if url else "in-process",
        "emulation": emulation,
        "scenario": "server" if server else "single-stream",
        "queries": int(qps * seconds),
        "samples": int(qps * seconds),
        "errors": errors,
        "duration_s": float(seconds),
        "latency_ms": {
            "p50": p50,
            "p90": (p50 + p99) / 2,
            "p99": p99,
            "p999": p99 * 2,
            "mean": p50 * 1.1,
            "min": p50 / 2,
            "max": p99 * 5,
        },
        "throughput_qps": qps,
        "stable": True,
        "stability": "3 consecutive windows within 10%",
        "histogram": histogram(p50),
        "timeline": timeline,
        "energy": energy,
        "accuracy": None if top1 is None else {"top1": top1, "samples": 449},
        "server": server,
        "sustained": sustained,
    }


def make_report(
    label: str = "orin-nx",
    targets: list[dict[str, Any]] | None = None,
    *,
    partial: bool = False,
    slo_ms: dict[str, float] | None = None,
) -> dict[str, Any]:
    """A whole report.json dict; by default one in-process "edge" target."""
    return {
        "schema_version": 1,
        "kind": "edgefleet-bench-report",
        "edgefleet_version": "0.1.0",
        "created": "2026-11-24T17:30:00Z",
        "partial": partial,
        "label": label,
        "model": {
            "path": "digits.onnx",
            "name": "digits",
            "sha256": "ab" * 32,
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8]}],
        },
        "settings": {
            "scenario": "single-stream",
            "duration_s": 10,
            "min_queries": 1000,
            "warmup_s": 1,
            "slo_ms": {"p99": 50.0} if slo_ms is None else slo_ms,
            "batch": 1,
            "concurrency": 1,
        },
        "environment": {
            "hostname": label,
            "cpu_model": "Synthetic CPU @ 2.4GHz",
            "cores_logical": 2,
            "cores_physical": 2,
            "memory_bytes": 25_000_000_000,
            "os": "Linux 6.1",
            "machine": "x86_64",
            "python": "3.11.7",
            "onnxruntime": "1.23.0",
            "execution_providers": ["CPUExecutionProvider"],
        },
        "targets": [make_target()] if targets is None else targets,
    }


def cloud_target(**overrides: Any) -> dict[str, Any]:
    """An emulated cloud endpoint: slower, no local energy, no temperature."""
    values: dict[str, Any] = {
        "kind": "emulated",
        "p50": 48.0,
        "p99": 95.0,
        "qps": 20.0,
        "mj": None,
        "temp_c": None,
        "url": "https://cloud.example/v2/models/digits/infer",
        "emulation": {"rtt_ms": 45, "jitter_ms": 10, "bandwidth_mbit": 20, "loss_percent": 0.5},
    }
    values.update(overrides)
    return make_target("cloud", **values)


def server_block(max_qps: float | None = 1800.0) -> dict[str, Any]:
    """A server-scenario result with a QPS search that crosses a 50 ms p99 SLO."""
    search = [
        {"qps": q, "p99_ms": p, "met": p <= 50}
        for q, p in ((500, 0.7), (1000, 2.0), (1500, 9.0), (1800, 31.0), (2000, 80.0))
    ]
    return {"target_qps": 500.0, "achieved_qps": 499.0, "max_qps_at_slo": max_qps, "search": search}


def sustained_block(verdict: str = "stable", drop: float = 0.03) -> dict[str, Any]:
    """Sustained-load windows of 60 s with a verdict."""
    windows = [
        {
            "t_s": 60.0 * i,
            "qps": 3000 * (1 - drop * i / 5),
            "p99_ms": 0.7,
            "temp_c": 60 + 2 * i,
            "cpu_mhz": 2200,
        }
        for i in range(1, 6)
    ]
    return {
        "window_s": 60,
        "verdict": verdict,
        "throughput_drop": drop,
        "evidence": [f"throughput fell {drop:.0%} over 5 windows"],
        "windows": windows,
    }


def write_report(directory: Path, name: str, report: dict[str, Any]) -> Path:
    """Write ``report`` as ``directory/name`` (JSON) and return the path."""
    path = directory / name
    path.write_text(json.dumps(report), encoding="utf-8")
    return path
