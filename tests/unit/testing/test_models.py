from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import pytest

from edgefleet.runtime import load
from edgefleet.testing.models import (
    build_detector,
    build_digits_classifier,
    build_resnet18,
    compose_canvas,
    digits_data,
    window_boxes,
)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_digits_classifier_is_deterministic(tmp_path: Path, digits_path: Path) -> None:
    again = build_digits_classifier(tmp_path)
    assert again != digits_path
    assert sha(again) == sha(digits_path)


def test_builders_reuse_the_cache(tmp_path: Path) -> None:
    first = build_detector(tmp_path)
    mtime = first.stat().st_mtime_ns
    assert build_detector(tmp_path) == first
    assert first.stat().st_mtime_ns == mtime
    assert build_detector(tmp_path, stride=8) != first


def test_digits_split_is_disjoint_and_complete() -> None:
    data = digits_data()
    assert len(data.x_train) + len(data.x_holdout) == 1797
    assert data.x_train.dtype == np.float32
    assert data.x_train.min() >= 0.0
    assert data.x_train.max() <= 1.0


def test_detector_scores_the_windows_that_hold_digits(detector_path: Path) -> None:
    digits = digits_data().x_holdout[:2]
    canvas = compose_canvas(digits, [(0, 0), (24, 24)])
    out = load(detector_path).predict({"image": canvas})
    boxes = out["boxes"]
    best = boxes[np.argsort(-out["scores"][0])[:2]].tolist()
    assert sorted(best) == [[0, 0, 8, 8], [24, 24, 32, 32]]
    assert window_boxes().shape == (49, 4)


def test_detector_refuses_impossible_windows(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="do not fit"):
        build_detector(tmp_path, window=40)


def test_resnet_is_resnet18_sized(model_cache: Path) -> None:
    model = onnx.load(str(build_resnet18(model_cache)))
    params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    assert 11_000_000 < params < 12_500_000
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert len(convs) == 20  # 17 3x3/7x7 convolutions + 3 projection shortcuts


def test_compose_canvas_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="2 digits but 1 positions"):
        compose_canvas(np.zeros((2, 1, 8, 8), np.float32), [(0, 0)])
