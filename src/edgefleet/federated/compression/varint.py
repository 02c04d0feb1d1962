"""LEB128 varints, vectorized: how the wire format stores sorted indices as small gaps.

Unsigned LEB128 writes 7 bits per byte, low bits first, and sets the high bit on every byte but
the last. A gap below 128 costs one byte, below 16384 two: at 99.9% sparsity the mean gap is
1000, so most indices cost 2 bytes. Decoding checks the stream as it goes: exactly the declared
count of varints, none longer than the caller allows, none with a redundant trailing zero byte,
so that every vector has exactly one encoding.

Examples
--------
>>> data = encode_varints([5, 1000, 1])
>>> data.hex(), decode_varints(data, 3).tolist()
('05e80701', [5, 1000, 1])
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from edgefleet.federated.compression.base import PayloadError

__all__ = ["decode_varints", "encode_varints", "varint_len"]


def varint_len(value: int) -> int:
    """Bytes of the varint of ``value``.

    >>> varint_len(0), varint_len(127), varint_len(128), varint_len(2**40 - 1)
    (1, 1, 2, 6)
    """
    return max(1, (value.bit_length() + 6) // 7)


def encode_varints(values: npt.ArrayLike) -> bytes:
    """Unsigned LEB128: 7 bits per byte, low bits first, high bit set on all but the last.

    >>> encode_varints([0, 1, 127, 128, 300]).hex()
    '00017f8001ac02'
    """
    v = np.asarray(values, np.uint64).ravel()
    if v.size == 0:
        return b""
    lengths = np.ones(v.size, np.int64)
    for j in range(1, 10):
        lengths += v >= np.uint64(1 << (7 * j))
    offsets = np.cumsum(lengths) - lengths
    out = np.empty(int(lengths.sum()), np.uint8)
    for j in range(int(lengths.max())):
        idx = np.flatnonzero(lengths > j) if j else np.arange(v.size)
        low = ((v[idx] >> np.uint64(7 * j)) & np.uint64(0x7F)).astype(np.uint8)
        more = (lengths[idx] > j + 1).astype(np.uint8) << np.uint8(7)
        out[offsets[idx] + j] = low | more
    return out.tobytes()


def decode_varints(data: bytes, count: int, max_len: int = 10) -> npt.NDArray[np.uint64]:
    """Exactly ``count`` canonical varints filling ``data``, each at most ``max_len`` bytes.

    >>> decode_varints(bytes.fromhex("00017f8001ac02"), 5).tolist()
    [0, 1, 127, 128, 300]
    """
    raw = np.frombuffer(data, np.uint8)
    ends = np.flatnonzero(raw < 0x80)
    if ends.size != count or (count and ends[-1] != raw.size - 1) or (not count and raw.size):
        raise PayloadError(
            f"index section holds {ends.size} complete varints in {raw.size} bytes, "
            f"header declares {count}"
        )
    if count == 0:
        return np.zeros(0, np.uint64)
    starts = np.empty(count, np.int64)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    lengths = ends - starts + 1
    if int(lengths.max()) > max_len:
        at = int(np.argmax(lengths > max_len))
        raise PayloadError(f"index gap {at} is a varint of more than {max_len} bytes")
    if np.any((raw[ends] == 0) & (lengths > 1)):
        raise PayloadError("index section has a non-canonical varint (a trailing zero byte)")
    position = np.arange(raw.size) - np.repeat(starts, lengths)
    parts = (raw & np.uint8(0x7F)).astype(np.uint64) << (7 * position).astype(np.uint64)
    decoded: npt.NDArray[np.uint64] = np.bitwise_or.reduceat(parts, starts)
    return decoded
