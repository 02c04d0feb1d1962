"""`model push --calibration` with a holdout on which temperature scaling makes ECE worse."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgefleet.testing.fleet import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess.start(tmp_path_factory.mktemp("calibration") / "server") as running:
        yield running


def softmax_model(path: Path) -> Path:
    """A two-class classifier whose probabilities are the softmax of its input."""
    graph = helper.make_graph(
        [helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)],
        "softmax",
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def worse_ece_holdout(path: Path) -> Path:
    """Mostly calibrated rows plus twenty confidently wrong ones (see test_calibration.py)."""
    p = np.array([[0.7, 0.3]] * 500 + [[0.97, 0.03]] * 480 + [[1 - 1e-6, 1e-6]] * 20)
    y = np.array([0] * 350 + [1] * 150 + [0] * 466 + [1] * 14 + [1] * 20)
    np.savez(path, x=np.log(p).astype(np.float32), y=y)
    return path


def cli(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EDGEFLEET_SERVER": server.url, "EDGEFLEET_TOKEN": server.token}
    return subprocess.run(
        [sys.executable, "-m", "edgefleet", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_a_calibration_that_makes_ece_worse_is_not_applied_and_push_says_so(
    server: ServerProcess, tmp_path: Path
) -> None:
    model = softmax_model(tmp_path / "two-class.onnx")
    holdout = worse_ece_holdout(tmp_path / "holdout.npz")

    pushed = cli(
        server, "model", "push", str(model), "--name", "twoclass", "--calibration", str(holdout)
    )

    assert pushed.returncode == 0, pushed.stderr
    assert "calibration: temperature 1.000" in pushed.stdout
    assert "calibration not applied: the fitted temperature 2.17" in pushed.stdout
    assert "would make ECE worse on the holdout" in pushed.stdout
    shown = json.loads(cli(server, "model", "list", "--json").stdout)
    calibration = next(m for m in shown if m["name"] == "twoclass")["calibration"]
    assert calibration["temperature"] == 1.0
    assert calibration["applied"] is False
    assert "not applied" in server.log_path.read_text()
