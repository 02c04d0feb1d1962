"""Per-device codec state as bytes: a round counter and float32 vectors, with a CRC.

Layout (little-endian): magic ``b"EFS"``, version (1 byte), codec id (1), vector count (1),
reserved (1), vector size (8), round (8), then each vector as ``size`` float32 values, then a
CRC-32 of everything before it. A size of 0 means "no update seen yet".
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from edgefleet.federated.compression.base import PayloadError
from edgefleet.federated.compression.wire import CODEC_IDS
from edgefleet.federated.params import Vector

__all__ = ["pack_state", "unpack_state"]

_MAGIC = b"EFS"
_VERSION = 1
_HEADER = struct.Struct("<3sBBBBQQ")


def pack_state(codec_id: int, round_: int, vectors: list[Vector]) -> bytes:
    """Bytes holding ``round_`` and ``vectors`` (all the same size; empty list when fresh)."""
    size = vectors[0].size if vectors else 0
    if size == 0:
        vectors = []
    parts = [_HEADER.pack(_MAGIC, _VERSION, codec_id, len(vectors), 0, size, round_)]
    parts.extend(v.astype("<f4", copy=False).tobytes() for v in vectors)
    data = b"".join(parts)
    return data + struct.pack("<I", zlib.crc32(data))


def unpack_state(data: bytes, codec_id: int, n_vectors: int) -> tuple[int, list[Vector]]:
    """``(round, vectors)`` from ``pack_state`` bytes, checked; ``vectors`` is empty when fresh."""
    name = CODEC_IDS.get(codec_id, str(codec_id))
    if len(data) < _HEADER.size + 4:
        raise PayloadError(f"{name} state of {len(data)} bytes is shorter than its header")
    magic, version, stored_id, count, reserved, size, round_ = _HEADER.unpack_from(data)
    if magic != _MAGIC or reserved:
        raise PayloadError(f"not a codec state (starts with {bytes(data[:3])!r})")
    if version != _VERSION:
        raise PayloadError(f"unsupported codec state version {version} (reads {_VERSION})")
    if stored_id != codec_id:
        stored = CODEC_IDS.get(stored_id, str(stored_id))
        raise PayloadError(f"state belongs to codec {stored!r}, not {name!r}")
    expected_vectors = n_vectors if size else 0
    if count != expected_vectors:
        raise PayloadError(f"{name} state holds {count} vectors, expected {expected_vectors}")
    expected = _HEADER.size + count * size * 4 + 4
    if len(data) != expected:
        raise PayloadError(f"{name} state is {len(data)} bytes, its header implies {expected}")
    (crc,) = struct.unpack_from("<I", data, len(data) - 4)
    if zlib.crc32(memoryview(data)[:-4]) != crc:
        raise PayloadError(f"{name} state does not match its CRC-32 (corrupt file?)")
    vectors: list[Vector] = []
    for i in range(count):
        offset = _HEADER.size + i * size * 4
        vector = np.frombuffer(data, "<f4", size, offset).astype(np.float32)
        if not np.isfinite(vector).all():
            raise PayloadError(f"{name} state vector {i} holds non-finite values")
        vectors.append(vector)
    return round_, vectors
