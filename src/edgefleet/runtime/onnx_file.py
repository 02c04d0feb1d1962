"""The few facts about an ONNX file that ONNX Runtime does not expose, without the ``onnx`` package.

A session reports a model's tensors, metadata and providers, but not the opset the file imports
nor which operator produces each output (how :func:`~edgefleet.runtime.load` recognises a
softmax classifier). Both sit near the top of the file's protobuf encoding, so they are read
here from the wire format directly: tag-length-value records, of which only ``ModelProto``'s
``opset_import`` and ``graph``, ``GraphProto``'s ``node`` and ``output`` and ``NodeProto``'s
``output``, ``op_type`` and ``domain`` are decoded. Everything else, weights included, is
skipped by its length, on a memory map: nothing is copied. Whether the model is valid is still
ONNX Runtime's decision when it loads the file.

The device install does not carry the ``onnx`` package (31 MB and most of a second to import);
the control plane, which does, checks uploads with it.

Examples
--------
>>> facts = read_onnx_bytes(identity_model(17))
>>> facts.opset, facts.producers, facts.outputs
(17, {'y': 'Identity'}, 1)
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["OnnxFacts", "identity_model", "read_onnx_bytes", "read_onnx_file"]

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_Buffer = bytes | mmap.mmap


@dataclass(frozen=True)
class OnnxFacts:
    """What :func:`read_onnx_file` found.

    Attributes
    ----------
    opset
        The default-domain (``ai.onnx``) opset the model imports (0: none).
    producers
        Each node output's producing operator (default domain only), e.g. ``{"probs": "Softmax"}``.
    outputs
        Number of graph outputs.
    nodes
        Number of graph nodes.
    """

    opset: int
    producers: dict[str, str]
    outputs: int
    nodes: int


def _varint(buf: _Buffer, i: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= end or shift > 63:
            raise ValueError("truncated or overlong varint")
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i
        shift += 7


def _fields(buf: _Buffer, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """Yield ``(field, a, b)``: a varint's value in ``a``, or a length-delimited ``[a, b)``."""
    i = start
    while i < end:
        key, i = _varint(buf, i, end)
        field, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, i = _varint(buf, i, end)
            yield field, value, 0
        elif wire == _LEN:
            length, i = _varint(buf, i, end)
            if i + length > end:
                raise ValueError(f"field {field} runs past the end of its message")
            yield field, i, i + length
            i += length
        elif wire in (_I64, _I32):
            i += 8 if wire == _I64 else 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} (field {field})")
    if i != end:
        raise ValueError("truncated message")


def _text(buf: _Buffer, a: int, b: int) -> str:
    return bytes(buf[a:b]).decode("utf-8", errors="replace")


def read_onnx_bytes(buf: _Buffer) -> OnnxFacts:
    """:func:`read_onnx_file` on an encoded model in memory.

    Raises
    ------
    ValueError
        The bytes are not a protobuf message, or have no graph.
    """
    end = len(buf)
    opset = 0
    graph: tuple[int, int] | None = None
    for field, a, b in _fields(buf, 0, end):
        if field == 8 and b:  # opset_import: OperatorSetIdProto {domain = 1, version = 2}
            domain, version = "", 0
            for f, x, y in _fields(buf, a, b):
                if f == 1 and y:
                    domain = _text(buf, x, y)
                elif f == 2 and not y:
                    version = x
            if domain in ("", "ai.onnx"):
                opset = max(opset, version)
        elif field == 7 and b:
            graph = (a, b)
    if graph is None:
        raise ValueError("it has no graph")
    producers: dict[str, str] = {}
    outputs = nodes = 0
    for field, a, b in _fields(buf, *graph):
        if field == 12 and b:  # GraphProto.output
            outputs += 1
        elif field == 1 and b:  # GraphProto.node: {output = 2, op_type = 4, domain = 7}
            nodes += 1
            names: list[str] = []
            op_type = domain = ""
            for f, x, y in _fields(buf, a, b):
                if f == 2 and y:
                    names.append(_text(buf, x, y))
                elif f == 4 and y:
                    op_type = _text(buf, x, y)
                elif f == 7 and y:
                    domain = _text(buf, x, y)
            if domain in ("", "ai.onnx"):
                producers.update(dict.fromkeys(names, op_type))
    if not nodes and not outputs:
        raise ValueError("it has no graph")
    return OnnxFacts(opset, producers, outputs, nodes)


def read_onnx_file(path: Path) -> OnnxFacts:
    """Read the opset and each output's producing operator from an ONNX file.

    Raises
    ------
    ValueError
        The file is not a protobuf message, or has no graph.
    OSError
        It cannot be read.
    """
    with path.open("rb") as f:
        if path.stat().st_size == 0:
            raise ValueError("the file is empty")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return read_onnx_bytes(mapped)


def _tag(field: int, payload: bytes) -> bytes:
    return _encode_varint(field << 3 | _LEN) + _encode_varint(len(payload)) + payload


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def identity_model(opset: int) -> bytes:
    """An encoded one-node model ``y = Identity(x)`` (float[1]) that imports ``opset``.

    Used to ask ONNX Runtime which opsets it accepts.

    >>> list(identity_model(21)[:2])  # field 1 (ir_version) = 8
    [8, 8]
    """
    dim = _tag(1, _encode_varint(1 << 3) + _encode_varint(1))  # Dimension {dim_value = 1}
    tensor = _encode_varint(1 << 3) + _encode_varint(1) + _tag(2, dim)  # FLOAT, shape [1]
    value_type = _tag(2, _tag(1, tensor))  # ValueInfoProto.type = TypeProto {tensor_type}

    def value(name: bytes) -> bytes:
        return _tag(1, name) + value_type

    node = _tag(1, b"x") + _tag(2, b"y") + _tag(4, b"Identity")
    graph = _tag(1, node) + _tag(2, b"probe") + _tag(11, value(b"x")) + _tag(12, value(b"y"))
    opset_id = _tag(1, b"") + _encode_varint(2 << 3) + _encode_varint(opset)
    return _encode_varint(1 << 3) + _encode_varint(8) + _tag(7, graph) + _tag(8, opset_id)
