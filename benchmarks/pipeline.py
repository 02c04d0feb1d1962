"""In-memory hand-off cost per pipeline stage, beyond the stages' own run time.

Three ways to run the digit-reader (detector -> crop glue -> classifier) on the same canvas:

- ``stages``: the three stages called directly, one after the other (the models' own run time,
  with the glue's compute);
- ``pipeline``: ``Pipeline.predict`` (arrays handed from stage to stage in memory, per-stage and
  pipeline telemetry recorded);
- ``disk``: the stages called directly, but each stage's outputs written with ``np.savez`` to a
  file and read back by the next stage (what teams do when stages are separate programs).

Hand-off per stage = (variant - stages) / number of stages. Target: pipeline <= 50 us per stage.

Usage: python benchmarks/pipeline.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import describe, interleaved, save
from edgefleet.runtime import load_pipeline
from edgefleet.testing.demo_assets import write_demo_assets
from edgefleet.testing.models import compose_canvas, digits_data

Arrays = dict[str, NDArray[Any]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls (a smoke run)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="edgefleet-pipeline-bench-"))
    write_demo_assets(workdir)
    pipeline = load_pipeline(workdir / "digit-reader.yaml")
    detector, crops, classifier = pipeline.stages
    assert detector.model is not None
    assert classifier.model is not None
    assert crops.glue is not None
    det_model, cls_model, glue, params = detector.model, classifier.model, crops.glue, crops.params
    data = digits_data()
    canvas = compose_canvas(data.x_holdout[:4], [(4, 4), (4, 20), (20, 4), (20, 20)])
    stage_count = len(pipeline.stages)

    def by_hand() -> Arrays:
        det = det_model.predict({"image": canvas})
        cut = glue.function(image=canvas, scores=det["scores"], boxes=det["boxes"], **params)
        return cls_model.predict({"input": cut["crops"]})

    def through_pipeline() -> Arrays:
        return pipeline.predict({"image": canvas})

    handoff = workdir / "handoff.npz"

    def through_disk() -> Arrays:
        det = det_model.predict({"image": canvas})
        np.savez(handoff, **det)  # type: ignore[arg-type]
        with np.load(handoff) as saved:
            cut = glue.function(
                image=canvas, scores=saved["scores"], boxes=saved["boxes"], **params
            )
        np.savez(handoff, **cut)  # type: ignore[arg-type]
        with np.load(handoff) as saved:
            out = cls_model.predict({"input": saved["crops"]})
        np.savez(handoff, **out)  # type: ignore[arg-type]
        with np.load(handoff) as saved:
            return {k: saved[k] for k in saved.files}

    np.testing.assert_array_equal(through_pipeline()["probabilities"], by_hand()["probabilities"])
    us = interleaved(
        {"stages": by_hand, "pipeline": through_pipeline, "disk": through_disk},
        rounds=5 if args.quick else 20,
        block=100,
    )
    base = float(np.median(us["stages"]))
    result: dict[str, Any] = {"stages": stage_count}
    for name in ("stages", "pipeline", "disk"):
        row = describe(us[name])
        if name != "stages":
            row["handoff_per_stage_us"] = (float(np.median(us[name])) - base) / stage_count
        result[name] = row
    print(f"stages called directly   p50 {base:9.1f} us")
    for name, target in (("pipeline", "<= 50 us"), ("disk", "for reference")):
        row = result[name]
        print(
            f"{name:<24} p50 {row['p50_us']:9.1f} us   hand-off per stage "
            f"{row['handoff_per_stage_us']:8.1f} us ({target})"
        )
    print(f"saved {save('pipeline', result)}")


if __name__ == "__main__":
    main()
