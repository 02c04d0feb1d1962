from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgefleet.errors import MissingInputError, PipelineError, UnexpectedInputError
from edgefleet.runtime import load, load_any, load_pipeline
from edgefleet.runtime.glue import crop_regions
from edgefleet.testing.models import DigitsData, compose_canvas

POSITIONS = [(4, 4), (4, 20), (20, 4), (20, 20)]


def test_pipeline_reads_every_digit_on_a_canvas(demo_dir: Path, digits: DigitsData) -> None:
    pipeline = load_pipeline(demo_dir / "digit-reader.yaml")
    assert [s.name for s in pipeline.inputs] == ["image"]
    assert [s.name for s in pipeline.outputs] == ["probabilities", "region_boxes", "region_image"]
    hits = 0
    for start in range(0, 40, 4):
        canvas = compose_canvas(digits.x_holdout[start : start + 4], POSITIONS)
        out = pipeline.predict({"image": canvas})
        assert out["probabilities"].shape == (4, 10)
        by_position = {
            (int(b[0]), int(b[1])): int(p.argmax())
            for b, p in zip(out["region_boxes"], out["probabilities"], strict=True)
        }
        assert set(by_position) == set(POSITIONS)
        truth = dict(zip(POSITIONS, digits.y_holdout[start : start + 4].tolist(), strict=True))
        hits += sum(by_position[p] == truth[p] for p in POSITIONS)
    assert hits >= 36  # of 40 digits


def test_pipeline_equals_running_the_stages_by_hand(demo_dir: Path, digits: DigitsData) -> None:
    canvas = compose_canvas(digits.x_holdout[:4], POSITIONS)
    pipeline = load_any(demo_dir / "digit-reader.yaml")
    detector = load(demo_dir / "detector.onnx")
    classifier = load(demo_dir / "digits.onnx")
    det = detector.predict({"image": canvas})
    crops = crop_regions(
        canvas,
        det["scores"],
        det["boxes"],
        size=8,
        max_regions=4,
        score_threshold=0.05,
        iou_threshold=0.1,
    )
    expected = classifier.predict({"input": crops["crops"]})["probabilities"]
    np.testing.assert_array_equal(pipeline.predict({"image": canvas})["probabilities"], expected)


def test_per_stage_telemetry(demo_dir: Path, digits: DigitsData) -> None:
    pipeline = load_pipeline(demo_dir / "digit-reader.yaml")
    for _ in range(5):
        pipeline.predict({"image": compose_canvas(digits.x_holdout[:4], POSITIONS)})
    snap = pipeline.telemetry.snapshot()
    assert snap.count == 5
    assert set(snap.stages) == {"detector", "crops", "classifier"}
    assert all(s.count == 5 for s in snap.stages.values())
    assert snap.confidence.count == 20  # one confidence per region
    assert snap.stages["classifier"].confidence.count == 20
    stage_time = sum(s.latency.sum for s in snap.stages.values())
    assert snap.latency.sum >= stage_time


def test_empty_canvas_gives_empty_outputs(demo_dir: Path) -> None:
    out = load_pipeline(demo_dir / "digit-reader.yaml").predict(
        {"image": np.zeros((1, 1, 32, 32), np.float32)}
    )
    assert out["probabilities"].shape == (0, 10)
    assert out["region_boxes"].shape == (0, 4)


def test_pipeline_input_names_are_checked(demo_dir: Path) -> None:
    pipeline = load_pipeline(demo_dir / "digit-reader.yaml")
    with pytest.raises(MissingInputError, match="'image'"):
        pipeline.predict({})
    with pytest.raises(UnexpectedInputError, match="'other'"):
        pipeline.predict({"image": np.zeros((1, 1, 32, 32), np.float32), "other": np.zeros(1)})
    assert pipeline.telemetry.snapshot().rejected == 2


def write(tmp_path: Path, demo_dir: Path, spec: object, suffix: str = ".json") -> Path:
    for name in ("digits.onnx", "detector.onnx"):
        target = tmp_path / name
        if not target.exists():
            target.write_bytes((demo_dir / name).read_bytes())
    path = tmp_path / f"p{suffix}"
    path.write_text(spec if isinstance(spec, str) else json.dumps(spec))
    return path


DETECT = {"name": "d", "model": "detector.onnx"}
CROP = {"name": "c", "glue": "crop_regions"}
CLASSIFY = {"name": "k", "model": "digits.onnx", "inputs": {"input": "crops"}}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"stages": []}, "no stages"),
        ({"stagez": []}, "'stages' list"),
        ({"stages": [DETECT], "extra": 1}, "unknown key"),
        ({"stages": [{"name": "x"}]}, "exactly one of 'model' or 'glue'"),
        ({"stages": [DETECT, {"glue": "blur"}]}, "unknown glue step 'blur'"),
        ({"stages": [DETECT, {**CROP, "params": {"sizes": 3}}]}, "no parameter"),
        ({"stages": [CROP]}, "reads 'image', which no earlier stage produces"),
        ({"stages": [DETECT, DETECT]}, "two stages named"),
        ({"stages": [DETECT, {**DETECT, "name": "e"}]}, "already produced"),
        ({"stages": [DETECT], "outputs": ["nothing"]}, "which no stage produces"),
        ({"stages": [{"model": "missing.onnx"}]}, None),
        ({"stages": [DETECT, CROP, {**CLASSIFY, "inputs": {"nope": "crops"}}]}, "unknown arg"),
    ],
)
def test_bad_definitions_are_explained(
    tmp_path: Path, demo_dir: Path, spec: object, message: str | None
) -> None:
    path = write(tmp_path, demo_dir, spec)
    with pytest.raises((PipelineError, Exception), match=message or "not found"):
        load_pipeline(path)


def test_unparseable_yaml(tmp_path: Path, demo_dir: Path) -> None:
    with pytest.raises(PipelineError, match="not valid YAML"):
        load_pipeline(write(tmp_path, demo_dir, "stages: [unclosed", ".yaml"))


def test_missing_definition_file(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="cannot read"):
        load_pipeline(tmp_path / "nope.yaml")


def test_a_wrong_pipeline_input_name_is_named(demo_dir: Path) -> None:
    pipeline = load_pipeline(demo_dir / "digit-reader.yaml")
    with pytest.raises(MissingInputError, match=r"has no input\(s\) 'picture' and needs.*'image'"):
        pipeline.predict({"picture": np.zeros((1, 1, 32, 32), np.float32)})
