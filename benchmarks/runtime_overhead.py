"""Model.predict (validation + telemetry) versus a naive InferenceSession.run on the same model.

Both sides use one ONNX Runtime session configuration (same threads and optimisation level) and
the same input; a fresh input array is copied in before each call on both sides. Calls are timed
one by one in interleaved blocks. Target: median ratio <= 1.0 on the tiny digit model and
<= 1.01 on the ResNet-18-sized model.

Usage: python benchmarks/runtime_overhead.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import describe, interleaved, save
from edgefleet.runtime import load
from edgefleet.testing.models import build_digits_classifier, build_resnet18, digits_data


def measure(
    path: Path, x: np.ndarray, rounds: int, block: int, threads: int, **options: object
) -> dict[str, object]:
    model = load(path, intra_op_threads=threads, inter_op_threads=1, **options)
    session = ort.InferenceSession(
        str(path), model.options.session_options(), providers=model.providers
    )
    name = model.inputs[0].name
    naive_feed = {name: x.copy()}
    ours_feed = {name: x.copy()}
    session.run(None, naive_feed)

    def naive() -> object:
        return session.run(None, naive_feed)

    def ours() -> object:
        return model.predict(ours_feed)

    us = interleaved({"naive": naive, "edgefleet": ours}, rounds=rounds, block=block)
    snap = model.telemetry.snapshot()
    ratio = float(np.median(us["edgefleet"]) / np.median(us["naive"]))
    return {
        "model": path.stem,
        "calls_recorded_by_telemetry": snap.count,
        "naive": describe(us["naive"]),
        "edgefleet": describe(us["edgefleet"]),
        "median_ratio": ratio,
        "mean_ratio": float(us["edgefleet"].mean() / us["naive"].mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls (a smoke run)")
    args = parser.parse_args()
    digits = build_digits_classifier()
    x_digit = digits_data().x_holdout[:1].copy()
    rounds = 10 if args.quick else 40
    tiny = measure(digits, x_digit, rounds=rounds, block=500, threads=1)
    # The same with NaN/infinity checking on (the default of `edgefleet serve`).
    tiny_nan = measure(digits, x_digit, rounds=rounds, block=500, threads=1, nan_policy="reject")
    tiny_nan["model"] = "digits (nan_policy=reject)"
    resnet_x = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
    # Spinning is off on both sides here: two multi-threaded sessions with spinning pools,
    # interleaved in one process, steal cycles from each other.
    big = measure(
        build_resnet18(),
        resnet_x,
        rounds=3 if args.quick else 10,
        block=10,
        threads=0,
        spin_wait=False,
    )
    for row, target in ((tiny, 1.0), (tiny_nan, 1.0), (big, 1.01)):
        n, e = row["naive"], row["edgefleet"]
        assert isinstance(n, dict)
        assert isinstance(e, dict)
        print(
            f"{row['model']:<28} naive p50 {n['p50_us']:9.1f} us"
            f"  edgefleet p50 {e['p50_us']:9.1f} us"
            f"  median ratio {row['median_ratio']:.3f} (target <= {target})"
            f"  mean ratio {row['mean_ratio']:.3f}"
        )
    path = save("runtime_overhead", {"tiny": tiny, "tiny_nan_reject": tiny_nan, "resnet18": big})
    print(f"saved {path}")


if __name__ == "__main__":
    main()
