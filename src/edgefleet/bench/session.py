"""One ``edgefleet bench`` run: load the model, set up targets and meters, measure, report."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgefleet.bench.environment import fingerprint
from edgefleet.bench.netem import Emulation, NetemProxy
from edgefleet.bench.queries import QuerySet, labelled_queries, random_queries
from edgefleet.bench.report import new_report, target_entry
from edgefleet.bench.runner import Measurement, Progress, RunPlan, measure
from edgefleet.bench.scenarios import HEADLINE, issuer_for
from edgefleet.bench.sustained import sustained_verdict
from edgefleet.bench.targets import (
    LocalTarget,
    ManagedTarget,
    RemoteTarget,
    Target,
    serve_locally,
)
from edgefleet.errors import ConfigurationError, MeterError
from edgefleet.runtime import Model, Pipeline, load_any
from edgefleet.telemetry.energy import (
    energy_result,
    measure_idle,
    open_meter,
    read_clock_event_reasons,
)
from edgefleet.telemetry.thermal import read_thermal

__all__ = ["BenchConfig", "run_bench"]

Say = Callable[[str], None]


@dataclass(frozen=True)
class BenchConfig:
    """Everything ``edgefleet bench MODEL`` was asked to do."""

    model_path: Path
    scenario: str = "single-stream"
    plan: RunPlan = field(default_factory=RunPlan)
    batch: int = 1
    concurrency: int | None = None
    target_qps: float | None = None
    find_max_qps: bool = False
    slo_ms: dict[str, float] = field(default_factory=dict)
    samples_per_query: int = 8
    edge: bool = True
    loopback: bool = False
    cloud_url: str | None = None
    cloud_model: str | None = None
    emulate: Emulation | None = None
    cloud_emulate: Emulation | None = None
    binary: bool = True
    labels: Path | None = None
    energy: str = "auto"
    watts_per_core: float | None = None
    idle_s: float = 2.0
    sysfs_root: Path = Path("/")
    sustained_s: float | None = None
    label: str = ""
    seed: int = 0
    load_options: dict[str, Any] = field(default_factory=dict)


def _model_info(path: Path, model: Model | Pipeline) -> dict[str, Any]:
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    return {
        "path": str(path),
        "name": model.name,
        "sha256": digest,
        "inputs": [spec.to_dict() for spec in model.inputs],
        "outputs": [spec.to_dict() for spec in model.outputs],
    }


def _targets(config: BenchConfig, model: Model | Pipeline, say: Say) -> list[Target]:
    targets: list[Target] = []
    try:
        if config.edge:
            targets.append(LocalTarget(model))
        local_servers: list[Emulation | None] = [None] if config.loopback else []
        if config.cloud_emulate is not None:
            local_servers.append(config.cloud_emulate)
        for link in local_servers:
            where = f"behind an emulated link ({link.describe()})" if link else "on loopback"
            say(f"starting edgefleet serve {where}")
            targets.append(
                serve_locally(
                    config.model_path,
                    model.inputs,
                    emulation=link,
                    binary=config.binary,
                    seed=config.seed,
                    options=config.load_options,
                )
            )
        if config.cloud_url is not None:
            targets.append(_remote(config, model))
    except BaseException:
        for target in targets:
            target.close()
        raise
    if not targets:
        raise ConfigurationError("nothing to measure: --no-edge without --cloud or --cloud-emulate")
    return targets


def _remote(config: BenchConfig, model: Model | Pipeline) -> Target:
    assert config.cloud_url is not None
    url = config.cloud_url if "://" in config.cloud_url else f"http://{config.cloud_url}"
    name = config.cloud_model or model.name
    if config.emulate is None:
        return RemoteTarget(url, name, model.inputs, binary=config.binary)
    scheme, _, rest = url.partition("://")
    hostport, slash, prefix = rest.partition("/")
    host, _, port = hostport.rpartition(":")
    if scheme != "http" or not port.isdigit():
        raise ConfigurationError(
            f"--emulate needs an http:// --cloud URL with an explicit port, got {config.cloud_url}"
        )
    proxy = NetemProxy(host.strip("[]") or "127.0.0.1", int(port), config.emulate, seed=config.seed)
    proxy.start()
    return ManagedTarget(
        proxy.stop,
        url=f"http://{proxy.address}{slash}{prefix}",
        model_name=name,
        inputs=model.inputs,
        binary=config.binary,
        kind="emulated",
        emulation=config.emulate,
    )


def _accuracy(target: Target, queries: QuerySet) -> dict[str, Any] | None:
    """Top-1 accuracy of the target's first output over every labelled sample, once each."""
    if queries.labels is None:
        return None
    session = target.session()
    correct = total = 0
    try:
        for index, labels in enumerate(queries.labels):
            outputs = session.run(index)
            scores = next(iter(outputs.values()))
            predicted = np.asarray(scores).reshape(len(labels), -1).argmax(axis=1)
            correct += int((predicted == labels).sum())
            total += len(labels)
    finally:
        session.close()
    return {"top1": round(correct / total, 6), "samples": total}


