"""Federated simulation at fleet scale: the local backend and the Ray backend side by side.

Both backends run the same simulation (same task, config and seed) in this process, one after
the other: the local backend trains the sampled devices one after another in this process; the
Ray backend runs each device as a Ray task on a Ray started on this machine (``--num-cpus``) or
on a running cluster (``--ray-address``). Reported per round: wall time of each backend (the
devices' work plus the server's aggregation and evaluation, which are the same for both) and the
speed-up (local time / Ray time; above 1, Ray is faster). Ray's start-up is reported apart;
its first round includes starting the workers (importing PyTorch in each), so the steady state
is the median of the later rounds. The final models are compared bit for bit. Before anything
is timed, this process trains and evaluates once, so the local figures carry no warm-up.

Usage: python benchmarks/fl_ray_scale.py [--clients 1000] [--per-round 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import save
from edgefleet.federated.ray_backend import RayBackend, require_ray
from edgefleet.federated.simulation import (
    Backend,
    LocalBackend,
    RoundResult,
    SimulationConfig,
    SimulationResult,
    simulate,
)
from edgefleet.federated.task import Task, TrainConfig, load_task


def _timed(
    label: str, task: Task, config: SimulationConfig, backend: Backend
) -> tuple[SimulationResult, list[float]]:
    """The simulation's result and each round's wall time in seconds, printed as they close."""
    times: list[float] = []
    last = time.perf_counter()

    def progress(result: RoundResult) -> None:
        nonlocal last
        now = time.perf_counter()
        times.append(now - last)
        last = now
        print(
            f"  [{label}] round {result.round}: {times[-1]:7.2f} s, "
            f"{result.participants} updates, accuracy {100 * result.accuracy:.1f}%",
            flush=True,
        )

    return simulate(task, config, backend=backend, progress=progress), times


def _steady(times: list[float]) -> float:
    """Median round time without the first round (all of them when there is only one)."""
    return statistics.median(times[1:] or times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="digits", help="Task spec (built-in or module:attr).")
    parser.add_argument("--clients", type=int, default=1000, help="Simulated devices.")
    parser.add_argument("--per-round", type=int, default=100, help="Devices sampled per round.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--partition", default="iid")
    parser.add_argument("--strategy", default="fedavg")
    parser.add_argument("--compression", default="dgc:0.99")
    parser.add_argument("--local-epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--num-cpus",
        type=int,
        default=os.cpu_count() or 1,
        help="CPUs of the Ray started on this machine (default: all).",
    )
    parser.add_argument("--cpus-per-device", type=float, default=1.0)
    parser.add_argument(
        "--ray-address", default=None, help="A running Ray cluster (default: start one here)."
    )
    args = parser.parse_args()
    ray = require_ray()
    config = SimulationConfig(
        clients=args.clients,
        rounds=args.rounds,
        per_round=args.per_round,
        partition=args.partition,
        strategy=args.strategy,
        compression=args.compression,
        local_epochs=args.local_epochs,
        seed=args.seed,
    )
    task = load_task(args.task)
    data = task.load_data()  # warm the task's data and PyTorch up before anything is timed
    warm = task.build_model()
    task.train(warm, data.subset(np.arange(min(8, len(data)))), 1, TrainConfig())
    task.evaluate(warm, task.holdout())
    print(
        f"{args.task}: {args.clients} devices, {args.per_round} per round, {args.rounds} rounds, "
        f"{args.compression}; Ray on {args.ray_address or f'this machine, {args.num_cpus} CPUs'}",
        flush=True,
    )

    local, local_times = _timed("local", task, config, LocalBackend())
    began = time.perf_counter()
    backend = RayBackend(
        args.ray_address, num_cpus=args.num_cpus, cpus_per_device=args.cpus_per_device
    )
    with backend:
        startup = time.perf_counter() - began
        print(f"  [ray] started in {startup:.2f} s", flush=True)
        cpus = float(ray.cluster_resources().get("CPU", 0.0))
        remote, ray_times = _timed("ray", task, config, backend)

    identical = remote.model.tobytes() == local.model.tobytes() and remote.rounds == local.rounds
    print()
    print(f"{'round':>5}{'local s':>10}{'ray s':>10}{'speed-up':>10}")
    rows: list[dict[str, Any]] = []
    for i, (a, b) in enumerate(zip(local_times, ray_times, strict=True), start=1):
        rows.append({"round": i, "local_s": a, "ray_s": b, "speedup": a / b})
        print(f"{i:>5}{a:>10.2f}{b:>10.2f}{a / b:>9.2f}x")
    steady_local, steady_ray = _steady(local_times), _steady(ray_times)
    print(
        f"steady state (median of rounds 2+): local {steady_local:.2f} s, ray {steady_ray:.2f} s, "
        f"speed-up {steady_local / steady_ray:.2f}x on {cpus:g} Ray CPUs; "
        f"Ray start-up {startup:.2f} s; identical results: {identical}"
    )
    path = save(
        "fl_ray_scale",
        {
            "config": vars(config),
            "task": args.task,
            "ray": {
                "address": args.ray_address,
                "cpus": cpus,
                "cpus_per_device": args.cpus_per_device,
                "version": ray.__version__,
            },
            "machine_cpus": os.cpu_count(),
            "ray_startup_s": startup,
            "rounds": rows,
            "steady_local_s": steady_local,
            "steady_ray_s": steady_ray,
            "steady_speedup": steady_local / steady_ray,
            "identical_results": identical,
            "final_accuracy": local.rounds[-1].accuracy,
        },
    )
    print(f"saved {path}")


if __name__ == "__main__":
    main()
