"""Open Inference Protocol (KServe V2) REST tensors: JSON and the binary data extension.

Requests: a JSON header, optionally followed by the raw bytes of inputs that carry
``parameters.binary_data_size`` (in input order); ``Inference-Header-Content-Length`` gives the
header length. Responses mirror it for outputs asked for in binary. Little-endian, row-major;
BOOL is one byte per element; BYTES elements are a 4-byte little-endian length, then the bytes.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edgefleet.errors import EdgefleetError, ProtocolError
from edgefleet.runtime.dtypes import ElementType, from_datatype
from edgefleet.runtime.oip.bounded_json import loads_bounded
from edgefleet.runtime.spec import MAX_RANK

__all__ = [
    "InferRequest",
    "RequestedOutput",
    "decode_request",
    "decode_response_outputs",
    "encode_response",
    "to_binary",
]

_LENGTH = struct.Struct("<I")


@dataclass
class RequestedOutput:
    """An output the client asked for, and whether it wants it as binary data."""

    name: str
    binary: bool | None = None


@dataclass
class InferRequest:
    """A decoded inference request."""

    id: str | None
    inputs: dict[str, NDArray[Any]]
    datatypes: dict[str, str]
    outputs: list[RequestedOutput] | None = None
    binary_output: bool = False
    parameters: dict[str, Any] = field(default_factory=dict)


def decode_request(body: bytes, header_length: int | None) -> InferRequest:
    """Decode an inference request body; raise :class:`ProtocolError` naming the problem."""
    tail = memoryview(b"")
    if header_length is None:
        header_bytes = body
    else:
        if header_length < 0 or header_length > len(body):
            raise ProtocolError(
                f"Inference-Header-Content-Length is {header_length} but the body has "
                f"{len(body)} bytes"
            )
        header_bytes, tail = body[:header_length], memoryview(body)[header_length:]
    header = loads_bounded(header_bytes, what="request body")
    if not isinstance(header, dict):
        raise ProtocolError("request body must be a JSON object")
    raw_inputs = header.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise ProtocolError("request must have a non-empty 'inputs' list")
    offset = 0
    inputs: dict[str, NDArray[Any]] = {}
    datatypes: dict[str, str] = {}
    for position, item in enumerate(raw_inputs):
        name, element, shape, params = _tensor_header(item, f"inputs[{position}]")
        if name in inputs:
            raise ProtocolError(f"input {name!r} is given twice")
        datatypes[name] = element.datatype
        size = params.get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise ProtocolError(
                    f"input {name!r}: binary_data_size must be a non-negative integer"
                )
            if offset + size > len(tail):
                raise ProtocolError(
                    f"input {name!r} declares {size} bytes of binary data but only "
                    f"{len(tail) - offset} bytes follow the JSON header"
                )
            inputs[name] = _from_binary(name, element, shape, tail[offset : offset + size])
            offset += size
        else:
            if "data" not in item:
                raise ProtocolError(f"input {name!r} has neither 'data' nor binary_data_size")
            inputs[name] = _from_json(name, element, shape, item["data"])
    if offset != len(tail):
        raise ProtocolError(
            f"{len(tail) - offset} bytes after the JSON header are not claimed by any input"
        )
    parameters = header.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ProtocolError("'parameters' must be a JSON object")
    outputs = None
    if header.get("outputs") is not None:
        if not isinstance(header["outputs"], list):
            raise ProtocolError("'outputs' must be a list")
        outputs = []
        for i, out in enumerate(header["outputs"]):
            if not isinstance(out, dict) or not isinstance(out.get("name"), str):
                raise ProtocolError(f"outputs[{i}] must be an object with a 'name'")
            out_params = out.get("parameters") or {}
            if not isinstance(out_params, dict):
                raise ProtocolError(f"outputs[{i}].parameters must be a JSON object")
            if out_params.get("classification"):
                raise ProtocolError("the classification extension is not supported")
            binary = out_params.get("binary_data")
            outputs.append(RequestedOutput(out["name"], None if binary is None else bool(binary)))
    request_id = header.get("id")
    return InferRequest(
        id=None if request_id is None else str(request_id),
        inputs=inputs,
        datatypes=datatypes,
        outputs=outputs,
        binary_output=bool(parameters.get("binary_data_output", False)),
        parameters=parameters,
    )


def _tensor_header(
    item: Any, where: str
) -> tuple[str, ElementType, tuple[int, ...], dict[str, Any]]:
    if not isinstance(item, dict):
        raise ProtocolError(f"{where} must be a JSON object")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise ProtocolError(f"{where} needs a 'name' string")
    datatype = item.get("datatype")
    if not isinstance(datatype, str):
        raise ProtocolError(f"input {name!r} needs a 'datatype' string")
    try:
        element = from_datatype(datatype)
    except EdgefleetError as exc:
        raise ProtocolError(f"input {name!r}: {exc}") from None
    shape = item.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise ProtocolError(f"input {name!r}: 'shape' must be a list of non-negative integers")
    if len(shape) > MAX_RANK:
        raise ProtocolError(
            f"input {name!r}: shape has rank {len(shape)}; at most {MAX_RANK} dimensions are "
            "supported"
        )
    params = item.get("parameters") or {}
    if not isinstance(params, dict):
        raise ProtocolError(f"input {name!r}: 'parameters' must be a JSON object")
    return name, element, tuple(shape), params


def _from_json(name: str, element: ElementType, shape: tuple[int, ...], data: Any) -> NDArray[Any]:
    count = math.prod(shape)
    if element.is_string:
        flat = _flatten(data)
        values = []
        for v in flat:
            if not isinstance(v, str):
                raise ProtocolError(f"input {name!r}: BYTES data must be strings")
            values.append(v)
        arr = np.array(values, dtype=object)
    else:
        try:
            arr = np.asarray(data, dtype=element.numpy if element.datatype != "BOOL" else None)
        except (ValueError, TypeError, OverflowError) as exc:
            if "inhomogeneous" in str(exc):
                raise ProtocolError(
                    f"input {name!r}: data is ragged (nested lists of different lengths)"
                ) from None
            raise ProtocolError(f"input {name!r}: data is not {element.datatype}: {exc}") from None
        if element.datatype == "BOOL":
            if arr.size and arr.dtype != np.bool_:
                raise ProtocolError(f"input {name!r}: BOOL data must be true or false")
            arr = arr.astype(np.bool_)
        if arr.dtype == object:
            raise ProtocolError(f"input {name!r}: data is ragged or not numeric")
    if arr.size != count:
        raise ProtocolError(
            f"input {name!r}: shape {list(shape)} needs {count} elements, data has {arr.size}"
        )
    return arr.reshape(shape)


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    out: list[Any] = []
    for item in data:
        out.extend(_flatten(item) if isinstance(item, list) else [item])
    return out


def _from_binary(
    name: str, element: ElementType, shape: tuple[int, ...], raw: memoryview
) -> NDArray[Any]:
    count = math.prod(shape)
    if element.is_string:
        values = []
        pos = 0
        data = bytes(raw)
        while pos < len(data):
            if pos + 4 > len(data):
                raise ProtocolError(f"input {name!r}: BYTES element length is cut short")
            (length,) = _LENGTH.unpack_from(data, pos)
            pos += 4
            if pos + length > len(data):
                raise ProtocolError(f"input {name!r}: BYTES element is cut short")
            try:
                values.append(data[pos : pos + length].decode("utf-8"))
            except UnicodeDecodeError:
                raise ProtocolError(
                    f"input {name!r}: BYTES element is not UTF-8 text, which string inputs need"
                ) from None
            pos += length
        if len(values) != count:
            raise ProtocolError(
                f"input {name!r}: shape {list(shape)} needs {count} elements, binary data has "
                f"{len(values)}"
            )
        return np.array(values, dtype=object).reshape(shape)
    dtype = element.numpy.newbyteorder("<")
    expected = count * dtype.itemsize
    if len(raw) != expected:
        raise ProtocolError(
            f"input {name!r}: shape {list(shape)} of {element.datatype} needs {expected} bytes, "
            f"binary_data_size is {len(raw)}"
        )
    arr = np.frombuffer(raw, dtype=dtype).reshape(shape)
    if element.datatype == "BOOL" and arr.size and arr.view(np.uint8).max() > 1:
        raise ProtocolError(f"input {name!r}: BOOL bytes must be 0 or 1")
    return arr.astype(element.numpy, copy=False)


def encode_response(
    model: str,
    version: str,
    request_id: str | None,
    outputs: list[tuple[str, ElementType, NDArray[Any], bool]],
) -> tuple[bytes, int | None]:
    """Encode a response; return the body and the JSON header length (None if all JSON).

    ``outputs`` holds (name, element type, array, as_binary) in response order.
    """
    items = []
    blobs = []
    for name, element, arr, binary in outputs:
        entry, blob = encode_tensor(name, element, arr, binary=binary)
        items.append(entry)
        if blob is not None:
            blobs.append(blob)
    response: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": items}
    if request_id is not None:
        response["id"] = request_id
    header = json.dumps(response, separators=(",", ":")).encode()
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)


def encode_tensor(
    name: str, element: ElementType, arr: NDArray[Any], *, binary: bool
) -> tuple[dict[str, Any], bytes | None]:
    """One tensor's JSON entry, and its raw bytes when it travels as binary data.

    Requests and responses describe tensors the same way, so both encoders use this.
    """
    entry: dict[str, Any] = {"name": name, "datatype": element.datatype, "shape": list(arr.shape)}
    if binary:
        blob = to_binary(element, arr)
        entry["parameters"] = {"binary_data_size": len(blob)}
        return entry, blob
    if element.is_string:
        entry["data"] = [_text(v) for v in arr.ravel().tolist()]
    else:
        entry["data"] = arr.ravel().tolist()
    return entry, None


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def to_binary(element: ElementType, arr: NDArray[Any]) -> bytes:
    """Raw little-endian bytes of a tensor (BYTES: 4-byte length prefixes)."""
    if element.is_string:
        parts = []
        for v in arr.ravel().tolist():
            raw = v if isinstance(v, bytes) else str(v).encode("utf-8")
            parts.append(_LENGTH.pack(len(raw)))
            parts.append(raw)
        return b"".join(parts)
    return np.ascontiguousarray(arr, dtype=element.numpy.newbyteorder("<")).tobytes()


def decode_response_outputs(body: bytes, header_length: int | None) -> dict[str, NDArray[Any]]:
    """Decode the outputs of an inference response (JSON or binary) into arrays."""
    header_bytes = body if header_length is None else body[:header_length]
    tail = memoryview(body)[len(header_bytes) :]
    try:
        header = loads_bounded(header_bytes, what="response")
        outputs = header["outputs"]
    except (KeyError, TypeError) as exc:
        raise ProtocolError(f"response is not an inference response: {exc}") from None
    result: dict[str, NDArray[Any]] = {}
    offset = 0
    for position, item in enumerate(outputs):
        name, element, shape, params = _tensor_header(item, f"outputs[{position}]")
        size = params.get("binary_data_size")
        if size is None:
            result[name] = _from_json(name, element, shape, item.get("data", []))
        else:
            result[name] = _from_binary(name, element, shape, tail[offset : offset + int(size)])
            offset += int(size)
    return result
