"""The smoke test passes a model that reproduces its golden outputs and names any difference."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from onnx import TensorProto, helper

from edgefleet.agent.smoke import load_golden, run_smoke_test
from edgefleet.errors import SmokeTestError
from edgefleet.runtime import Model, load
from edgefleet.server.registry.golden import make_golden
from edgefleet.testing.models import DigitsData


def f32(values: list[float]) -> NDArray[np.float32]:
    return np.asarray(values, dtype=np.float32)


def golden_file(tmp_path: Path, model_path: Path, k: int = 4, **kwargs: Any) -> Path:
    path = tmp_path / "golden.npz"
    path.write_bytes(make_golden(model_path, k, **kwargs))
    return path


def arrays_of(path: Path) -> dict[str, NDArray[Any]]:
    with np.load(path, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


def rewrite(path: Path, arrays: dict[str, Any]) -> Path:
    np.savez(path, **arrays)  # np.savez would add ".npz" to a name without it
    return path


def elementwise(tmp_path: Path, op: str, name: str) -> Path:
    """A one-node model ``y = op(x)`` over float vectors, to stand in for "another model"."""
    graph = helper.make_graph(
        [helper.make_node(op, ["x"], ["y"])],
        op.lower(),
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / name
    path.write_bytes(model.SerializeToString())
    return path


@pytest.fixture
def digits_model(digits_path: Path) -> Iterator[Model]:
    model = load(digits_path)
    yield model
    model.close()


def test_the_model_that_made_the_golden_file_passes(
    tmp_path: Path, digits_path: Path, digits_model: Model
) -> None:
    assert run_smoke_test(digits_model, golden_file(tmp_path, digits_path, 5)) == 5


def test_golden_cases_from_calibration_rows_pass(
    tmp_path: Path, digits_path: Path, digits_model: Model, digits: DigitsData
) -> None:
    path = golden_file(tmp_path, digits_path, 8, inputs={"input": digits.x_holdout})
    assert run_smoke_test(digits_model, path) == 8


def test_every_element_type_strings_and_booleans_included_passes(
    tmp_path: Path, echo_path: Path
) -> None:
    model = load(echo_path)
    assert run_smoke_test(model, golden_file(tmp_path, echo_path, 3)) == 3
    model.close()


def test_a_model_computing_something_else_fails_naming_case_output_and_difference(
    tmp_path: Path,
) -> None:
    relu = elementwise(tmp_path, "Relu", "relu.onnx")
    path = tmp_path / "golden.npz"
    rewrite(
        path,
        {
            "case0/in/x": f32([1.0, 2.0]),
            "case0/out/y": f32([1.0, 2.0]),
            "case1/in/x": f32([-3.0, 2.0]),
            "case1/out/y": f32([-3.0, 2.0]),  # what Identity gives; Relu gives 0
        },
    )
    with pytest.raises(SmokeTestError, match=r"golden case 1, output 'y': max abs difference 3 "):
        run_smoke_test(load(relu), path)
    assert run_smoke_test(load(elementwise(tmp_path, "Identity", "id.onnx")), path) == 2


def test_small_differences_pass_within_the_tolerances(
    tmp_path: Path, digits_path: Path, digits_model: Model
) -> None:
    path = golden_file(tmp_path, digits_path, 2)
    arrays = arrays_of(path)
    arrays["case1/out/probabilities"] = arrays["case1/out/probabilities"] * (1 + 1e-5)
    rewrite(path, arrays)
    assert run_smoke_test(digits_model, path) == 2
    with pytest.raises(SmokeTestError, match=r"golden case 1, output 'probabilities'"):
        run_smoke_test(digits_model, path, rtol=1e-7, atol=0.0)


def test_a_changed_output_is_refused_with_its_difference(
    tmp_path: Path, digits_path: Path, digits_model: Model
) -> None:
    path = golden_file(tmp_path, digits_path, 3)
    arrays = arrays_of(path)
    arrays["case2/out/probabilities"][0, 4] += 0.25
    rewrite(path, arrays)
    with pytest.raises(
        SmokeTestError,
        match=r"golden case 2, output 'probabilities': max abs difference 0\.25",
    ) as caught:
        run_smoke_test(digits_model, path)
    assert caught.value.code == "model.smoke_test"


def test_nan_matches_nan_but_not_a_number(tmp_path: Path) -> None:
    model = load(elementwise(tmp_path, "Identity", "id.onnx"))
    path = tmp_path / "golden.npz"
    x = f32([np.nan, 1.0, np.inf])
    rewrite(path, {"case0/in/x": x, "case0/out/y": x})
    assert run_smoke_test(model, path) == 1
    rewrite(path, {"case0/in/x": x, "case0/out/y": f32([0.0, 1.0, np.inf])})
    with pytest.raises(SmokeTestError, match=r"max abs difference 0 .*1 NaN where"):
        run_smoke_test(model, path)


def test_inputs_the_model_refuses_fail_the_test(
    tmp_path: Path, detector_path: Path, digits_model: Model
) -> None:
    path = golden_file(tmp_path, detector_path, 1)  # golden data of another model
    with pytest.raises(SmokeTestError, match=r"golden case 0: the model failed: .*'input'"):
        run_smoke_test(digits_model, path)


def test_a_missing_output_or_another_shape_is_named(
    tmp_path: Path, digits_path: Path, digits_model: Model
) -> None:
    arrays = arrays_of(golden_file(tmp_path, digits_path, 1))
    path = tmp_path / "golden.npz"
    renamed = {**arrays, "case0/out/scores": arrays["case0/out/probabilities"]}
    del renamed["case0/out/probabilities"]
    rewrite(path, renamed)
    with pytest.raises(SmokeTestError, match=r"no output 'scores' \(it returned \['probabilities'"):
        run_smoke_test(digits_model, path)
    reshaped = {**arrays, "case0/out/probabilities": arrays["case0/out/probabilities"][0]}
    rewrite(path, reshaped)
    with pytest.raises(SmokeTestError, match=r"shape \[1, 10\], expected \[10\]"):
        run_smoke_test(digits_model, path)


def test_a_changed_string_output_is_named(tmp_path: Path, echo_path: Path) -> None:
    path = golden_file(tmp_path, echo_path, 1)
    arrays = arrays_of(path)
    arrays["case0/out/y_BYTES"] = np.array(["other"])
    rewrite(path, arrays)
    model = load(echo_path)
    with pytest.raises(SmokeTestError, match=r"output 'y_BYTES': 1 of 1 values differ"):
        run_smoke_test(model, path)
    model.close()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"not a readable \.npz"),
        (b"PK\x03\x04 truncated zip", r"not a readable \.npz"),
        (b"just some text\n", r"not a readable \.npz"),
    ],
)
def test_unreadable_golden_files_are_refused(
    tmp_path: Path, digits_model: Model, content: bytes, message: str
) -> None:
    path = tmp_path / "golden.npz"
    path.write_bytes(content)
    with pytest.raises(SmokeTestError, match=message):
        run_smoke_test(digits_model, path)


def test_a_truncated_golden_file_is_refused(
    tmp_path: Path, digits_path: Path, digits_model: Model
) -> None:
    path = golden_file(tmp_path, digits_path, 4)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(SmokeTestError, match=r"golden file golden\.npz"):
        run_smoke_test(digits_model, path)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({}, "holds no cases"),
        ({"inputs": np.zeros(1)}, "has a key 'inputs'"),
        ({"case0/input/x": np.zeros(1)}, "has a key 'case0/input/x'"),
        ({"casex/in/x": np.zeros(1)}, "has a key 'casex/in/x'"),
        ({"case0/in/input": np.zeros((1, 1, 8, 8), np.float32)}, "case 0 has no outputs"),
        ({"case3/out/probabilities": np.zeros((1, 10))}, "case 3 has no inputs"),
        ({"case0/in/x": np.array([{"a": 1}], dtype=object)}, r"not a readable \.npz"),
    ],
    ids=["empty", "stray-key", "bad-side", "bad-number", "no-outputs", "no-inputs", "pickle"],
)
def test_malformed_golden_files_are_refused(
    tmp_path: Path, digits_model: Model, arrays: dict[str, Any], message: str
) -> None:
    path = rewrite(tmp_path / "golden.npz", arrays)
    with pytest.raises(SmokeTestError, match=message):
        run_smoke_test(digits_model, path)


def test_a_missing_or_single_array_golden_file_is_refused(
    tmp_path: Path, digits_model: Model
) -> None:
    with pytest.raises(SmokeTestError, match="not a readable"):
        run_smoke_test(digits_model, tmp_path / "absent.npz")
    single = tmp_path / "golden.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(SmokeTestError, match=r"single array, not an \.npz"):
        run_smoke_test(digits_model, single)


def test_negative_tolerances_are_refused(
    tmp_path: Path, digits_path: Path, digits_model: Model
) -> None:
    path = golden_file(tmp_path, digits_path, 1)
    with pytest.raises(SmokeTestError, match="tolerances must be >= 0"):
        run_smoke_test(digits_model, path, rtol=-1.0)
    with pytest.raises(SmokeTestError, match="tolerances must be >= 0"):
        run_smoke_test(digits_model, path, atol=float("nan"))


def test_cases_load_in_numeric_order(tmp_path: Path) -> None:
    path = rewrite(
        tmp_path / "golden.npz",
        {f"case{i}/{side}/x": f32([i]) for i in (10, 2, 1) for side in ("in", "out")},
    )
    cases = load_golden(path)
    assert list(cases) == [1, 2, 10]
    inputs, outputs = cases[10]
    assert inputs["x"].tolist() == outputs["x"].tolist() == [10.0]
