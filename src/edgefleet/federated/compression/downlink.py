"""Downlink: send the new global model as a delta against the model a device already holds.

A device that took part in the last round holds the previous global model; the new one
differs from it by one aggregated update, which compresses far better than the model itself.
The server encodes ``new - base`` with a codec (float16 by default) and the device adds the
decoded delta to its copy. Bases are named by :func:`model_hash`: the first 16 hex digits of
the SHA-256 of the float32 little-endian bytes. The device reports the hash of what it holds;
when the server no longer has that base (or the device has none) it sends the full model.

The delta is lossy, so the device ends up with ``base + decoded``, not exactly the new model.
:class:`Downlink` says what that is (``model``, ``model_hash``), computed with the same float32
arithmetic the device will use; the server keeps it as the base of the next delta to that
device, so the next delta also carries what this one lost and errors do not build up. The
payload carries the hash of the base it applies to and the hash of the result, and
:func:`apply_downlink` checks both: a wrong base raises :class:`BaseMismatchError` (ask for the
full model), a wrong result raises :class:`PayloadError`.

Payload: magic ``b"ED"``, version (1 byte), kind (0 full, 1 delta), the base hash (8 bytes,
zeros for a full model) and the result hash (8 bytes), then a :mod:`wire` payload.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> old = rng.normal(size=10_000).astype(np.float32)
>>> new = old + rng.normal(scale=1e-3, size=10_000).astype(np.float32)
>>> full = encode_downlink(new)
>>> delta = encode_downlink(new, base=old)
>>> round(len(delta.payload) / len(full.payload), 2)  # a float16 delta: about half
0.5
>>> held = apply_downlink(delta.payload, old)
>>> model_hash(held) == delta.model_hash, float(np.max(np.abs(held - new))) < 1e-5
(True, True)
>>> downlink_for(new, device_hash="0123456789abcdef", bases={model_hash(old): old}).is_delta
False
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from edgefleet.federated.compression import wire
from edgefleet.federated.compression.base import Codec, PayloadError, as_update
from edgefleet.federated.compression.dense import DenseCodec
from edgefleet.federated.compression.quantize import Float16Codec
from edgefleet.federated.params import Vector

__all__ = [
    "BaseMismatchError",
    "Downlink",
    "apply_downlink",
    "downlink_for",
    "encode_downlink",
    "model_hash",
]

_MAGIC = b"ED"
_VERSION = 1
_FULL, _DELTA = 0, 1
_HEADER = struct.Struct("<2sBB8s8s")


class BaseMismatchError(PayloadError):
    """A delta was made against a model the device does not hold; it needs the full model."""

    code = "federated.base_mismatch"


def model_hash(model: Vector) -> str:
    """First 16 hex digits of the SHA-256 of the model's float32 little-endian bytes.

    >>> model_hash(np.zeros(3, np.float32))
    '15ec7bf0b50732b4'
    """
    data = np.ascontiguousarray(np.asarray(model), dtype="<f4").tobytes()
    return hashlib.sha256(data).hexdigest()[:16]


@dataclass(frozen=True)
class Downlink:
    """An encoded global model and what the device will hold after applying it."""

    payload: bytes
    model: Vector
    """The model the device holds after applying ``payload`` (bit-exact)."""
    model_hash: str
    base_hash: str | None
    """The base the delta applies to; ``None`` for a full model."""

    @property
    def is_delta(self) -> bool:
        """Whether this is a delta (else a full model)."""
        return self.base_hash is not None


def encode_downlink(
    model: Vector,
    base: Vector | None = None,
    *,
    codec: Codec | None = None,
    full_codec: Codec | None = None,
) -> Downlink:
    """``model`` as a delta against ``base`` (``codec``, float16 by default), or in full.

    The full model goes with ``full_codec`` (dense float32 by default). A base of another size
    than the model also gets the full model. Stateful codecs are used with a fresh state.
    """
    new = as_update(model, "model")
    if base is not None:
        old = as_update(base, "base model")
        if old.size == new.size:
            coder = (codec or Float16Codec()).fresh()
            inner = coder.encode(new - old)
            held: Vector = old + coder.decode(inner, new.size)
            return _downlink(_DELTA, model_hash(old), inner, held)
    coder = (full_codec or DenseCodec()).fresh()
    inner = coder.encode(new)
    return _downlink(_FULL, None, inner, coder.decode(inner, new.size))


def downlink_for(
    model: Vector,
    device_hash: str | None,
    bases: Mapping[str, Vector],
    *,
    codec: Codec | None = None,
    full_codec: Codec | None = None,
) -> Downlink:
    """A delta against ``bases[device_hash]`` when the server has it, else the full model."""
    base = bases.get(device_hash) if device_hash is not None else None
    return encode_downlink(model, base, codec=codec, full_codec=full_codec)


def _downlink(kind: int, base_hash: str | None, inner: bytes, held: Vector) -> Downlink:
    result_hash = model_hash(held)
    base_raw = bytes.fromhex(base_hash) if base_hash else bytes(8)
    header = _HEADER.pack(_MAGIC, _VERSION, kind, base_raw, bytes.fromhex(result_hash))
    return Downlink(header + inner, held, result_hash, base_hash)


def apply_downlink(payload: bytes, held: Vector | None, size: int | None = None) -> Vector:
    """The new model from ``payload`` and the model the device holds (``None`` if none).

    ``size`` (the model's parameter count) defaults to ``held.size`` and is needed without it.
    Raises :class:`BaseMismatchError` when a delta does not apply to ``held``, and
    :class:`PayloadError` when the payload is malformed or the result is not the model the
    server meant.
    """
    if len(payload) < _HEADER.size:
        raise PayloadError(f"downlink of {len(payload)} bytes is shorter than its header")
    magic, version, kind, base_raw, result_raw = _HEADER.unpack_from(payload)
    if magic != _MAGIC:
        raise PayloadError(f"downlink does not start with {_MAGIC!r} (got {magic!r})")
    if version != _VERSION:
        raise PayloadError(f"unsupported downlink version {version} (this build reads {_VERSION})")
    if kind not in (_FULL, _DELTA):
        raise PayloadError(f"unknown downlink kind {kind}")
    inner = payload[_HEADER.size :]
    if kind == _DELTA:
        if held is None:
            raise BaseMismatchError(f"a delta against {base_raw.hex()} needs a model to apply to")
        old = as_update(held, "held model")
        if model_hash(old) != base_raw.hex():
            raise BaseMismatchError(
                f"delta is against model {base_raw.hex()}, the device holds {model_hash(old)}"
            )
        new: Vector = old + wire.decode(inner, old.size)
    else:
        if size is None and held is None:
            raise ValueError("apply_downlink needs the model size when no model is held")
        new = wire.decode(inner, size if size is not None else np.asarray(held).size)
    if model_hash(new) != result_raw.hex():
        raise PayloadError(
            f"the applied model hashes to {model_hash(new)}, the server sent {result_raw.hex()}"
        )
    return new
