"""Model.predict (validation + telemetry) versus a plain InferenceSession.run on the same model.

Measured as a user would call either: each side gets a different input array on every call
(drawn in turn from a pool of distinct arrays built beforehand, the same pool for both sides)
and its outputs back as fresh arrays. Calls are timed one by one in interleaved blocks.

* ``matmul``: a 16->4 MatMul + Softmax model, both sides on default options
  (``edgefleet.runtime.load(path)`` and ``onnxruntime.InferenceSession(path)``): the smallest
  model, where per-call overhead shows most.
* ``digits``: the digit CNN with one intra-op thread on both sides, and again with
  ``nan_policy="reject"`` (what ``edgefleet serve`` uses).
* ``resnet18``: a ResNet-18-sized model, all cores, spinning off on both sides.

The naive side's session is built with the same options as the model's (default options for
``matmul``). Reported per model: ``median_ratio`` (median call of each side),
``throughput_ratio`` (median over blocks of each block's mean time per call: what a loop of calls
costs, telemetry's batch work included, robust to a neighbour's burst spoiling one block) and
``mean_ratio`` (all calls; on a shared machine, dominated by preemptions). Target: ratios
<= 1.0 on the small models, <= 1.01 on ResNet-18.

Usage: python benchmarks/runtime_overhead.py [--quick] [--only matmul]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import describe, interleaved, save
from edgefleet.runtime import load
from edgefleet.testing.models import (
    build_digits_classifier,
    build_matmul_classifier,
    build_resnet18,
    digits_data,
)

POOL = 256  # distinct input arrays cycled through on each side


def measure(
    path: Path,
    pool: list[np.ndarray],
    rounds: int,
    block: int,
    *,
    defaults: bool = False,
    **options: Any,
) -> dict[str, object]:
    model = load(path, **options)
    if defaults:  # what a user writes
        session = ort.InferenceSession(str(path))
    else:
        so = model.options.session_options()
        session = ort.InferenceSession(str(path), so, providers=model.providers)
    name = model.inputs[0].name
    naive_inputs = itertools.cycle([x.copy() for x in pool])
    ours_inputs = itertools.cycle([x.copy() for x in pool])
    session.run(None, {name: pool[0]})
    run, predict = session.run, model.predict

    def naive() -> object:
        return run(None, {name: next(naive_inputs)})

    def ours() -> object:
        return predict({name: next(ours_inputs)})

    us = interleaved({"naive": naive, "edgefleet": ours}, rounds=rounds, block=block)
    totals = model.telemetry.totals()
    ratio = float(np.median(us["edgefleet"]) / np.median(us["naive"]))
    # Throughput: the mean time per call of each block (what a loop of calls costs, telemetry's
    # batch work included), then the median over blocks (a neighbour's burst spoils one block).
    blocks = {k: v.reshape(rounds, block).mean(axis=1) for k, v in us.items()}
    return {
        "model": path.stem,
        "options": "defaults" if defaults else options,
        "calls_recorded_by_telemetry": totals.count,
        "naive": describe(us["naive"]),
        "edgefleet": describe(us["edgefleet"]),
        "median_ratio": ratio,
        "mean_ratio": float(us["edgefleet"].mean() / us["naive"].mean()),
        "block_mean_us": {k: float(np.median(v)) for k, v in blocks.items()},
        "throughput_ratio": float(np.median(blocks["edgefleet"]) / np.median(blocks["naive"])),
    }


def pool_of(shape: tuple[int, ...], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.random(shape, dtype=np.float32) for _ in range(POOL)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls (a smoke run)")
    parser.add_argument("--only", choices=["matmul", "digits", "resnet18"], help="one model")
    args = parser.parse_args()
    rounds = 10 if args.quick else 40
    rows: dict[str, dict[str, object]] = {}
    targets: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "matmul"):
            matmul = build_matmul_classifier(Path(tmp))
            rows["matmul"] = measure(matmul, pool_of((1, 16)), rounds // 2, 4096, defaults=True)
            targets["matmul"] = 1.0
        if args.only in (None, "digits"):
            digits = build_digits_classifier()
            x = digits_data().x_holdout
            pool = [x[i % len(x)][None].copy() for i in range(POOL)]
            one: dict[str, Any] = {"intra_op_threads": 1, "inter_op_threads": 1}
            rows["digits"] = measure(digits, pool, rounds, 500, **one)
            rows["digits_nan_reject"] = measure(
                digits, pool, rounds, 500, **one, nan_policy="reject"
            )
            targets |= {"digits": 1.0, "digits_nan_reject": 1.0}
        if args.only in (None, "resnet18"):
            # Spinning is off on both sides here: two multi-threaded sessions with spinning
            # pools, interleaved in one process, steal cycles from each other.
            rows["resnet18"] = measure(
                build_resnet18(),
                pool_of((1, 3, 224, 224))[:8],
                rounds=3 if args.quick else 10,
                block=10,
                intra_op_threads=0,
                inter_op_threads=1,
                spin_wait=False,
            )
            targets["resnet18"] = 1.01
    for key, row in rows.items():
        n, e = row["naive"], row["edgefleet"]
        assert isinstance(n, dict)
        assert isinstance(e, dict)
        print(
            f"{key:<18} naive p50 {n['p50_us']:9.2f} us  edgefleet p50 {e['p50_us']:9.2f} us"
            f"  median ratio {row['median_ratio']:.3f} (target <= {targets[key]})"
            f"  throughput ratio {row['throughput_ratio']:.3f}  mean ratio {row['mean_ratio']:.3f}"
        )
    print(f"saved {save('runtime_overhead', rows)}")


if __name__ == "__main__":
    main()
