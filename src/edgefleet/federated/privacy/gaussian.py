"""The Gaussian mechanism on model updates: clip each update's L2 norm, add Gaussian noise.

This is the mechanism of DP-FedAvg (McMahan et al., 2018, "Learning Differentially Private
Recurrent Language Models"), with device-level privacy: two neighbouring federations differ by
the *whole* data of one device. Each device's update is clipped to L2 norm ``clip_norm`` (``C``),
so adding or removing one device moves the sum of the clipped updates by at most ``C``, and
noise ``N(0, (z * C)**2)`` per coordinate, ``z`` being the ``noise_multiplier``, hides that move.

The noise can be added in two places (:data:`Placement`):

``at="device"`` (local DP)
    Each device clips its own delta and adds the noise to it before encoding it
    (:func:`privatize_update`). Nobody, not even the server, sees an update without noise; the
    price is that the mean of ``n`` updates carries ``n`` independent noises, a standard
    deviation of ``z * C / sqrt(n)`` per coordinate. The server averages what it receives with
    any strategy: every later step is post-processing.
``at="relay"`` (central DP)
    Devices send their deltas as they are; the aggregator that first sees them (a regional relay,
    or the server) clips each, sums them, adds the noise once to the sum and divides by the
    number of updates (:func:`private_mean`). The mean then carries ``z * C / n``: ``sqrt(n)``
    times less noise than device placement for the same ``z``, but the aggregator must be
    trusted with the raw updates.

:func:`private_mean` takes an *unweighted* mean. Weighting by example counts, as FedAvg does,
would let one device with a large count move the mean by more than ``C / n``, and the noise would
no longer cover it. To apply a server optimiser (momentum, Adam) to the private mean, pass it as
the single update of the round: ``strategy.aggregate(model, [ClientUpdate(mean, 1)])``.

The noise comes from the numpy ``Generator`` the caller passes, so a run is reproducible from its
seed. A seed that an observer can learn, or one shared by two devices or two rounds, voids the
guarantee: outside tests, draw it fresh (``np.random.default_rng()`` takes the operating system's
entropy).

Examples
--------
>>> import numpy as np
>>> clipped, was_clipped = clip_update(np.array([3.0, 4.0], np.float32), clip_norm=1.0)
>>> clipped.tolist(), was_clipped
([0.6000000238418579, 0.800000011920929], True)

On a device, each update gets noise of standard deviation ``z * C``:

>>> rng = np.random.default_rng(0)
>>> device = GaussianMechanism(clip_norm=1.0, noise_multiplier=1.1, at="device")
>>> noised, _ = privatize_update(np.zeros(100_000, np.float32), device, rng)
>>> round(float(noised.std()), 2)
1.1

On a relay, the mean of 10 updates gets ``z * C / 10``:

>>> relay = GaussianMechanism(clip_norm=1.0, noise_multiplier=1.1, at="relay")
>>> updates = [np.full(100_000, 1e-3, np.float32) for _ in range(10)]
>>> mean, clipped_count = private_mean(updates, relay, rng)
>>> clipped_count, round(float(mean.std()), 2)
(0, 0.11)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from edgefleet.federated.params import Vector
from edgefleet.federated.privacy._checks import count, positive

__all__ = [
    "PLACEMENTS",
    "GaussianMechanism",
    "Placement",
    "clip_update",
    "l2_norm",
    "private_mean",
    "privatize_update",
]

Placement = Literal["device", "relay"]
"""Where the noise is added: on each ``device`` (local DP) or once on the ``relay`` (central)."""

PLACEMENTS: tuple[Placement, ...] = ("device", "relay")
"""Every :data:`Placement`, the default first."""

_FLOAT32_TINY = float(np.finfo(np.float32).tiny)


@dataclass(frozen=True)
class GaussianMechanism:
    """Clipping bound, noise multiplier and placement of the Gaussian mechanism.

    Parameters
    ----------
    clip_norm
        ``C``: the largest L2 norm an update keeps; > 0.
    noise_multiplier
        ``z``: the noise's standard deviation in units of ``C``; > 0. The privacy accountant
        takes the same ``z``.
    at
        ``"device"`` (each device noises its own update) or ``"relay"`` (the aggregator noises
        the sum once); see the module docstring.
    """

    clip_norm: float
    noise_multiplier: float
    at: Placement = "device"

    def __post_init__(self) -> None:
        object.__setattr__(self, "clip_norm", positive("clip_norm", self.clip_norm))
        object.__setattr__(
            self, "noise_multiplier", positive("noise_multiplier", self.noise_multiplier)
        )
        if self.at not in PLACEMENTS:
            raise ValueError(
                f"at must be 'device' or 'relay' (where the noise is added), got {self.at!r}"
            )

    @property
    def noise_std(self) -> float:
        """``z * C``: the standard deviation of the noise added at one place, per coordinate."""
        return self.noise_multiplier * self.clip_norm

    def mean_noise_std(self, updates: int) -> float:
        """The noise's standard deviation per coordinate in the mean of ``updates`` updates.

        ``z * C / sqrt(n)`` with device placement (``n`` independent noises averaged),
        ``z * C / n`` with relay placement (one noise, divided by ``n``).
        """
        n = count("updates", updates)
        return self.noise_std / (math.sqrt(n) if self.at == "device" else n)


def _as_vector(update: Vector, what: str) -> Vector:
    array = np.asarray(update)
    if array.ndim != 1:
        raise ValueError(f"{what} must be a flat vector, got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"{what} must be numeric, got dtype {array.dtype}")
    with np.errstate(over="ignore"):
        vector: Vector = array.astype(np.float32, copy=False)
    finite = np.isfinite(vector)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ValueError(
            f"{what} has {bad.size} non-finite values as float32 (first at index {int(bad[0])}: "
            f"{vector[bad[0]]!r}); its norm cannot be bounded"
        )
    return vector


def _generator(rng: object) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a numpy Generator (np.random.default_rng(seed)), got {type(rng).__name__}"
        )
    return rng


def l2_norm(update: Vector) -> float:
    """The L2 norm of ``update``, summed in float64 (no overflow for any finite float32)."""
    vector = _as_vector(update, "update")
    return math.sqrt(float(np.einsum("i,i->", vector, vector, dtype=np.float64)))


def _clip(vector: Vector, clip_norm: float) -> tuple[Vector, bool]:
    """``vector`` itself when short enough, else a scaled copy; whether it was scaled."""
    norm = math.sqrt(float(np.einsum("i,i->", vector, vector, dtype=np.float64)))
    if norm <= clip_norm:
        return vector, False
    factor = clip_norm / norm
    scale = np.float32(factor)
    if float(scale) >= _FLOAT32_TINY:
        # Every coordinate is multiplied by a float32 <= 1, so none grows in magnitude.
        return vector * scale, True
    # A factor below float32's normal range would lose precision: scale in float64.
    return (vector.astype(np.float64) * factor).astype(np.float32), True


def clip_update(update: Vector, clip_norm: float) -> tuple[Vector, bool]:
    """``update`` scaled to L2 norm ``clip_norm`` if longer, and whether that happened.

    An update whose norm is at most ``clip_norm`` comes back unchanged (as a float32 copy). A
    longer one is scaled by ``clip_norm / norm``: its direction is kept, no coordinate grows,
    and its norm is ``clip_norm`` to float32 rounding.

    Raises
    ------
    ValueError
        If ``update`` is not a flat numeric vector, has NaN or infinite values, or
        ``clip_norm`` is not a finite number > 0.
    """
    bound = positive("clip_norm", clip_norm)
    vector = _as_vector(update, "update")
    clipped, was_clipped = _clip(vector, bound)
    return (clipped if was_clipped else vector.copy()), was_clipped


def _noise(size: int, std: float, rng: np.random.Generator) -> Vector:
    noise: Vector = rng.standard_normal(size, dtype=np.float32)
    noise *= np.float32(std)
    return noise


def privatize_update(
    update: Vector, mechanism: GaussianMechanism, rng: np.random.Generator
) -> tuple[Vector, bool]:
    """Device placement: ``update`` clipped to ``C`` plus ``N(0, (z*C)**2)`` per coordinate.

    Returns the noised update (float32) and whether clipping changed it. A device calls this on
    its delta before encoding it; the codec then compresses the noised vector.

    Raises
    ------
    ValueError
        If the mechanism adds its noise on the relay (``at="relay"``): the device would then
        send an update without noise, or the relay would noise it a second time. Also for a
        malformed update, as :func:`clip_update`.
    TypeError
        If ``rng`` is not a numpy ``Generator``.
    """
    if mechanism.at != "device":
        raise ValueError(
            f"privatize_update adds noise on the device, but the mechanism adds it at "
            f"{mechanism.at!r}; send the raw update and let the relay call private_mean"
        )
    generator = _generator(rng)
    clipped, was_clipped = _clip(_as_vector(update, "update"), mechanism.clip_norm)
    return clipped + _noise(clipped.size, mechanism.noise_std, generator), was_clipped


def private_mean(
    updates: Sequence[Vector], mechanism: GaussianMechanism, rng: np.random.Generator
) -> tuple[Vector, int]:
    """Relay placement: the unweighted mean of the clipped updates, noised once on the sum.

    Computes ``(sum_k clip(u_k, C) + N(0, (z*C)**2)) / n`` over the ``n`` updates and returns it
    (float32) with the number of updates that clipping changed (a count worth watching: if most
    updates are clipped, ``C`` is too small). The mean is unweighted on purpose; see the module
    docstring. ``n`` is the number of updates received, which the aggregator knows anyway.

    Raises
    ------
    ValueError
        If the mechanism adds its noise on the devices (``at="device"``): the updates already
        carry noise and must not be clipped or noised again, so average them with a strategy.
        Also if ``updates`` is empty, the updates differ in size, or one is malformed (the
        message names its index).
    TypeError
        If ``rng`` is not a numpy ``Generator``.
    """
    if mechanism.at != "relay":
        raise ValueError(
            f"private_mean adds noise on the relay, but the mechanism adds it at "
            f"{mechanism.at!r}; the updates are already noised, average them with a strategy"
        )
    generator = _generator(rng)
    if len(updates) == 0:
        raise ValueError("private_mean needs at least one update, got none")
    total: Vector | None = None
    clipped_count = 0
    for index, update in enumerate(updates):
        vector = _as_vector(update, f"update {index}")
        if total is not None and vector.size != total.size:
            raise ValueError(
                f"update {index} has {vector.size} values, but update 0 has {total.size}"
            )
        clipped, was_clipped = _clip(vector, mechanism.clip_norm)
        clipped_count += was_clipped
        if total is None:
            total = clipped.copy()  # never add into the caller's array
        else:
            total += clipped
    assert total is not None  # updates is not empty
    total += _noise(total.size, mechanism.noise_std, generator)
    total /= np.float32(len(updates))
    return total, clipped_count
