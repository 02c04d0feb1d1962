"""``edgefleet demo``: the whole story a user should see, in one command.

At this stage: build the demo models from code, serve the digit classifier and the
digit-reader pipeline with ``edgefleet serve`` (real subprocesses), send real requests over the
Open Inference Protocol, print latency percentiles, throughput and accuracy, then measure the
digit classifier with ``edgefleet bench`` on this device and behind an emulated cloud link, run
a control plane with three agents, deploy an early build of the model and print fleet-merged
telemetry, and finally roll out a better build in stages and catch and roll back a worse one.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from edgefleet.runtime.oip.client import OIPClient
from edgefleet.testing.demo_assets import write_demo_assets
from edgefleet.testing.models import DigitsData, compose_canvas, digits_data

__all__ = ["run_demo"]

Say = Callable[[str], None]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def _served(path: Path, name: str, log: Path) -> Iterator[OIPClient]:
    """Run ``edgefleet serve`` as a real subprocess; stop it with SIGTERM afterwards."""
    port = _free_port()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "edgefleet",
                "serve",
                str(path),
                "--name",
                name,
                "--port",
                str(port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    client = OIPClient(f"127.0.0.1:{port}")
    try:
        try:
            client.wait_ready(60)
        except Exception:
            raise RuntimeError(f"edgefleet serve did not start; see {log}") from None
        yield client
    finally:
        client.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _percentiles(latencies_s: list[float]) -> str:
    ms = np.asarray(latencies_s) * 1e3
    p = np.percentile(ms, [50, 90, 99, 99.9])
    return f"p50 {p[0]:.3f} ms  p90 {p[1]:.3f} ms  p99 {p[2]:.3f} ms  p99.9 {p[3]:.3f} ms"


def _load(
    url: str,
    model: str,
    feeds: dict[str, NDArray[np.float32]],
    *,
    binary: bool,
    seconds: float,
    threads: int,
) -> tuple[list[float], float]:
    """Send requests back to back from ``threads`` clients for ``seconds``."""
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def worker() -> None:
        client = OIPClient(url)
        mine = []
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            client.infer(model, feeds, binary=binary)
            mine.append(time.perf_counter() - t0)
        client.close()
        with lock:
            latencies.extend(mine)

    start = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return latencies, len(latencies) / (time.perf_counter() - start)


def run_demo(workdir: Path, *, seconds: float = 3.0, say: Say = print) -> None:
    """Run the demo, writing models and logs under ``workdir``."""
    say("== 1. Build the demo models from code (cached; nothing is downloaded)")
    models_dir = workdir / "models"
    for path in write_demo_assets(models_dir):
        say(f"   {path}")
    data = digits_data()

    say("\n== 2. Serve the digit classifier: edgefleet serve models/digits.onnx")
    with _served(models_dir / "digits.onnx", "digits", workdir / "serve-digits.log") as client:
        meta = client.metadata("digits")
        say(f"   {client.url}  platform {meta['platform']}  inputs {meta['inputs']}")
        probs = client.infer("digits", {"input": data.x_holdout})["probabilities"]
        accuracy = float((probs.argmax(axis=1) == data.y_holdout).mean())
        say(
            f"   accuracy on {len(data.y_holdout)} held-out digits (one batched request): "
            f"{accuracy:.1%}"
        )
        x = data.x_holdout[:1]
        for label, binary, threads in (
            ("JSON tensors, 1 client", False, 1),
            ("binary tensors, 1 client", True, 1),
            ("binary tensors, 4 clients", True, 4),
        ):
            lat, qps = _load(
                client.url, "digits", {"input": x}, binary=binary, seconds=seconds, threads=threads
            )
            say(f"   {label:<26} {len(lat):6d} requests  {qps:7.0f} req/s  {_percentiles(lat)}")
        stats = client.statistics("digits")["inference_stats"]
        infer = stats["compute_infer"]
        say(
            f"   server side: {stats['success']['count']} successes, {stats['fail']['count']} "
            f"failures, mean model time {infer['ns'] / max(infer['count'], 1) / 1e3:.1f} us"
        )

    say("\n== 3. Serve a pipeline (detector -> crop glue -> classifier), tensors stay in memory")
    pipeline = models_dir / "digit-reader.yaml"
    with _served(pipeline, "digit-reader", workdir / "serve-pipeline.log") as client:
        positions = [(4, 4), (4, 20), (20, 4), (20, 20)]
        correct = total = 0
        for start in range(0, 100, 4):
            canvas = compose_canvas(data.x_holdout[start : start + 4], positions)
            out = client.infer("digit-reader", {"image": canvas})
            found = {
                (int(b[0]), int(b[1])): int(p.argmax())
                for b, p in zip(out["region_boxes"], out["probabilities"], strict=True)
            }
            for pos, truth in zip(
                positions, data.y_holdout[start : start + 4].tolist(), strict=True
            ):
                correct += found.get(pos) == truth
                total += 1
        say(f"   read {correct} of {total} digits on {total // 4} canvases correctly")
        lat, qps = _load(
            client.url, "digit-reader", {"image": canvas}, binary=True, seconds=seconds, threads=1
        )
        label = "pipeline over HTTP"
        say(f"   {label:<26} {len(lat):6d} requests  {qps:7.0f} req/s  {_percentiles(lat)}")

    _bench(workdir, models_dir / "digits.onnx", data, seconds, say)

    from edgefleet.cli.demo_fleet import run_fleet_demo

    fleet_models = {
        "first": models_dir / "digits-3-epochs.onnx",
        "better": models_dir / "digits.onnx",
        "worse": models_dir / "digits-1-epoch.onnx",
    }
    run_fleet_demo(workdir, fleet_models, data, seconds, say)
    say(f"\nDone. Models, server logs and the benchmark report are in {workdir}.")


def _bench(workdir: Path, model: Path, data: DigitsData, seconds: float, say: Say) -> None:
    """Step 4: the same model on this device and behind an emulated WAN link, side by side."""
    from edgefleet.bench.netem_spec import parse_emulation
    from edgefleet.bench.report import write_report
    from edgefleet.bench.runner import RunPlan
    from edgefleet.bench.session import BenchConfig, run_bench

    link = "rtt=45ms,jitter=10ms,bw=20mbit"
    say(f"\n== 4. edgefleet bench: this device versus an emulated cloud ({link})")
    labels = workdir / "digits-holdout.npz"
    np.savez(labels, x=data.x_holdout, y=data.y_holdout)
    config = BenchConfig(
        model_path=model,
        plan=RunPlan(duration_s=seconds, min_queries=50, warmup_s=0.5, window_s=0.5),
        cloud_emulate=parse_emulation(link),
        labels=labels,
        idle_s=1.0,
        label="this-device",
    )
    report = run_bench(config, say=lambda line: say(f"   {line}"))
    json_path, html_path = write_report(report, workdir / "bench")
    for target in report["targets"]:
        lat, energy = target["latency_ms"], target["energy"] or {}
        accuracy = target["accuracy"] or {}
        say(
            f"   {target['name']:<6} p50 {lat['p50']:8.3f} ms  p90 {lat['p90']:8.3f} ms  "
            f"p99 {lat['p99']:8.3f} ms  {target['throughput_qps']:8.1f} inferences/s  "
            f"{energy.get('mj_per_inference', float('nan')):.3f} mJ/inference"
            f"{' (estimate)' if energy.get('estimated') else ''}  "
            f"accuracy {accuracy.get('top1', float('nan')):.1%}"
        )
    say(f"   report: {json_path} and {html_path} (opens offline in any browser)")
