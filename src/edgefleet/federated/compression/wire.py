"""The wire format of encoded updates: a 32-byte header, then compressed sections.

Header (little-endian, 32 bytes)::

    offset  size  field
    0       2     magic b"EF"
    2       1     version (1)
    3       1     codec id (1 dense, 2 fp16, 3 int8, 4 top-k, 5 DGC)
    4       1     kind: 0 dense values, 1 sparse (indices + values), 2 int8 with chunk scales
    5       1     value type: 0 float32, 1 float16, 2 int8
    6       1     compressor of the compressed sections: 1 zlib
    7       1     reserved, 0
    8       8     vector size n
    16      8     count: values carried (n for dense and int8, k for sparse)
    24      4     chunk length (int8 only, else 0)
    28      4     CRC-32 of the sections' uncompressed bytes, in order

Then the sections, each one byte (0 stored, 1 compressed), its length in the payload (8 bytes),
and its bytes:

- dense: the ``n`` values, one section per byte plane;
- sparse: the ``k`` index gaps as LEB128 varints (the first index, then the difference to the
  previous one, which must be at least 1), then the ``k`` values, one section per byte plane;
- int8: the ``ceil(n / chunk)`` float32 scales, one section per byte plane, then the ``n``
  int8 values.

Splitting float values into byte planes (all low bytes, then the next, ...) puts the sign and
exponent bytes, which repeat, together, and leaves the mantissa bytes, which look random, on
their own. A section is compressed with zlib only where a trial on its first 64 KiB shows a
gain, so incompressible mantissa planes cost no compression time. At 99.9% sparsity a kept
value costs about 3 bytes: 2 of varint gap and 2 of float16, less what zlib finds.

Reading never trusts the header further than the size the caller expects: each section is
decompressed up to the length that ``size`` and ``count`` allow, so a small payload cannot
inflate into gigabytes. Anything malformed raises
:class:`~edgefleet.federated.compression.base.PayloadError` (a ``ValueError``) that says what
was wrong.

Examples
--------
>>> import numpy as np
>>> payload = encode_sparse(np.array([3, 900]), np.array([0.5, -2.0], np.float32), 1000,
...                         codec_id=TOPK)
>>> message = read(payload, 1000)
>>> message.indices.tolist(), message.values.tolist()
([3, 900], [0.5, -2.0])
>>> decode(payload, 1000)[[3, 900]].tolist()
[0.5, -2.0]
>>> try:
...     decode(payload, 999)
... except ValueError as exc:
...     print(exc)
payload is for a vector of 1000 values, expected 999
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from edgefleet.federated.compression.base import FP16_MAX, PayloadError
from edgefleet.federated.compression.varint import decode_varints, encode_varints, varint_len
from edgefleet.federated.params import Vector

__all__ = [
    "CODEC_IDS",
    "DENSE",
    "DGC",
    "FP16",
    "HEADER_SIZE",
    "INT8",
    "MAX_SIZE",
    "TOPK",
    "VERSION",
    "Header",
    "Kind",
    "Message",
    "ValueType",
    "as_sent",
    "decode",
    "encode_dense",
    "encode_int8",
    "encode_sparse",
    "read",
    "read_header",
]

MAGIC = b"EF"
VERSION = 1
DENSE, FP16, INT8, TOPK, DGC = 1, 2, 3, 4, 5
CODEC_IDS = {DENSE: "dense", FP16: "fp16", INT8: "int8", TOPK: "topk", DGC: "dgc"}
"""Codec ids this version knows, by the name their specs start with."""

MAX_SIZE = 2**40
"""Largest vector size the format accepts (a trillion parameters); gaps fit 6-byte varints."""

_HEADER = struct.Struct("<2sBBBBBBQQII")
HEADER_SIZE = _HEADER.size
_SECTION = struct.Struct("<BQ")
_STORED, _COMPRESSED = 0, 1
_ZLIB = 1
_TRIAL = 1 << 16
"""Bytes of a section that zlib tries first; no gain on them means the section is stored."""
_TRIAL_GAIN = 0.97
_FLOAT32_MAX = float(np.finfo(np.float32).max)

Indices = npt.NDArray[np.int64]
FloatValues = Literal["fp32", "fp16"]


class Kind(IntEnum):
    """How the body is laid out."""

    DENSE = 0
    SPARSE = 1
    INT8 = 2


class ValueType(IntEnum):
    """The type of the values in the body."""

    FP32 = 0
    FP16 = 1
    INT8 = 2


_DTYPES: dict[ValueType, np.dtype[Any]] = {
    ValueType.FP32: np.dtype("<f4"),
    ValueType.FP16: np.dtype("<f2"),
}


@dataclass(frozen=True)
class Header:
    """The fixed-size header of a payload."""

    codec_id: int
    kind: Kind
    value_type: ValueType
    size: int
    count: int
    chunk: int
    crc: int


@dataclass(frozen=True)
class Message:
    """A payload taken apart: indices (sparse only), values, and scales (int8 only)."""

    header: Header
    values: npt.NDArray[np.generic]
    indices: Indices | None = None
    scales: npt.NDArray[np.float32] | None = None

    def to_vector(self) -> Vector:
        """The dense float32 vector the payload stands for."""
        size = self.header.size
        if self.header.kind is Kind.SPARSE:
            assert self.indices is not None
            out = np.zeros(size, np.float32)
            out[self.indices] = self.values.astype(np.float32)
            return out
        if self.header.kind is Kind.INT8:
            assert self.scales is not None
            scales = np.repeat(self.scales, self.header.chunk)[:size]
            dense: Vector = self.values.astype(np.float32) * scales
            return dense
        return self.values.astype(np.float32)


# -- encoding ------------------------------------------------------------------------------------


def _float_type(values: Vector, value_type: FloatValues) -> ValueType:
    if value_type == "fp16" and (values.size == 0 or float(np.max(np.abs(values))) <= FP16_MAX):
        return ValueType.FP16
    return ValueType.FP32


def as_sent(values: Vector, value_type: FloatValues) -> Vector:
    """``values`` as the receiver will decode them from a payload made with ``value_type``.

    >>> as_sent(np.array([0.1, 1e5], np.float32), "fp16").tolist()  # 1e5 forces float32
    [0.10000000149011612, 100000.0]
    >>> as_sent(np.array([0.1], np.float32), "fp16").tolist()
    [0.0999755859375]
    """
    vtype = _float_type(values, value_type)
    sent: Vector = values.astype(_DTYPES[vtype]).astype(np.float32)
    return sent


def _planes(values: npt.NDArray[np.generic]) -> list[bytes]:
    """Values as byte planes: the first byte of every value, then the second, ..."""
    raw = np.ascontiguousarray(values).view(np.uint8).reshape(-1, values.dtype.itemsize)
    return [raw[:, i].tobytes() for i in range(values.dtype.itemsize)]


def _unplanes(planes: list[bytes], dtype: np.dtype[Any], count: int) -> npt.NDArray[Any]:
    raw = np.empty((count, dtype.itemsize), np.uint8)
    for i, plane in enumerate(planes):
        raw[:, i] = np.frombuffer(plane, np.uint8)
    return raw.view(dtype).ravel()


def _section(raw: bytes, level: int) -> bytes:
    if level and raw:
        trial = raw[:_TRIAL]
        if len(raw) <= _TRIAL or len(zlib.compress(trial, level)) < _TRIAL_GAIN * len(trial):
            packed = zlib.compress(raw, level)
            if len(packed) < len(raw):
                return _SECTION.pack(_COMPRESSED, len(packed)) + packed
    return _SECTION.pack(_STORED, len(raw)) + raw


def _pack(
    codec_id: int,
    kind: Kind,
    value_type: ValueType,
    size: int,
    count: int,
    chunk: int,
    sections: list[bytes],
    level: int,
) -> bytes:
    if codec_id not in CODEC_IDS:
        raise ValueError(f"unknown codec id {codec_id}")
    if not 0 <= level <= 9:
        raise ValueError(f"zlib level must be 0..9, got {level}")
    if size > MAX_SIZE:
        raise ValueError(f"vectors of {size} values exceed the wire limit of {MAX_SIZE}")
    crc = 0
    for raw in sections:
        crc = zlib.crc32(raw, crc)
    header = _HEADER.pack(
        MAGIC, VERSION, codec_id, kind, value_type, _ZLIB, 0, size, count, chunk, crc
    )
    return b"".join([header, *(_section(raw, level) for raw in sections)])


def encode_dense(
    values: Vector, *, codec_id: int = DENSE, value_type: FloatValues = "fp32", level: int = 6
) -> bytes:
    """A dense payload; ``"fp16"`` falls back to float32 when a value exceeds float16's range."""
    vtype = _float_type(values, value_type)
    planes = _planes(values.astype(_DTYPES[vtype]))
    return _pack(codec_id, Kind.DENSE, vtype, values.size, values.size, 0, planes, level)


