"""The registry's refusals name the files as the operator uploaded them (SQLite and PostgreSQL).

The server keeps an upload under the client's file name (its base name, made safe), so every
message about it says ``my-detector-v2.onnx``, not a name the server chose. A calibration file
that is not an ``.npz`` is named as such; nothing is unpickled and no message suggests
``allow_pickle``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.integration.server.conftest import LiveServer


def push(
    live: LiveServer, model: Path, filename: str, calibration: tuple[str, Path] | None = None
) -> tuple[int, dict[str, str]]:
    with live.operator() as op, model.open("rb") as f:
        files = {"file": (filename, f.read(), "application/octet-stream")}
        if calibration is not None:
            files["calibration"] = (calibration[0], calibration[1].read_bytes(), "x")
        response = op.post("/models", data={"name": "named"}, files=files)
    body: dict[str, str] = response.json()
    return response.status_code, body


def test_a_refused_model_is_named_as_uploaded(
    live_on_each_backend: LiveServer, tmp_path: Path
) -> None:
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x08\x07not a model")
    status, body = push(live_on_each_backend, bad, "my-detector-v2.onnx")
    assert status == 422
    assert body["code"] == "model.load"
    assert body["error"].startswith("my-detector-v2.onnx is not an ONNX model")


def test_an_upload_name_with_a_path_keeps_only_its_base_name(
    live_on_each_backend: LiveServer, tmp_path: Path
) -> None:
    bad = tmp_path / "bad"
    bad.write_bytes(b"")
    status, body = push(live_on_each_backend, bad, "../../../etc/passwd")
    assert status == 422
    assert "model file passwd is empty" in body["error"]
    assert not (live_on_each_backend.data_dir.parent / "etc").exists()


def _npy(path: Path) -> Path:
    with path.open("wb") as f:  # a file object: np.save would add ".npy" to a path
        np.save(f, np.zeros(3))
    return path


def _text(path: Path) -> Path:
    path.write_text("x,y\n0.1,1\n")
    return path


def _pickle(path: Path) -> Path:
    import pickle

    path.write_bytes(pickle.dumps({"x": [1.0], "y": [1]}))
    return path


def _objects(path: Path) -> Path:
    with path.open("wb") as f:
        np.savez(f, x=np.array([{"a": 1}], dtype=object), y=np.array([1]))
    return path


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (_npy, "is a single .npy array"),
        (_text, "is not an .npz file"),
        (_pickle, "is not an .npz file"),
        (_objects, "holds Python objects"),
    ],
    ids=["npy", "text", "pickle", "object-array"],
)
def test_a_calibration_file_that_is_not_an_npz_is_named_and_never_unpickled(
    live_on_each_backend: LiveServer,
    digits_path: Path,
    tmp_path: Path,
    make: Callable[[Path], Path],
    says: str,
) -> None:
    calibration = make(tmp_path / "data")
    status, body = push(
        live_on_each_backend, digits_path, "digits.onnx", ("holdout labels.npz", calibration)
    )
    assert status == 400
    assert body["code"] == "config.invalid"
    assert body["error"].startswith("calibration data holdout labels.npz")
    assert says in body["error"]
    assert "pickle" not in body["error"]
