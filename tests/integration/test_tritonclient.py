"""The unmodified tritonclient[http] package against our server: the adoption path."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tritonclient.http as httpclient
from numpy.typing import NDArray
from tritonclient.utils import InferenceServerException

from edgefleet.testing.models import ECHO_TYPES, DigitsData


@pytest.fixture
def client(base: str) -> Iterator[httpclient.InferenceServerClient]:
    triton = httpclient.InferenceServerClient(base)
    yield triton
    triton.close()  # an unclosed client leaves its socket to the garbage collector


def digit_input(x: NDArray[np.float32], binary: bool = True) -> httpclient.InferInput:
    inp = httpclient.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    return inp


def test_health_and_server_metadata(client: httpclient.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    meta = client.get_server_metadata()
    assert meta["name"] == "edgefleet"
    assert "binary_tensor_data" in meta["extensions"]


def test_model_metadata_and_readiness(client: httpclient.InferenceServerClient) -> None:
    meta = client.get_model_metadata("digits")
    assert meta["versions"] == ["2"]
    assert meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8]}]
    assert client.get_model_metadata("digits", "2")["name"] == "digits"
    assert client.is_model_ready("digits")
    assert client.is_model_ready("digits", "2")
    assert not client.is_model_ready("digits", "9")
    assert not client.is_model_ready("unknown")


@pytest.mark.parametrize(
    ("binary_in", "binary_out"), [(True, True), (False, False), (True, False), (False, True)]
)
def test_inference_json_and_binary(
    client: httpclient.InferenceServerClient, digits: DigitsData, binary_in: bool, binary_out: bool
) -> None:
    x = digits.x_holdout[:5]
    out = httpclient.InferRequestedOutput("probabilities", binary_data=binary_out)
    result = client.infer("digits", [digit_input(x, binary_in)], outputs=[out], request_id="r1")
    probs = result.as_numpy("probabilities")
    assert probs.shape == (5, 10)
    assert (probs.argmax(1) == digits.y_holdout[:5]).all()
    assert result.get_response()["id"] == "r1"


def test_inference_with_client_defaults(
    client: httpclient.InferenceServerClient, digits: DigitsData
) -> None:
    inp = httpclient.InferInput("input", [2, 1, 8, 8], "FP32")
    inp.set_data_from_numpy(digits.x_holdout[:2])  # binary input, binary output by default
    result = client.infer("digits", [inp])
    assert result.as_numpy("probabilities").shape == (2, 10)


def test_pipeline_is_served_like_a_model(client: httpclient.InferenceServerClient) -> None:
    canvas = np.zeros((1, 1, 32, 32), np.float32)
    canvas[0, 0, 4:12, 4:12] = 1.0
    inp = httpclient.InferInput("image", [1, 1, 32, 32], "FP32")
    inp.set_data_from_numpy(canvas)
    result = client.infer("digit-reader", [inp])
    assert result.as_numpy("region_boxes").tolist() == [[4.0, 4.0, 12.0, 12.0]]
    assert client.get_model_metadata("digit-reader")["platform"] == "edgefleet_pipeline"


def echo_value(datatype: str, n: int) -> NDArray[Any]:
    if datatype == "BYTES":
        return np.array([f"v{i}-ü".encode() for i in range(n)], dtype=np.object_)
    if datatype == "BOOL":
        return np.asarray(np.arange(n) % 2 == 0)
    floats = {"FP16": "float16", "FP32": "float32", "FP64": "float64"}
    values: NDArray[Any] = (np.arange(n) * 3 + 1).astype(floats.get(datatype, datatype.lower()))
    return values


@pytest.mark.parametrize("binary", [True, False])
def test_every_datatype_round_trips(client: httpclient.InferenceServerClient, binary: bool) -> None:
    inputs, expected = [], {}
    for datatype in ECHO_TYPES:
        value = echo_value(datatype, 3)
        inp = httpclient.InferInput(f"x_{datatype}", [3], datatype)
        inp.set_data_from_numpy(value, binary_data=binary)
        inputs.append(inp)
        expected[f"y_{datatype}"] = value
    fixed = httpclient.InferInput("fixed", [2, 3], "FP32")
    fixed.set_data_from_numpy(np.ones((2, 3), np.float32), binary_data=binary)
    inputs.append(fixed)
    outputs = [httpclient.InferRequestedOutput(n, binary_data=binary) for n in expected]
    result = client.infer("echo", inputs, outputs=outputs)
    for name, value in expected.items():
        got = result.as_numpy(name)
        assert got is not None, name
        want = value.tolist()
        if name == "y_BYTES" and not binary:  # JSON carries BYTES as text
            want = [v.decode() for v in want]
        assert got.tolist() == want, name
    assert [o["name"] for o in result.get_response()["outputs"]] == list(expected)


def error_of(call: Any) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as info:
        call()
    return info.value


def test_errors_arrive_as_readable_messages(
    client: httpclient.InferenceServerClient, digits: DigitsData
) -> None:
    bad_shape = error_of(
        lambda: client.infer("digits", [digit_input(np.zeros((1, 1, 8, 4), np.float32))])
    )
    assert bad_shape.status() == "400"
    assert "axis 3 must be 8" in bad_shape.message()

    wrong_type = httpclient.InferInput("input", [1, 1, 8, 8], "FP64")
    wrong_type.set_data_from_numpy(np.zeros((1, 1, 8, 8), np.float64))
    err = error_of(lambda: client.infer("digits", [wrong_type]))
    assert err.status() == "400"
    assert "expects FP32, request says FP64" in err.message()

    nan = digits.x_holdout[:1].copy()
    nan[0, 0, 0, 0] = np.nan
    err = error_of(lambda: client.infer("digits", [digit_input(nan)]))
    assert err.status() == "400"
    assert "NaN" in err.message()

    err = error_of(lambda: client.infer("nope", [digit_input(digits.x_holdout[:1])]))
    assert err.status() == "404"
    assert "no model named 'nope'" in err.message()

    err = error_of(
        lambda: client.infer("digits", [digit_input(digits.x_holdout[:1])], model_version="5")
    )
    assert err.status() == "404"

    missing = httpclient.InferRequestedOutput("logits")
    err = error_of(
        lambda: client.infer("digits", [digit_input(digits.x_holdout[:1])], outputs=[missing])
    )
    assert "no output 'logits'" in err.message()

    # The client keeps working after errors.
    assert (
        client.infer("digits", [digit_input(digits.x_holdout[:1])]).as_numpy("probabilities")
        is not None
    )


def test_statistics_extension(client: httpclient.InferenceServerClient, digits: DigitsData) -> None:
    before = client.get_inference_statistics("digits")["model_stats"][0]["inference_stats"]
    client.infer("digits", [digit_input(digits.x_holdout[:1])])
    error_of(lambda: client.infer("digits", [digit_input(np.zeros((1, 1, 2, 2), np.float32))]))
    stats = client.get_inference_statistics("digits")["model_stats"][0]
    after = stats["inference_stats"]
    assert after["success"]["count"] == before["success"]["count"] + 1
    assert after["fail"]["count"] == before["fail"]["count"] + 1
    assert after["compute_infer"]["ns"] > before["compute_infer"]["ns"]
    assert stats["version"] == "2"
    everything = client.get_inference_statistics()
    assert {s["name"] for s in everything["model_stats"]} == {"digits", "echo", "digit-reader"}
