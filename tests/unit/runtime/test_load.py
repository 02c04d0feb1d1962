from __future__ import annotations

from pathlib import Path

import onnx
import onnxruntime as ort
import pytest

from edgefleet.errors import ConfigurationError, ModelLoadError
from edgefleet.runtime import load


def test_inspects_inputs_outputs_and_metadata(digits_path: Path) -> None:
    model = load(digits_path, name="digits", version="7")
    assert (model.name, model.version) == ("digits", "7")
    [inp] = model.inputs
    assert (inp.name, inp.datatype, inp.shape) == ("input", "FP32", ("batch", 1, 8, 8))
    assert inp.protocol_shape == [-1, 1, 8, 8]
    [out] = model.outputs
    assert (out.name, out.datatype, out.shape) == ("probabilities", "FP32", ("batch", 10))
    assert model.metadata["edgefleet.task"] == "classification"
    assert model.opset == 17
    assert model.size_bytes == digits_path.stat().st_size


def test_name_defaults_to_the_file_stem(digits_path: Path) -> None:
    assert load(digits_path).name == digits_path.stem


def test_auto_providers_end_with_the_cpu_and_report_what_runs(digits_path: Path) -> None:
    model = load(digits_path)
    assert model.providers[-1] == "CPUExecutionProvider"
    assert set(model.providers) <= set(ort.get_available_providers())


def test_explicit_provider_list(digits_path: Path) -> None:
    assert load(digits_path, providers=["CPUExecutionProvider"]).providers == [
        "CPUExecutionProvider"
    ]


def test_unavailable_provider_is_named(digits_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"NoSuchExecutionProvider.*available"):
        load(digits_path, providers=["NoSuchExecutionProvider"])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"thread": 1}, "unknown load option"),
        ({"intra_op_threads": -1}, "intra_op_threads"),
        ({"graph_optimization": "max"}, "graph_optimization"),
        ({"nan_policy": "ignore"}, "nan_policy"),
        ({"providers": []}, "providers"),
        ({"confidence": 3}, "confidence"),
    ],
)
def test_bad_options_are_named(digits_path: Path, options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load(digits_path, **options)


def test_session_options_are_applied(digits_path: Path) -> None:
    model = load(digits_path, intra_op_threads=1, spin_wait=False, graph_optimization="basic")
    so = model.options.session_options()
    assert so.intra_op_num_threads == 1
    assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_optimized_model_is_cached_and_reused(digits_path: Path, tmp_path: Path) -> None:
    first = load(digits_path, optimized_cache_dir=tmp_path)
    cached = list(tmp_path.glob("*.optimized.onnx"))
    assert len(cached) == 1
    onnx.checker.check_model(str(cached[0]))
    second = load(digits_path, optimized_cache_dir=tmp_path)
    assert list(tmp_path.glob("*.optimized.onnx")) == cached
    x = {"input": __import__("numpy").ones((2, 1, 8, 8), dtype="float32")}
    assert (first.predict(x)["probabilities"] == second.predict(x)["probabilities"]).all()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        load(tmp_path / "nope.onnx")


def test_directory_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not a file"):
        load(tmp_path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="empty"):
        load(path)


def test_not_onnx(tmp_path: Path) -> None:
    path = tmp_path / "text.onnx"
    path.write_text("this is not a model\n" * 10)
    with pytest.raises(ModelLoadError, match=r"not a valid ONNX model|cannot load"):
        load(path)


def test_truncated_model(digits_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "truncated.onnx"
    path.write_bytes(digits_path.read_bytes()[: digits_path.stat().st_size // 2])
    with pytest.raises(ModelLoadError):
        load(path)
