"""The codec interface: an update goes in as a float32 vector and comes out as bytes.

Every codec encodes one flat update (:data:`~edgefleet.federated.params.Vector`) into a
self-describing payload (:mod:`~edgefleet.federated.compression.wire`) and decodes it back given
the vector size, which the receiver knows from the model. Each codec states its error: for
every finite update ``x``,

    ``max(abs(decode(encode(x), x.size) - target(x))) <= error_bound(x)``

where the error is the maximum absolute (L-infinity) error, and ``target(x)`` is what the codec
tries to send: ``x`` itself for the stateless codecs, ``x`` plus what earlier rounds held back for
the error-feedback codecs (top-k, DGC). ``target`` and ``error_bound`` do not change any state;
``encode`` does.

Stateful codecs keep per-device state (residuals, momentum, a round counter) in the codec
object. ``state_bytes()`` gives it as bytes and ``load_state()`` restores it, so that an agent
can keep it on disk and continue after a restart with exactly the result it would have had.
Stateless codecs have an empty state; one instance can encode for any number of devices.

Examples
--------
>>> import numpy as np
>>> from edgefleet.federated.compression import from_spec
>>> codec = from_spec("fp16")
>>> x = np.array([0.5, -1.25, 3.0e-3], np.float32)
>>> y = codec.decode(codec.encode(x), x.size)
>>> bool(np.max(np.abs(y - x)) <= codec.error_bound(x))
True
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from edgefleet.errors import ConfigurationError, ProtocolError
from edgefleet.federated.params import Vector

__all__ = [
    "FP16_MAX",
    "Codec",
    "CodecSpecError",
    "PayloadError",
    "as_update",
    "check_round",
    "encode_for_round",
    "fp16_error",
]

FP16_MAX = 65504.0
"""The largest finite float16; payloads whose values exceed it are sent as float32 instead."""


class PayloadError(ProtocolError, ValueError):
    """An encoded update or codec state is malformed: truncated, corrupt, or not what was expected.

    A ``ValueError`` for callers of the pure functions, and a
    :class:`~edgefleet.errors.ProtocolError` (``protocol.malformed``) for the transport layers.
    """


class CodecSpecError(ConfigurationError, ValueError):
    """A codec spec string such as ``"dgc:0.999,momentum=0.9"`` is invalid."""


def as_update(update: Vector, what: str = "update") -> Vector:
    """``update`` as a 1-D float32 array, or ``ValueError`` naming what is wrong with it."""
    array = np.asarray(update)
    if array.ndim != 1:
        raise ValueError(f"{what} must be a flat vector, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.floating) and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{what} must be numeric, got dtype {array.dtype}")
    vector: Vector = array.astype(np.float32, copy=False)
    finite = np.isfinite(vector)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ValueError(
            f"{what} has {bad.size} non-finite values (first at index {int(bad[0])}: "
            f"{vector[bad[0]]!r}); refusing to encode it"
        )
    return vector


def fp16_error(max_abs: float) -> float:
    """The largest rounding error of sending values up to ``max_abs`` as float16.

    Round-to-nearest float16 has a relative error of at most 2**-11 for normal numbers and an
    absolute error of at most 2**-25 (half the subnormal spacing) below them. Above
    :data:`FP16_MAX` the wire format sends float32, so the error is zero.

    >>> round(fp16_error(1.0), 8)
    0.00048831
    >>> fp16_error(1e6)
    0.0
    """
    if max_abs > FP16_MAX:
        return 0.0
    return max_abs * 2.0**-11 + 2.0**-25


def check_round(round_: int) -> int:
    """``round_`` if it is a job's round number (an integer from 1), else ``ValueError``.

    >>> check_round(3)
    3
    >>> check_round(0)
    Traceback (most recent call last):
    ...
    ValueError: a job's round is an integer from 1, got 0
    """
    if isinstance(round_, bool) or not isinstance(round_, int) or round_ < 1:
        raise ValueError(f"a job's round is an integer from 1, got {round_!r}")
    return round_


def encode_for_round(codec: Codec, round_: int, update: Vector) -> bytes:
    """A device's payload for round ``round_`` (from 1) of a job: the rule devices share.

    The agent and the simulation both encode through this function, so a codec's schedule
    over rounds (DGC's warm-up) follows the job's round number in both, never how many updates
    one device happened to send.

    >>> import numpy as np
    >>> from edgefleet.federated.compression import from_spec
    >>> codec = from_spec("dgc:0.999")
    >>> payload = encode_for_round(codec, 20, np.ones(5000, np.float32))
    >>> int(np.count_nonzero(codec.decode(payload, 5000)))  # round 20: past the warm-up
    5
    """
    codec.start_round(round_)
    return codec.encode(update)


class Codec(ABC):
    """Encodes float32 update vectors to bytes and back, within a stated error.

    Subclasses set ``name`` (the spec name) and ``codec_id`` (the id in the wire header) and
    implement ``encode``, ``error_bound`` and ``spec``. Stateful ones also override ``target``,
    ``state_bytes``, ``load_state`` and ``reset_state``.
    """

    name: ClassVar[str]
    codec_id: ClassVar[int]
    stateful: ClassVar[bool] = False

    @abstractmethod
    def encode(self, update: Vector) -> bytes:
        """The payload for ``update`` (advances the state of a stateful codec)."""

    def decode(self, payload: bytes, size: int) -> Vector:
        """The vector in ``payload``; :class:`PayloadError` when it is malformed or not ours."""
        from edgefleet.federated.compression.wire import decode  # the wire imports this module

        return decode(payload, size, codec_id=self.codec_id)

    def target(self, update: Vector) -> Vector:
        """What ``encode(update)`` would try to send: ``update`` itself for stateless codecs."""
        return as_update(update)

    def start_round(self, round_: int) -> None:
        """Say which round of the job (from 1) the next ``encode`` is for.

        Codecs with a schedule over the job's rounds (DGC's warm-up) follow it; the others
        ignore it. A device knows the round from its assignment, the simulation from its loop.
        """
        check_round(round_)

    @abstractmethod
    def error_bound(self, update: Vector) -> float:
        """Bound on the max absolute error of ``decode(encode(update))`` against ``target``."""

    @abstractmethod
    def spec(self) -> str:
        """The canonical spec text, which ``from_spec`` turns back into an equal codec."""

    def state_bytes(self) -> bytes:
        """The per-device state as bytes (empty for stateless codecs)."""
        return b""

    def load_state(self, data: bytes) -> None:
        """Restore a state from ``state_bytes()``; stateless codecs accept only ``b""``."""
        if data:
            raise PayloadError(f"codec {self.spec()!r} keeps no state, got {len(data)} bytes")

    def reset_state(self) -> None:
        """Forget the per-device state (after a model change); nothing for stateless codecs."""
        self.load_state(b"")

    def fresh(self) -> Codec:
        """A codec with the same settings and an empty state."""
        from edgefleet.federated.compression.spec import from_spec  # spec imports every codec

        return from_spec(self.spec())

    def __eq__(self, other: object) -> bool:
        """Codecs are equal when their settings are (the state is not compared)."""
        return isinstance(other, Codec) and other.spec() == self.spec()

    def __hash__(self) -> int:
        return hash(self.spec())

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec()!r}>"
