"""Top-k sparsification with error feedback: send the k largest values, carry the rest forward.

Each round the codec adds the update to the residual it kept from earlier rounds, sends the
``k = max(1, round(n * (1 - sparsity)))`` entries of largest magnitude (fewer when fewer are
nonzero), and keeps everything else as the new residual, together with the float16 rounding
error of what it sent. Nothing is lost: over any number of rounds, the sum of the decoded
updates plus the final residual equals the sum of the updates (up to float32 addition), so a
small coordinate is delayed until it has accumulated enough to be sent, never dropped (Stich et
al., "Sparsified SGD with memory", 2018).

``sparsity`` is the fraction of values *not* sent: ``topk:0.99`` sends 1%. The error bound is
against ``target(update) = update + residual``: at most the (k+1)-th largest magnitude of the
target (what was held back) or the float16 rounding of what was sent, whichever is larger.

The residual is per-device state: ``state_bytes()`` / ``load_state()`` keep it across restarts.

Examples
--------
>>> import numpy as np
>>> codec = TopKCodec(sparsity=0.5)
>>> first = codec.decode(codec.encode(np.array([4.0, 1.0, -3.0, 0.5], np.float32)), 4)
>>> first.tolist(), codec.residual.tolist()
([4.0, 0.0, -3.0, 0.0], [0.0, 1.0, 0.0, 0.5])
>>> second = codec.decode(codec.encode(np.array([1.0, 1.0, 0.0, 0.0], np.float32)), 4)
>>> second.tolist(), codec.residual.tolist()  # the held-back 1.0 went out in round two
([1.0, 2.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.5])
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import numpy.typing as npt

from edgefleet.federated.compression import wire
from edgefleet.federated.compression._state import pack_state, unpack_state
from edgefleet.federated.compression.base import Codec, as_update, fp16_error
from edgefleet.federated.params import Vector

__all__ = ["TopKCodec", "kept_count", "top_k_indices"]


def kept_count(size: int, sparsity: float) -> int:
    """How many of ``size`` values a codec at ``sparsity`` sends: ``max(1, round(n * (1 - s)))``.

    >>> kept_count(1_000_000, 0.999), kept_count(10, 0.999), kept_count(0, 0.5)
    (1000, 1, 0)
    """
    if size == 0:
        return 0
    return min(size, max(1, round(size * (1.0 - sparsity))))


def top_k_indices(magnitudes: Vector, k: int) -> npt.NDArray[np.int64]:
    """Sorted indices of the ``k`` largest nonzero ``magnitudes`` (all nonzero when fewer).

    Ties at the k-th magnitude are broken arbitrarily.

    >>> top_k_indices(np.array([0.1, 3.0, 0.0, 2.0], np.float32), 2).tolist()
    [1, 3]
    >>> top_k_indices(np.array([0.0, 3.0, 0.0], np.float32), 2).tolist()
    [1]
    """
    n = magnitudes.size
    if k <= 0:
        return np.zeros(0, np.int64)
    if k >= n or k >= np.count_nonzero(magnitudes):
        return np.flatnonzero(magnitudes).astype(np.int64)
    chosen = np.argpartition(magnitudes, n - k)[n - k :]
    chosen.sort()
    return chosen.astype(np.int64)


def kth_largest(magnitudes: Vector, k: int) -> float:
    """The k-th largest value of ``magnitudes`` (1-based), 0 when there are fewer than k."""
    n = magnitudes.size
    if k > n or k < 1:
        return 0.0
    return float(np.partition(magnitudes, n - k)[n - k])


def check_sparsity(sparsity: float) -> float:
    """``sparsity`` as a float in [0, 1), or ``ValueError``."""
    value = float(sparsity)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"sparsity is the fraction of values not sent, in [0, 1), got {value}")
    return value


class TopKCodec(Codec):
    """Top-k by magnitude with error feedback.

    Parameters
    ----------
    sparsity
        Fraction of values held back each round, in [0, 1): 0.99 sends 1%.
    values
        ``"fp16"`` (default; float32 when a value exceeds float16's range) or ``"fp32"``.
    level
        zlib level, 0 (no compression) to 9.
    """

    name: ClassVar[str] = "topk"
    codec_id: ClassVar[int] = wire.TOPK
    stateful: ClassVar[bool] = True

    def __init__(self, sparsity: float, values: wire.FloatValues = "fp16", level: int = 6) -> None:
        self.sparsity = check_sparsity(sparsity)
        if values not in ("fp16", "fp32"):
            raise ValueError(f"values must be 'fp16' or 'fp32', got {values!r}")
        if not 0 <= level <= 9:
            raise ValueError(f"zlib level must be 0..9, got {level}")
        self.values: wire.FloatValues = values
        self.level = level
        self._residual: Vector | None = None
        self._round = 0

    @property
    def residual(self) -> Vector:
        """What has not been sent yet (a copy; empty before the first round)."""
        return np.zeros(0, np.float32) if self._residual is None else self._residual.copy()

    @property
    def round(self) -> int:
        """Rounds encoded since the state was fresh."""
        return self._round

    def target(self, update: Vector) -> Vector:
        """``update`` plus the residual."""
        x = as_update(update)
        if self._residual is None:
            return x.copy()
        if self._residual.size != x.size:
            raise ValueError(
                f"the residual is for {self._residual.size} values, the update has {x.size}; "
                "call reset_state() after a model change"
            )
        with np.errstate(over="ignore"):
            target: Vector = x + self._residual
        if not np.isfinite(target).all():
            raise ValueError("the update plus the residual overflows float32")
        return target

    def encode(self, update: Vector) -> bytes:
        """Send the top-k of ``update + residual``; keep the rest as the new residual."""
        target = self.target(update)
        chosen = top_k_indices(np.abs(target), kept_count(target.size, self.sparsity))
        values = target[chosen]
        payload = wire.encode_sparse(
            chosen,
            values,
            target.size,
            codec_id=self.codec_id,
            value_type=self.values,
            level=self.level,
        )
        target[chosen] = values - wire.as_sent(values, self.values)
        self._residual = target
        self._round += 1
        return payload

    def error_bound(self, update: Vector) -> float:
        """The (k+1)-th largest magnitude of the target, or the float16 rounding if larger."""
        magnitudes = np.abs(self.target(update))
        if magnitudes.size == 0:
            return 0.0
        held_back = kth_largest(magnitudes, kept_count(magnitudes.size, self.sparsity) + 1)
        rounding = fp16_error(float(magnitudes.max())) if self.values == "fp16" else 0.0
        return max(held_back, rounding)

    def spec(self) -> str:
        """``topk:SPARSITY`` with ``values=fp32`` and ``level=N`` when not the defaults."""
        options = [repr(self.sparsity)]
        if self.values != "fp16":
            options.append(f"values={self.values}")
        if self.level != 6:
            options.append(f"level={self.level}")
        return "topk:" + ",".join(options)

    def state_bytes(self) -> bytes:
        """The round counter and the residual."""
        vectors = [] if self._residual is None else [self._residual]
        return pack_state(self.codec_id, self._round, vectors)

    def load_state(self, data: bytes) -> None:
        """Restore ``state_bytes()``; ``b""`` means a fresh state."""
        if not data:
            self.reset_state()
            return
        self._round, vectors = unpack_state(data, self.codec_id, 1)
        self._residual = vectors[0] if vectors else None

    def reset_state(self) -> None:
        """Forget the residual and the round counter."""
        self._residual = None
        self._round = 0
