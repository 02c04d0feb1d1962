"""`edgefleet bench` scenarios versus MLPerf LoadGen on the same model, in one run.

Both drive the digit classifier loaded once in this process (`Model.predict`, one intra-op
thread): LoadGen's SingleStream and Server scenarios through a Python SUT (Server: a pool of
worker threads completing queries asynchronously, as LoadGen expects), and edgefleet's
single-stream and server issuers over the same model. Each pair runs back to back with the same
duration, minimum query count, and Server rate and worker count. Target: p50, p90 and p99
agree within 10%.

Usage: python benchmarks/bench_vs_loadgen.py [--quick] [--duration SECONDS] [--qps RATE]
"""

from __future__ import annotations

import argparse
import queue
import re
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import mlperf_loadgen as lg
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save
from edgefleet.bench.queries import random_queries
from edgefleet.bench.runner import RunPlan, measure
from edgefleet.bench.scenarios import issuer_for
from edgefleet.bench.targets import LocalTarget
from edgefleet.runtime import Model, load
from edgefleet.testing.models import build_digits_classifier

TARGET = "target: p50, p90 and p99 within 10% of LoadGen's"
WORKERS = 4
PERCENTILES = {"p50": "50.00", "p90": "90.00", "p99": "99.00"}


class _Sut:
    """A LoadGen system under test over ``Model.predict``.

    SingleStream (``workers == 0``) runs each query inline in LoadGen's issue call, as
    edgefleet's single-stream issuer runs it inline in its load thread. Server hands queries to
    a pool of worker threads that complete them asynchronously, as LoadGen requires.
    """

    def __init__(self, model: Model, samples: list[dict[str, Any]], workers: int) -> None:
        self.model, self.samples = model, samples
        self.queue: queue.Queue[Any] = queue.Queue()
        self.threads = [threading.Thread(target=self._work, daemon=True) for _ in range(workers)]
        for thread in self.threads:
            thread.start()

    def _work(self) -> None:
        while (query := self.queue.get()) is not None:
            self.model.predict(self.samples[query.index])
            lg.QuerySamplesComplete([lg.QuerySampleResponse(query.id, 0, 0)])

    def issue(self, queries: list[Any]) -> None:
        if not self.threads:
            for query in queries:
                self.model.predict(self.samples[query.index])
            lg.QuerySamplesComplete([lg.QuerySampleResponse(q.id, 0, 0) for q in queries])
            return
        for query in queries:
            self.queue.put(query)

    def close(self) -> None:
        for _ in self.threads:
            self.queue.put(None)
        for thread in self.threads:
            thread.join()


def run_loadgen(
    model: Model, samples: list[dict[str, Any]], scenario: str, duration: float, qps: float
) -> dict[str, float]:
    """Run LoadGen's ``scenario`` and read the percentiles from its summary log."""
    settings = lg.TestSettings()
    settings.mode = lg.TestMode.PerformanceOnly
    settings.min_duration_ms = int(duration * 1000)
    settings.min_query_count = 100
    if scenario == "single-stream":
        settings.scenario = lg.TestScenario.SingleStream
        settings.single_stream_expected_latency_ns = 1_000_000
        workers = 0
    else:
        settings.scenario = lg.TestScenario.Server
        settings.server_target_qps = qps
        settings.server_target_latency_ns = 100_000_000
        workers = WORKERS
    sut_impl = _Sut(model, samples, workers)
    sut = lg.ConstructSUT(sut_impl.issue, lambda: None)
    qsl = lg.ConstructQSL(len(samples), len(samples), lambda s: None, lambda s: None)
    with tempfile.TemporaryDirectory(prefix="loadgen-") as tmp:
        log = lg.LogSettings()
        log.log_output.outdir = tmp
        log.log_output.copy_summary_to_stdout = False
        lg.StartTestWithLogSettings(sut, qsl, settings, log)
        summary = (Path(tmp) / "mlperf_log_summary.txt").read_text()
    lg.DestroyQSL(qsl)
    lg.DestroySUT(sut)
    sut_impl.close()
    result: dict[str, Any] = {}
    for key, label in PERCENTILES.items():
        match = re.search(rf"{label} percentile latency \(ns\)\s*:\s*(\d+)", summary)
        if match is None:
            raise RuntimeError(f"LoadGen summary has no {label} percentile:\n{summary}")
        result[key] = int(match.group(1)) / 1e6
    return result


def run_edgefleet(
    model: Model, queries: Any, scenario: str, duration: float, qps: float
) -> dict[str, float]:
    target = LocalTarget(model)
    target.prepare(queries)
    issuer = issuer_for(scenario, target, len(queries), concurrency=WORKERS, target_qps=qps)
    m = measure(issuer, RunPlan(duration_s=duration, min_queries=100, warmup_s=0.0))
    p50, p90, p99 = np.percentile(m.latencies_ms, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s per run")
    parser.add_argument("--duration", type=float, help="seconds per run [5; quick 3]")
    parser.add_argument("--qps", type=float, default=300.0, help="Server rate [300]")
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds [6]")
    parser.add_argument(
        "--batch", type=int, default=512, help="samples per query [512: about 1 ms of work]"
    )
    args = parser.parse_args()
    duration = args.duration or (3.0 if args.quick else 5.0)
    args.rounds = 1 if args.quick else args.rounds
    model = load(build_digits_classifier(), intra_op_threads=1)
    queries = random_queries(model.inputs, batch=args.batch, count=64)
    for _ in range(200):  # warm both paths equally before either is measured
        model.predict(queries.samples[0])
    rows: dict[str, Any] = {}
    met = True
    print(
        f"digits model in-process, batch {args.batch}, {duration:g} s per run, "
        f"Server {args.qps:g} QPS, {WORKERS} workers, {args.rounds} alternating rounds "
        f"(medians); {TARGET}"
    )
    print(f"{'scenario':<14} {'pct':>4} | {'LoadGen ms':>10} {'edgefleet ms':>12} {'ratio':>6}")
    for scenario in ("single-stream", "server"):
        runs: dict[str, list[dict[str, float]]] = {"loadgen": [], "edgefleet": []}
        for r in range(args.rounds):
            order = ["loadgen", "edgefleet"] if r % 2 == 0 else ["edgefleet", "loadgen"]
            for who in order:
                if who == "loadgen":
                    seen = run_loadgen(model, queries.samples, scenario, duration, args.qps)
                else:
                    seen = run_edgefleet(model, queries, scenario, duration, args.qps)
                runs[who].append(seen)
        reference = {k: float(np.median([run[k] for run in runs["loadgen"]])) for k in PERCENTILES}
        ours = {k: float(np.median([run[k] for run in runs["edgefleet"]])) for k in PERCENTILES}
        rows[scenario] = {"loadgen_ms": reference, "edgefleet_ms": ours, "ratio": {}, "runs": runs}
        for key in PERCENTILES:
            ratio = ours[key] / reference[key]
            rows[scenario]["ratio"][key] = ratio
            met = met and abs(ratio - 1) <= 0.10
            print(
                f"{scenario:<14} {key:>4} | {reference[key]:10.4f} {ours[key]:12.4f} {ratio:6.3f}"
            )
    print(f"targets met: {'yes' if met else 'NO'}")
    result: dict[str, Any] = {
        "duration_s": duration,
        "qps": args.qps,
        "batch": args.batch,
        "rounds": args.rounds,
        "workers": WORKERS,
        "target": TARGET,
        "target_met": met,
        "scenarios": rows,
    }
    print(f"saved {save('bench_vs_loadgen', result)}")
    model.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
