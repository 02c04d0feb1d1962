from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from edgefleet.errors import (
    InputDTypeError,
    InputShapeError,
    MissingInputError,
    ModelUnavailableError,
    NonFiniteInputError,
    UnexpectedInputError,
)
from edgefleet.runtime import Model, load
from edgefleet.testing.models import DigitsData


@pytest.fixture(scope="module")
def model(digits_path: Path) -> Model:
    return load(digits_path, intra_op_threads=1)


def naive(path: Path, x: NDArray[np.float32]) -> NDArray[np.float32]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out: NDArray[np.float32] = session.run(None, {"input": x})[0]
    return out


def test_matches_onnx_runtime_for_every_batch_size(
    model: Model, digits_path: Path, digits: DigitsData
) -> None:
    for n in (1, 1, 3, 1, 17, 3):  # repeated shapes take the bound fast path
        x = digits.x_holdout[:n]
        got = model.predict({"input": x})["probabilities"]
        np.testing.assert_allclose(got, naive(digits_path, x), rtol=1e-6)


def test_results_are_fresh_arrays(model: Model, one_digit: NDArray[np.float32]) -> None:
    a = model.predict({"input": one_digit})["probabilities"]
    kept = a.copy()
    b = model.predict({"input": np.zeros_like(one_digit)})["probabilities"]
    assert a is not b
    np.testing.assert_array_equal(a, kept)


def test_classifier_is_accurate_on_held_out_digits(model: Model, digits: DigitsData) -> None:
    probs = model.predict({"input": digits.x_holdout})["probabilities"]
    assert (probs.argmax(axis=1) == digits.y_holdout).mean() > 0.95


def test_telemetry_counts_calls_and_confidence(digits_path: Path, digits: DigitsData) -> None:
    model = load(digits_path)
    for i in range(10):
        model.predict({"input": digits.x_holdout[i : i + 2]})
    with pytest.raises(InputShapeError):
        model.predict({"input": digits.x_holdout[:1, :, :4]})
    snap = model.telemetry.snapshot()
    assert snap.count == 10
    assert snap.rejected == 1
    assert snap.confidence.count == 20
    assert 0.5 < snap.confidence.mean <= 1.0
    assert snap.latency.count == 10
    assert snap.latency_ms()["p50"] > 0


def test_confidence_matches_the_outputs(digits_path: Path, digits: DigitsData) -> None:
    model = load(digits_path)
    outs = [model.predict({"input": digits.x_holdout[i : i + 1]}) for i in range(200)]
    expected = np.mean([o["probabilities"].max() for o in outs])
    assert model.telemetry.snapshot().confidence.mean == pytest.approx(expected, rel=1e-5)


def test_missing_input_is_named(model: Model) -> None:
    with pytest.raises(MissingInputError, match="'input'"):
        model.predict({})


def test_unexpected_input_is_named(model: Model, one_digit: NDArray[np.float32]) -> None:
    with pytest.raises(UnexpectedInputError, match="'extra'"):
        model.predict({"input": one_digit, "extra": one_digit})


def test_wrong_dtype_names_expected_type(model: Model, one_digit: NDArray[np.float32]) -> None:
    with pytest.raises(InputDTypeError, match=r"'input'.*FP32.*float64"):
        model.predict({"input": one_digit.astype(np.float64)})


def test_non_array_input_is_refused(model: Model) -> None:
    with pytest.raises(InputDTypeError, match="list"):
        model.predict({"input": [[1.0]]})  # type: ignore[dict-item]


def test_not_a_mapping_is_refused(model: Model) -> None:
    with pytest.raises(InputDTypeError, match="mapping"):
        model.predict([1, 2])  # type: ignore[arg-type]


def test_wrong_rank(model: Model) -> None:
    with pytest.raises(InputShapeError, match=r"rank 4 \[batch, 1, 8, 8\]"):
        model.predict({"input": np.zeros((8, 8), np.float32)})


def test_wrong_fixed_dimension(model: Model) -> None:
    with pytest.raises(InputShapeError, match="axis 2 must be 8"):
        model.predict({"input": np.zeros((1, 1, 7, 8), np.float32)})


