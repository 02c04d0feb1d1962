from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray

from edgefleet.errors import ProtocolError
from edgefleet.runtime.dtypes import from_numpy
from edgefleet.runtime.oip.client import encode_request
from edgefleet.runtime.oip.codec import decode_request, decode_response_outputs, encode_response

NUMERIC = [
    np.bool_,
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.float16,
    np.float32,
    np.float64,
]

arrays = st.sampled_from(NUMERIC).flatmap(
    lambda dtype: hnp.arrays(
        dtype,
        hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
        elements=hnp.from_dtype(np.dtype(dtype), allow_nan=False, allow_infinity=False),
    )
)


def header_length(headers: dict[str, str]) -> int | None:
    raw = headers.get("Inference-Header-Content-Length")
    return None if raw is None else int(raw)


@given(arrays, st.booleans())
def test_requests_round_trip_in_json_and_binary(array: NDArray[Any], binary: bool) -> None:
    body, headers = encode_request({"x": array}, binary=binary)
    decoded = decode_request(body, header_length(headers))
    got = decoded.inputs["x"]
    assert got.dtype == array.dtype
    assert got.shape == array.shape
    np.testing.assert_array_equal(got, array)
    assert decoded.binary_output is binary


@given(arrays, st.booleans())
def test_responses_round_trip(array: NDArray[Any], binary: bool) -> None:
    body, length = encode_response("m", "1", "id", [("y", from_numpy(array.dtype), array, binary)])
    got = decode_response_outputs(body, length)["y"]
    np.testing.assert_array_equal(got, array)
    assert got.shape == array.shape


@given(st.lists(st.text(max_size=5), max_size=5), st.booleans())
def test_strings_round_trip(values: list[str], binary: bool) -> None:
    array = np.array(values, dtype=object)
    body, headers = encode_request({"s": array}, binary=binary)
    assert decode_request(body, header_length(headers)).inputs["s"].tolist() == values


@pytest.mark.parametrize(
    ("body", "length", "message"),
    [
        (
            b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [1, 2]}]}',
            999,
            "body has",
        ),
        (
            b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]},'
            b' {"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]}',
            None,
            "twice",
        ),
        (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1]}]}', None, "neither"),
        (
            b'{"inputs": [{"name": "b", "datatype": "BOOL", "shape": [1], "data": [3]}]}',
            None,
            "true or false",
        ),
        (
            b'{"inputs": [{"name": "s", "datatype": "BYTES", "shape": [1], "data": [3]}]}',
            None,
            "must be strings",
        ),
        (
            b'{"inputs": [{"name": "x", "datatype": "UINT8", "shape": [1], "data": [300]}]}',
            None,
            "not UINT8",
        ),
        (
            b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}],'
            b' "outputs": [{"name": "y", "parameters": {"classification": 2}}]}',
            None,
            "classification",
        ),
    ],
)
def test_malformed_requests_are_named(body: bytes, length: int | None, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        decode_request(body, length)


def test_binary_bool_bytes_must_be_0_or_1() -> None:
    header = (
        b'{"inputs": [{"name": "b", "datatype": "BOOL", "shape": [2],'
        b' "parameters": {"binary_data_size": 2}}]}'
    )
    with pytest.raises(ProtocolError, match="0 or 1"):
        decode_request(header + b"\x00\x07", len(header))


def test_non_utf8_string_bytes_are_refused() -> None:
    header = (
        b'{"inputs": [{"name": "s", "datatype": "BYTES", "shape": [1],'
        b' "parameters": {"binary_data_size": 6}}]}'
    )
    with pytest.raises(ProtocolError, match="UTF-8"):
        decode_request(header + b"\x02\x00\x00\x00\xff\xfe", len(header))
