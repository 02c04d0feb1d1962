"""Write the demo models and the digit-reader pipeline definition into one directory."""

from __future__ import annotations

import shutil
from pathlib import Path

from edgefleet.testing.models import build_detector, build_digits_classifier, build_resnet18

__all__ = ["PIPELINE_YAML", "write_demo_assets"]

PIPELINE_YAML = """\
# Detector proposes windows, glue crops the best ones, the classifier reads each crop.
name: digit-reader
stages:
  - name: detector
    model: detector.onnx
  - name: crops
    glue: crop_regions
    params: {size: 8, max_regions: 4, score_threshold: 0.05, iou_threshold: 0.1}
  - name: classifier
    model: digits.onnx
    inputs: {input: crops}
outputs: [probabilities, region_boxes, region_image]
"""


def write_demo_assets(
    out: Path, *, resnet: bool = False, cache_dir: Path | None = None
) -> list[Path]:
    """Build (cached) and copy the demo models into ``out``; return the written paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    sources = {
        "digits.onnx": build_digits_classifier(cache_dir),
        # earlier builds of the same classifier, for the rollouts of the demo
        "digits-3-epochs.onnx": build_digits_classifier(cache_dir, epochs=3),
        "digits-1-epoch.onnx": build_digits_classifier(cache_dir, epochs=1),
        "detector.onnx": build_detector(cache_dir),
    }
    if resnet:
        sources["resnet18.onnx"] = build_resnet18(cache_dir)
    for name, source in sources.items():
        target = out / name
        shutil.copyfile(source, target)
        written.append(target)
    pipeline = out / "digit-reader.yaml"
    pipeline.write_text(PIPELINE_YAML)
    written.append(pipeline)
    return written
