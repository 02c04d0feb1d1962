"""Quantization: float16 (half the bytes), or int8 with one float32 scale per chunk (a quarter).

``Float16Codec`` rounds each value to the nearest float16: a relative error of at most 2**-11
(about 0.05%), plus 2**-25 absolute below float16's normal range. A vector with a value beyond
float16's range (65504) is sent as float32, exactly.

``Int8Codec`` splits the vector into chunks of ``chunk`` values (256 by default) and sends each
chunk as ``round(x / s)`` in [-127, 127] with ``s = max|chunk| / 127`` as float32, so each value
is off by at most ``max|chunk| / 254``, plus float32 rounding; ``error_bound`` states it as
``max|x| * (1/254 + 2**-22) + 2**-100`` (the last term covers chunks below 2**-100, sent as zero).
Rounding is to nearest, not stochastic, so the error is deterministic but not unbiased; the
per-chunk scale keeps a chunk of small values from being swamped by a large one elsewhere.

Examples
--------
>>> import numpy as np
>>> x = np.linspace(-1.0, 1.0, 1000, dtype=np.float32)
>>> int8 = Int8Codec()
>>> payload = int8.encode(x)
>>> len(payload) < x.nbytes / 3
True
>>> error = float(np.max(np.abs(int8.decode(payload, x.size) - x)))
>>> error <= int8.error_bound(x) < 1 / 250
True
>>> fp16 = Float16Codec()
>>> float(np.max(np.abs(fp16.decode(fp16.encode(x), x.size) - x))) <= fp16.error_bound(x)
True
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import numpy.typing as npt

from edgefleet.federated.compression import wire
from edgefleet.federated.compression.base import Codec, as_update, fp16_error
from edgefleet.federated.params import Vector

__all__ = ["DEFAULT_CHUNK", "Float16Codec", "Int8Codec"]

DEFAULT_CHUNK = 256
_TINY = 2.0**-100


def _check_level(level: int) -> int:
    if not 0 <= level <= 9:
        raise ValueError(f"zlib level must be 0..9, got {level}")
    return level


def _max_abs(x: Vector) -> float:
    return float(np.max(np.abs(x))) if x.size else 0.0


class Float16Codec(Codec):
    """Sends every value as float16 (float32 when one is out of float16's range).

    Parameters
    ----------
    level
        zlib level, 0 (no compression) to 9.
    """

    name: ClassVar[str] = "fp16"
    codec_id: ClassVar[int] = wire.FP16

    def __init__(self, level: int = 6) -> None:
        self.level = _check_level(level)

    def encode(self, update: Vector) -> bytes:
        """The update rounded to float16."""
        x = as_update(update)
        return wire.encode_dense(x, codec_id=self.codec_id, value_type="fp16", level=self.level)

    def error_bound(self, update: Vector) -> float:
        """``max|x| * 2**-11 + 2**-25``, or 0 when the vector goes as float32."""
        return fp16_error(_max_abs(as_update(update)))

    def spec(self) -> str:
        """``fp16``, with ``:level=N`` when the zlib level is not 6."""
        return "fp16" if self.level == 6 else f"fp16:level={self.level}"


class Int8Codec(Codec):
    """Sends every value as int8, with one float32 scale per chunk of ``chunk`` values.

    Parameters
    ----------
    chunk
        Values per scale (at least 1). Smaller chunks follow the local magnitude more closely
        and cost ``4 / chunk`` bytes per value for the scales.
    level
        zlib level, 0 (no compression) to 9.
    """

    name: ClassVar[str] = "int8"
    codec_id: ClassVar[int] = wire.INT8

    def __init__(self, chunk: int = DEFAULT_CHUNK, level: int = 6) -> None:
        if not 1 <= chunk <= 2**31 - 1:
            raise ValueError(f"int8 chunk must be 1..2**31-1, got {chunk}")
        self.chunk = chunk
        self.level = _check_level(level)

    def quantize(self, update: Vector) -> tuple[npt.NDArray[np.int8], Vector]:
        """``(q, scales)``: int8 values and one scale per chunk, ``x ~= q * scales[i // chunk]``."""
        x = as_update(update)
        n_chunks = -(-x.size // self.chunk)
        padded = np.zeros(n_chunks * self.chunk, np.float32)
        padded[: x.size] = x
        rows = padded.reshape(n_chunks, self.chunk)
        peak = np.max(np.abs(rows), axis=1) if n_chunks else np.zeros(0, np.float32)
        tiny = peak < _TINY
        exact = peak.astype(np.float64) / 127.0
        scales = exact.astype(np.float32)
        # Round the scale down, never up, so that 127 * scale cannot pass float32's maximum.
        over = scales.astype(np.float64) > exact
        scales[over] = np.nextafter(scales[over], np.float32(0.0))
        scales[tiny] = 0.0
        ratio = rows / np.where(tiny, np.float32(1.0), scales)[:, None]
        ratio[tiny] = 0.0
        q = np.clip(np.rint(ratio), -127, 127).astype(np.int8).ravel()[: x.size]
        return q, scales

    def encode(self, update: Vector) -> bytes:
        """The update as int8 with per-chunk scales."""
        q, scales = self.quantize(update)
        return wire.encode_int8(q, scales, self.chunk, codec_id=self.codec_id, level=self.level)

    def error_bound(self, update: Vector) -> float:
        """``max|x| * (1/254 + 2**-22) + 2**-100``: half a quantization step, plus rounding."""
        peak = _max_abs(as_update(update))
        return peak * (1.0 / 254.0 + 2.0**-22) + _TINY if peak else 0.0

    def spec(self) -> str:
        """``int8``, with ``:chunk=N`` and ``level=N`` when they are not the defaults."""
        options = []
        if self.chunk != DEFAULT_CHUNK:
            options.append(f"chunk={self.chunk}")
        if self.level != 6:
            options.append(f"level={self.level}")
        return "int8" + (":" + ",".join(options) if options else "")