def _concurrency(config: BenchConfig) -> int:
    """Load threads: 1 for single-stream, one per sample for multi-stream, else as asked."""
    if config.scenario == "single-stream":
        return 1
    if config.scenario == "multi-stream":
        return config.samples_per_query
    if config.concurrency is not None:
        if config.concurrency < 1:
            raise ConfigurationError(f"--concurrency must be >= 1, got {config.concurrency}")
        return config.concurrency
    return 16 if config.scenario == "server" else max(1, os.cpu_count() or 1)


def _gpu_reasons() -> tuple[str, ...]:
    """NVIDIA clock-event reasons (thermal or power slowdown) when NVML and a GPU are present."""
    try:
        return read_clock_event_reasons()
    except MeterError:  # no NVML bindings or no GPU: other sensors still speak
        return ()


def _slo_met(m: Measurement, slo_ms: dict[str, float]) -> bool:
    if m.latencies_ms.size == 0 or m.errors:
        return False
    for key, bound in slo_ms.items():
        q = {"p50": 50, "p90": 90, "p95": 95, "p99": 99, "p999": 99.9}[key]
        if float(np.percentile(m.latencies_ms, q)) > bound:
            return False
    return True


def _run(
    config: BenchConfig,
    target: Target,
    queries: QuerySet,
    plan: RunPlan,
    qps: float | None,
    meter_factory: Callable[[Target], Any],
    progress: Progress | None,
) -> tuple[Measurement, Any]:
    count, batch = len(queries), queries.batch
    issuer = issuer_for(
        config.scenario,
        target,
        count,
        concurrency=_concurrency(config),
        target_qps=qps,
        samples_per_query=config.samples_per_query,
        seed=config.seed,
        batch=batch,
    )
    meter = meter_factory(target)
    try:
        return measure(
            issuer,
            plan,
            meter=meter,
            thermal=lambda: read_thermal(config.sysfs_root, _gpu_reasons()),
            progress=progress,
        ), meter
    finally:
        if meter is not None:
            meter.close()


def _search_max_qps(
    config: BenchConfig,
    target: Target,
    queries: QuerySet,
    say: Say,
) -> tuple[float, list[dict[str, Any]], bool]:
    """Highest Poisson rate (queries/s) whose percentiles meet the SLO without errors.

    A short closed-loop run at the same concurrency bounds the rate; then six short server runs
    bisect it (doubling the bound while the top rate still passes). Latency counts from the
    scheduled time and every scheduled arrival is issued, so a rate the target cannot sustain
    shows as a growing queue and fails the SLO. Returns the rate, the points tried and whether
    the search was interrupted.
    """
    if not config.slo_ms:
        raise ConfigurationError("--find-max-qps needs an SLO, e.g. --slo p99=50ms")
    short = replace(
        config.plan,
        duration_s=min(config.plan.duration_s, 3.0),
        min_queries=50,
        warmup_s=0.5,
        max_duration_s=None,
    )
    probe = replace(config, scenario="offline", concurrency=_concurrency(config))
    ceiling, _ = _run(probe, target, queries, short, None, lambda t: None, None)
    if ceiling.interrupted:
        return 0.0, [], True
    low, high = 0.0, max(ceiling.queries / max(ceiling.duration_s, 1e-9) * 1.1, 1.0)
    points: list[dict[str, Any]] = []
    for _ in range(6):
        rate = high if not points or low == high else (low + high) / 2
        m, _ = _run(config, target, queries, short, rate, lambda t: None, None)
        if m.interrupted:
            return low, points, True
        met = _slo_met(m, config.slo_ms)
        p99 = float(np.percentile(m.latencies_ms, 99)) if m.latencies_ms.size else None
        points.append({"qps": round(rate, 3), "p99_ms": p99, "met": met})
        say(
            f"  {target.name}: {rate:9.1f} qps -> p99 {p99 or float('nan'):.3f} ms "
            f"{'meets' if met else 'misses'} the SLO"
        )
        if met and rate == high:
            low, high = rate, rate * 2  # the bound was too low: look higher
        elif met:
            low = rate
        else:
            high = rate
    return low, points, False