def test_symbolic_dimension_must_agree_across_inputs(echo_path: Path) -> None:
    model = load(echo_path)
    feeds = echo_feeds(3)
    feeds["x_INT8"] = np.zeros(4, np.int8)
    with pytest.raises(InputShapeError, match="dimension 'n' is 3 in input 'x_BOOL' but 4"):
        model.predict(feeds)


def test_nan_is_allowed_by_default_and_refused_by_policy(
    digits_path: Path, one_digit: NDArray[np.float32]
) -> None:
    bad = one_digit.copy()
    bad[0, 0, 3, 3] = np.nan
    load(digits_path).predict({"input": bad})
    strict = load(digits_path, nan_policy="reject")
    strict.predict({"input": one_digit})
    strict.predict({"input": one_digit})  # bound path
    for value in (np.nan, np.inf, -np.inf):
        bad[0, 0, 3, 3] = value
        with pytest.raises(NonFiniteInputError, match="'input'"):
            strict.predict({"input": bad})
    huge = np.full_like(one_digit, 3e38)  # finite, but its square overflows
    strict.predict({"input": huge})
    assert strict.telemetry.snapshot().rejected == 3


def test_closed_model_refuses_calls(digits_path: Path, one_digit: NDArray[np.float32]) -> None:
    model = load(digits_path)
    model.close()
    assert model.closed
    with pytest.raises(ModelUnavailableError, match="closed"):
        model.predict({"input": one_digit})


def echo_feeds(n: int) -> dict[str, NDArray[Any]]:
    rng = np.random.default_rng(n)
    feeds: dict[str, NDArray[Any]] = {
        "x_BOOL": rng.random(n) > 0.5,
        "x_FP16": rng.random(n).astype(np.float16),
        "x_FP32": rng.random(n).astype(np.float32),
        "x_FP64": rng.random(n),
        "x_BYTES": np.array([f"s{i}é" for i in range(n)], dtype=object),
        "fixed": np.arange(6, dtype=np.float32).reshape(2, 3),
    }
    for t in ("UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"):
        feeds[f"x_{t}"] = rng.integers(0, 100, n).astype(t.lower())
    return feeds


def test_every_element_type_round_trips(echo_path: Path) -> None:
    model = load(echo_path)
    for n in (2, 2, 0, 5):
        feeds = echo_feeds(n)
        out = model.predict(feeds)
        for name, value in feeds.items():
            result = out["fixed_out" if name == "fixed" else "y_" + name[2:]]
            assert result.shape == value.shape
            assert result.tolist() == value.tolist()


def test_unicode_strings_are_accepted_as_string_input(echo_path: Path) -> None:
    feeds = echo_feeds(2)
    feeds["x_BYTES"] = np.array(["a", "b"])  # numpy unicode dtype
    assert load(echo_path).predict(feeds)["y_BYTES"].tolist() == ["a", "b"]


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(min_value=0, max_value=9), min_size=0, max_size=5))
def test_validation_accepts_exactly_the_declared_shapes(model: Model, shape: list[int]) -> None:
    x = np.zeros(shape, dtype=np.float32)
    valid = len(shape) == 4 and shape[1:] == [1, 8, 8]
    if valid:
        assert model.predict({"input": x})["probabilities"].shape == (shape[0], 10)
    else:
        with pytest.raises(InputShapeError, match="'input'"):
            model.predict({"input": x})


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["float16", "float64", "int32", "int64", "uint8", "bool"]))
def test_validation_refuses_every_other_dtype(model: Model, dtype: str) -> None:
    with pytest.raises(InputDTypeError, match="expects FP32"):
        model.predict({"input": np.zeros((1, 1, 8, 8), dtype=dtype)})


def test_a_wrong_input_name_names_what_was_given_and_what_is_expected(
    model: Model, one_digit: NDArray[np.float32]
) -> None:
    with pytest.raises(MissingInputError) as caught:
        model.predict({"image": one_digit})
    message = str(caught.value)
    assert "has no input(s) 'image'" in message
    assert "needs 'input'" in message
    assert "expected 'input'" in message