def encode_sparse(
    indices: npt.ArrayLike,
    values: Vector,
    size: int,
    *,
    codec_id: int,
    value_type: FloatValues = "fp16",
    level: int = 6,
) -> bytes:
    """A sparse payload of strictly increasing ``indices`` below ``size`` and their values."""
    idx = np.asarray(indices, np.int64).ravel()
    if idx.size != values.size:
        raise ValueError(f"{idx.size} indices for {values.size} values")
    if idx.size and (idx[0] < 0 or idx[-1] >= size or np.any(np.diff(idx) <= 0)):
        raise ValueError(f"indices must be strictly increasing within [0, {size})")
    vtype = _float_type(values, value_type)
    gaps = np.diff(idx, prepend=0) if idx.size else idx
    sections = [encode_varints(gaps), *_planes(values.astype(_DTYPES[vtype]))]
    return _pack(codec_id, Kind.SPARSE, vtype, size, idx.size, 0, sections, level)


def encode_int8(
    q: npt.NDArray[np.int8],
    scales: npt.NDArray[np.float32],
    chunk: int,
    *,
    codec_id: int = INT8,
    level: int = 6,
) -> bytes:
    """An int8 payload: value ``i`` is ``q[i] * scales[i // chunk]``."""
    if chunk < 1 or scales.size != -(-q.size // chunk):
        raise ValueError(f"{scales.size} scales do not fit {q.size} values in chunks of {chunk}")
    sections = [*_planes(scales.astype("<f4")), q.astype(np.int8).tobytes()]
    return _pack(codec_id, Kind.INT8, ValueType.INT8, q.size, q.size, chunk, sections, level)


# -- decoding ------------------------------------------------------------------------------------


def read_header(payload: bytes) -> Header:
    """The header of ``payload``, checked field by field."""
    if len(payload) < HEADER_SIZE:
        raise PayloadError(f"payload of {len(payload)} bytes is shorter than its header")
    magic, version, codec_id, kind, vtype, compressor, reserved, size, count, chunk, crc = (
        _HEADER.unpack_from(payload)
    )
    if magic != MAGIC:
        raise PayloadError(f"payload does not start with {MAGIC!r} (got {bytes(magic)!r})")
    if version != VERSION:
        raise PayloadError(f"unsupported wire version {version} (this build reads {VERSION})")
    if codec_id not in CODEC_IDS:
        raise PayloadError(f"unknown codec id {codec_id}")
    if kind not in Kind.__members__.values():
        raise PayloadError(f"unknown payload kind {kind}")
    if vtype not in ValueType.__members__.values():
        raise PayloadError(f"unknown value type {vtype}")
    if compressor != _ZLIB or reserved:
        raise PayloadError(f"unknown compressor {compressor} or nonzero reserved byte")
    if size > MAX_SIZE:
        raise PayloadError(f"declared size {size} exceeds the wire limit of {MAX_SIZE}")
    return Header(codec_id, Kind(kind), ValueType(vtype), size, count, chunk, crc)


def _section_limits(header: Header) -> list[tuple[int, int]]:
    """Smallest and largest uncompressed length of each section the header implies."""
    h = header
    if h.kind is Kind.SPARSE:
        if h.value_type is ValueType.INT8 or h.chunk:
            raise PayloadError("sparse payload with int8 values or a chunk length")
        if h.count > h.size:
            raise PayloadError(f"declared count {h.count} exceeds the vector size {h.size}")
        gaps = (h.count, h.count * varint_len(max(h.size - 1, 0)))
        return [gaps] + [(h.count, h.count)] * _DTYPES[h.value_type].itemsize
    if h.count != h.size:
        raise PayloadError(f"dense payload declares {h.count} values for a size of {h.size}")
    if h.kind is Kind.INT8:
        if h.value_type is not ValueType.INT8 or h.chunk < 1:
            raise PayloadError(f"int8 payload with value type {h.value_type} chunk {h.chunk}")
        n_scales = -(-h.size // h.chunk)
        return [(n_scales, n_scales)] * 4 + [(h.size, h.size)]
    if h.value_type is ValueType.INT8 or h.chunk:
        raise PayloadError("dense payload with int8 values or a chunk length")
    return [(h.size, h.size)] * _DTYPES[h.value_type].itemsize


def _sections(payload: bytes, header: Header) -> list[bytes]:
    view = memoryview(payload)
    position = HEADER_SIZE
    sections: list[bytes] = []
    crc = 0
    for number, (least, most) in enumerate(_section_limits(header)):
        if len(view) - position < _SECTION.size:
            raise PayloadError(f"payload is truncated before section {number}")
        method, length = _SECTION.unpack_from(view, position)
        position += _SECTION.size
        if length > len(view) - position:
            raise PayloadError(
                f"section {number} declares {length} bytes, {len(view) - position} are left"
            )
        data = view[position : position + length]
        position += length
        if method == _COMPRESSED:
            raw = _inflate(data, most, number)
        elif method == _STORED:
            raw = bytes(data)
        else:
            raise PayloadError(f"section {number} has unknown method {method}")
        if not least <= len(raw) <= most:
            expected = f"{least}" if least == most else f"{least}..{most}"
            raise PayloadError(
                f"section {number} is {len(raw)} bytes, its header implies {expected}"
            )
        crc = zlib.crc32(raw, crc)
        sections.append(raw)
    if position != len(view):
        raise PayloadError(f"{len(view) - position} bytes of garbage after the last section")
    if crc != header.crc:
        raise PayloadError("payload does not match its CRC-32")
    return sections


def _inflate(data: memoryview, most: int, number: int) -> bytes:
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(data, most)
    except zlib.error as exc:
        raise PayloadError(f"section {number} is corrupt: {exc}") from None
    if inflater.unconsumed_tail:
        raise PayloadError(f"section {number} inflates past the {most} bytes its header allows")
    if not inflater.eof:
        raise PayloadError(f"section {number} is truncated")
    if inflater.unused_data:
        raise PayloadError(f"section {number} has garbage after its compressed data")
    return raw


def _finite(values: npt.NDArray[Any], what: str) -> None:
    finite = np.isfinite(values)
    if not finite.all():
        at = int(np.argmin(finite))
        raise PayloadError(f"{what} {at} is {values[at]!r}; payloads carry finite values only")


def read(payload: bytes, size: int, codec_id: int | None = None) -> Message:
    """Take ``payload`` apart, checking it is a well-formed update of ``size`` values.

    With ``codec_id``, the payload must also have been made by that codec.
    """
    header = read_header(payload)
    if codec_id is not None and header.codec_id != codec_id:
        raise PayloadError(
            f"payload was made by codec {CODEC_IDS[header.codec_id]!r}, "
            f"expected {CODEC_IDS.get(codec_id, codec_id)!r}"
        )
    if header.size != size:
        raise PayloadError(f"payload is for a vector of {header.size} values, expected {size}")
    sections = _sections(payload, header)
    if header.kind is Kind.INT8:
        n_scales = -(-header.size // header.chunk)
        scales = _unplanes(sections[:4], np.dtype("<f4"), n_scales).astype(np.float32)
        _finite(scales, "scale")
        if np.any(scales < 0) or np.any(scales.astype(np.float64) * 127.0 > _FLOAT32_MAX):
            raise PayloadError("int8 payload has a negative scale or one that overflows float32")
        return Message(header, np.frombuffer(sections[4], np.int8), scales=scales)
    dtype = _DTYPES[header.value_type]
    values = _unplanes(sections[-dtype.itemsize :], dtype, header.count)
    _finite(values, "value")
    if header.kind is Kind.DENSE:
        return Message(header, values)
    gaps = decode_varints(sections[0], header.count, varint_len(max(size - 1, 0)))
    if header.count > 1 and not np.all(gaps[1:] >= 1):
        at = int(np.argmin(gaps[1:] >= 1)) + 1
        raise PayloadError(f"indices are not strictly increasing (index {at} repeats the last)")
    indices = np.cumsum(gaps, dtype=np.uint64)
    if header.count and not np.all(indices < np.uint64(size)):
        at = int(np.argmin(indices < np.uint64(size)))
        raise PayloadError(f"index {at} points past the end of a vector of {size} values")
    return Message(header, values, indices=indices.astype(np.int64))


def decode(payload: bytes, size: int, codec_id: int | None = None) -> Vector:
    """The float32 vector of ``size`` values that ``payload`` stands for."""
    return read(payload, size, codec_id).to_vector()