def run_bench(
    config: BenchConfig,
    *,
    say: Say = print,
    progress_for: Callable[[str], Progress | None] = lambda name: None,
) -> dict[str, Any]:
    """Measure every requested target and return the report (``partial`` if interrupted)."""
    model = load_any(config.model_path, **config.load_options)
    try:
        if config.labels is not None:
            queries = labelled_queries(config.labels, model.inputs, batch=config.batch)
        else:
            queries = random_queries(model.inputs, batch=config.batch, seed=config.seed)
        sustained = config.sustained_s is not None
        plan = config.plan
        if sustained:
            assert config.sustained_s is not None
            plan = replace(
                plan, duration_s=config.sustained_s, max_duration_s=config.sustained_s * 2
            )
        settings = {
            "scenario": config.scenario,
            "headline": HEADLINE.get(config.scenario, None),
            "duration_s": plan.duration_s,
            "min_queries": plan.min_queries,
            "warmup_s": plan.warmup_s,
            "window_s": plan.window_s,
            "batch": config.batch,
            "concurrency": _concurrency(config),
            "samples_per_query": config.samples_per_query,
            "target_qps": config.target_qps,
            "find_max_qps": config.find_max_qps,
            "slo_ms": config.slo_ms,
            "energy": config.energy,
            "sustained_s": config.sustained_s,
            "labels": str(config.labels) if config.labels else None,
            "queries_in_library": len(queries),
            "load_options": {k: str(v) for k, v in config.load_options.items()},
        }
        environment = fingerprint()  # this process's own /proc, whatever the sysfs root
        report = new_report(
            label=config.label or environment["hostname"],
            model=_model_info(config.model_path, model),
            settings=settings,
            environment=environment,
        )
        _measure_all(config, model, queries, plan, report, say, progress_for)
        return report
    finally:
        model.close()


def _measure_all(
    config: BenchConfig,
    model: Model | Pipeline,
    queries: QuerySet,
    plan: RunPlan,
    report: dict[str, Any],
    say: Say,
    progress_for: Callable[[str], Progress | None],
) -> None:
    targets: list[Target] = []
    try:
        targets = _targets(config, model, say)
        probe = open_meter(
            config.energy,
            root=config.sysfs_root,
            pids=[os.getpid()],
            watts_per_core=config.watts_per_core,
            proc_root=Path("/"),
        )
        try:
            say(f"energy meter: {probe.description}; measuring idle power for {config.idle_s:g} s")
            idle_watts = measure_idle(probe, config.idle_s) if config.idle_s > 0 else 0.0
        finally:
            probe.close()

        def meter_for(target: Target) -> Any:
            pids = [os.getpid()] + (target.pids if target.kind == "loopback" else [])
            return open_meter(
                config.energy,
                root=config.sysfs_root,
                pids=pids,
                watts_per_core=config.watts_per_core,
                proc_root=Path("/"),
            )

        for target in targets:
            target.prepare(queries)
            entry = _measure_target(
                config, target, queries, plan, idle_watts, meter_for, say, progress_for(target.name)
            )
            report["targets"].append(entry)
            if entry["interrupted"]:
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        report["partial"] = True
        say("interrupted: writing a partial report")
    finally:
        for target in targets:
            target.close()


def _measure_target(
    config: BenchConfig,
    target: Target,
    queries: QuerySet,
    plan: RunPlan,
    idle_watts: float,
    meter_for: Callable[[Target], Any],
    say: Say,
    progress: Progress | None,
) -> dict[str, Any]:
    accuracy = _accuracy(target, queries)
    qps = config.target_qps
    search: list[dict[str, Any]] = []
    found = False
    if config.scenario == "server" and config.find_max_qps:
        say(f"{target.name}: searching the highest rate that meets the SLO")
        qps, search, interrupted = _search_max_qps(config, target, queries, say)
        if interrupted:
            raise KeyboardInterrupt
        found = qps > 0
        if not found:
            qps = min((p["qps"] for p in search), default=1.0)
            say(f"{target.name}: no rate met the SLO; measuring the lowest tried, {qps:g} qps")
    say(
        f"{target.name}: {config.scenario} for {plan.duration_s:g} s "
        f"(at least {plan.min_queries} queries)"
    )
    m, meter = _run(config, target, queries, plan, qps, meter_for, progress)
    entry = target_entry(target, config.scenario, m)
    entry["accuracy"] = accuracy
    entry["energy"] = _energy(meter, idle_watts, m)
    if config.scenario == "server":
        entry["server"] = {
            "target_qps": None if qps is None else round(qps, 3),
            "achieved_qps": round(m.queries / m.duration_s, 3) if m.duration_s else 0.0,
            "max_qps_at_slo": round(qps, 3) if found and qps else None,
            "search": search,
        }
    if config.sustained_s is not None:
        entry["sustained"] = sustained_verdict(m, plan.window_s)
    return entry


def _energy(meter: Any, idle_watts: float, m: Measurement) -> dict[str, Any]:
    """The report's energy entry; values are null when nothing was measured."""
    if meter is not None and m.joules is not None and m.samples > 0 and m.duration_s > 0:
        result = energy_result(meter, idle_watts, m.joules, m.duration_s, m.samples)
        return {**result.as_dict(), "description": result.description}
    return {
        "meter": getattr(meter, "name", None),
        "estimated": bool(getattr(meter, "estimated", False)),
        "description": "not measured: no successful inference in the measured period",
        "mean_watts": None,
        "idle_watts": idle_watts,
        "mj_per_inference": None,
    }
