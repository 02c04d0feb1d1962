"""Golden inputs hold K cases of inputs and the outputs the runtime gave for them."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from edgefleet.errors import ConfigurationError, ModelLoadError
from edgefleet.runtime import load
from edgefleet.server.registry.artifacts import make_golden
from edgefleet.server.registry.golden import write_npz
from edgefleet.testing.models import ECHO_TYPES, DigitsData


def unpack(data: bytes) -> dict[str, NDArray[Any]]:
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


def test_random_cases_match_the_inputs_and_the_runtime_outputs(digits_path: Path) -> None:
    arrays = unpack(make_golden(digits_path, 3))
    assert sorted(arrays) == [
        f"case{i}/{side}/{name}"
        for i in range(3)
        for side, name in (("in", "input"), ("out", "probabilities"))
    ]
    model = load(digits_path)
    for i in range(3):
        x = arrays[f"case{i}/in/input"]
        assert x.shape == (1, 1, 8, 8)  # the dynamic batch dimension is 1
        assert x.dtype == np.float32
        assert ((x >= 0) & (x < 1)).all()
        np.testing.assert_array_equal(
            model.predict({"input": x})["probabilities"], arrays[f"case{i}/out/probabilities"]
        )
    model.close()


def test_cases_differ_and_the_seed_makes_them_reproducible(digits_path: Path) -> None:
    first = make_golden(digits_path, 2, seed=7)
    assert make_golden(digits_path, 2, seed=7) == first  # byte for byte: a stable SHA-256
    assert make_golden(digits_path, 2, seed=8) != first
    arrays = unpack(first)
    assert not np.array_equal(arrays["case0/in/input"], arrays["case1/in/input"])


def test_given_inputs_supply_the_first_k_rows(digits_path: Path, digits: DigitsData) -> None:
    arrays = unpack(make_golden(digits_path, 4, inputs={"input": digits.x_holdout}))
    for i in range(4):
        np.testing.assert_array_equal(arrays[f"case{i}/in/input"], digits.x_holdout[i : i + 1])
    model = load(digits_path)
    expected = model.predict({"input": digits.x_holdout[:4]})["probabilities"]
    model.close()
    for i in range(4):
        np.testing.assert_allclose(arrays[f"case{i}/out/probabilities"][0], expected[i], atol=1e-6)
    assert len(arrays) == 8


def test_every_element_type_round_trips_without_pickles(echo_path: Path) -> None:
    arrays = unpack(make_golden(echo_path, 2, seed=3))
    for datatype in ECHO_TYPES:
        given, returned = arrays[f"case1/in/x_{datatype}"], arrays[f"case1/out/y_{datatype}"]
        assert given.shape == (1,)
        np.testing.assert_array_equal(given, returned)
    assert arrays["case0/in/x_BYTES"].dtype.kind == "U"
    assert arrays["case0/in/x_BOOL"].dtype == np.bool_
    assert arrays["case0/in/fixed"].shape == (2, 3)


@pytest.mark.parametrize("k", [0, -1, 65, 1000])
def test_the_number_of_cases_must_be_between_1_and_64(digits_path: Path, k: int) -> None:
    with pytest.raises(ConfigurationError, match="between 1 and 64"):
        make_golden(digits_path, k)


def test_the_bounds_are_allowed(digits_path: Path) -> None:
    assert len(unpack(make_golden(digits_path, 1))) == 2
    assert len(unpack(make_golden(digits_path, 64))) == 128


@pytest.mark.parametrize("k", [True, 2.0, "3"])
def test_the_number_of_cases_must_be_an_integer(digits_path: Path, k: Any) -> None:
    with pytest.raises(ConfigurationError, match="between 1 and 64"):
        make_golden(digits_path, k)


def test_given_inputs_with_too_few_rows_are_named(digits_path: Path, digits: DigitsData) -> None:
    with pytest.raises(ConfigurationError, match=r"'input' has 3 rows; 5 golden cases"):
        make_golden(digits_path, 5, inputs={"input": digits.x_holdout[:3]})


def test_given_inputs_must_name_the_models_inputs(digits_path: Path, digits: DigitsData) -> None:
    with pytest.raises(ConfigurationError, match=r"exactly the model's inputs \['input'\]"):
        make_golden(digits_path, 2, inputs={"image": digits.x_holdout})
    with pytest.raises(ConfigurationError, match="exactly the model's inputs"):
        make_golden(digits_path, 2, inputs={"input": digits.x_holdout, "extra": digits.x_holdout})


def test_given_inputs_of_the_wrong_dtype_or_shape_are_named(
    digits_path: Path, digits: DigitsData
) -> None:
    with pytest.raises(ConfigurationError, match=r"golden case 0: .*'input'.*FP32"):
        make_golden(digits_path, 2, inputs={"input": digits.x_holdout.astype(np.float64)})
    with pytest.raises(ConfigurationError, match=r"golden case 0: .*'input'.*rank"):
        make_golden(digits_path, 2, inputs={"input": digits.x_holdout.reshape(-1, 64)})
    with pytest.raises(ConfigurationError, match="has 0 rows"):
        make_golden(digits_path, 2, inputs={"input": np.float32(1.0)})  # type: ignore[dict-item]


def test_a_model_that_cannot_load_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelLoadError):
        make_golden(bad, 2)


def test_write_npz_is_deterministic_and_stores_strings_as_unicode() -> None:
    arrays = {"case0/in/s": np.array(["a", "bc"], dtype=object), "case0/out/y": np.eye(2)}
    data = write_npz(arrays)
    assert write_npz(arrays) == data
    loaded = unpack(data)
    assert loaded["case0/in/s"].tolist() == ["a", "bc"]
    np.testing.assert_array_equal(loaded["case0/out/y"], np.eye(2))
