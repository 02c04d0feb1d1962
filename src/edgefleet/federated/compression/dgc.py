"""Deep Gradient Compression (Lin et al., ICLR 2018), adapted to one model delta per round.

Each round a device hands the codec its update ``g`` (the model delta of its local training)
and the codec, holding a velocity ``u`` and an accumulator ``v`` per parameter:

1. **clips** ``g`` to an L2 norm of at most ``clip`` (local gradient clipping; off by default),
2. **corrects momentum**: ``u = momentum * u + g``, then ``v = v + u`` (the paper accumulates
   the velocity, not the raw gradient, so that sparsification does not lose the momentum term),
3. sends the ``k`` entries of ``v`` of largest magnitude, ``k`` set by the round's sparsity,
4. **masks the momentum factor**: zeroes ``u`` and ``v`` at the sent coordinates, so that a sent
   value does not keep pushing through stale momentum (``v`` keeps the float16 rounding error
   of what it sent, so nothing is lost to rounding).

**Warm-up**: the sparsity rises exponentially over the first ``warmup`` rounds, from ``start``
in round 0 to the target in round ``warmup`` (counting from 0), the density shrinking by the
same factor each round: ``density(r) = (1 - start) * ((1 - target) / (1 - start)) ** (r /
warmup)``. The default, ``start=0.9`` over ``warmup=13`` rounds, sends 10% of the values in a
job's first round, 7.0% in its second, and so on by a factor of 0.70 a round to 0.1% from round
14 on. The paper's schedule (75% -> 93.75% -> 98.4% -> 99.6% -> 99.9%) is ``start=0.75,warmup=4``.

Why a long, shallow warm-up in federated rounds: after the warm-up a device sends 0.1% of its
accumulator, about 300 values of a 306,698-parameter model, and the rest waits in ``v``, so
what the global model learns in a 30-round job comes mostly from the warm-up's rounds. The
paper's schedule spends three quarters of its bytes in round 1 (25% of the values of an update
from an untrained model, sent by whichever devices were picked and did not drop out) and is at
the target from round 5, when the digits-wide model was at 25-60% held-out accuracy; with 25%
of the devices dropping out, ``dgc:0.999`` then ended 3.3 points below dense on the mean of
three seeds. The default spends about the same bytes (a third of a model per device over the
warm-up) over 13 rounds, while the model learns most: 0.9 points below dense at 175x fewer
bytes than dense float32 on the mean of four other seeds, 1.9 below on the three it was chosen
on (docs/federated.md). Dropping the
accumulated residual instead (error feedback off or decayed) lowered accuracy further, and
momentum correction did not help.

The warm-up follows the **job's round**: before each update the device (or the simulation) calls
``start_round(r)`` with the round ``r`` of its assignment (from 1), and round ``r`` uses the
sparsity of step ``r - 1``. Every device of a job is at the same sparsity in the same round, a
device that first takes part in round 20 sends at the target at once, and the bytes of a job do
not depend on how often each device is picked or drops out. Counting each device's own updates
instead made a device that takes part in half of 30 rounds spend 4 of its 15 updates warming up,
and a 30-round job send 64x fewer bytes than dense float32 rather than 100x. A codec never told
the round (a library user encoding a stream of updates) counts its own encodes from a fresh
state.

**Threshold by sampling**: instead of a full selection over all ``n`` magnitudes, the threshold
is estimated from a random sample (``sample`` of the vector, at least enough for 256 expected
hits) as the magnitude that about ``2k`` values exceed. One pass collects those candidates; an
exact top-k over the candidates then picks ``k``. The candidate count is ``2k`` with a relative
standard deviation of about ``1 / sqrt(hits)`` (6% at 256 hits); it falls below ``k``, which
costs one exact selection over the whole vector, with probability below 1e-9 for continuous
magnitudes. So the sent set is the exact top-k (ties aside), found at the cost of a comparison
pass. The sample is drawn from a generator seeded by ``(seed, round)``, so a restored state
repeats the same choices.

**Federated rounds**: ``g`` is a model delta, not a gradient, and the velocity runs across the
rounds this device takes part in. With ``momentum=0`` and no clipping, DGC is top-k with error
feedback plus the warm-up, and no mass is lost: the decoded updates plus ``v`` sum to the
updates. With ``momentum=m > 0`` the velocity acts like server momentum applied on the device:
a coordinate sent every round contributes its delta once, one that waits contributes its older
deltas up to ``1 / (1 - m)`` times, as with momentum SGD. That changes the effective step size:
in a small digits simulation (a 2.4k-parameter MLP, 10 clients, 99% sparsity, 30 rounds)
``momentum=0.9`` reached 61-81% accuracy against 85-92% with 0 (at a server learning rate of 1;
64-79% at 0.1-0.3). So the default is ``momentum=0.0``; the paper's 0.9 is one option away.

The error bound is against ``target(update)``, the accumulator ``v`` after step 2: the (k+1)-th
largest magnitude of it, or the float16 rounding of what was sent.

Examples
--------
>>> import numpy as np
>>> [round(100 * (1 - warmup_sparsity(r, 0.999, 13)), 2) for r in (0, 1, 2, 12, 13, 14)]
[10.0, 7.02, 4.92, 0.14, 0.1, 0.1]
>>> codec = DGCCodec(sparsity=0.999, momentum=0.9, clip=10.0, warmup=4, start=0.75)
>>> rng = np.random.default_rng(0)
>>> def sent(codec, update):
...     return int(np.count_nonzero(codec.decode(codec.encode(update), update.size)))
>>> [sent(codec, rng.normal(size=100_000).astype(np.float32)) for _ in range(6)]
[25000, 6287, 1581, 398, 100, 100]

A device that first takes part in round 20 of a job sends at the target at once; in round 2
every device sends what the job's second warm-up step allows, whatever its own history:

>>> late, early = DGCCodec(sparsity=0.999), DGCCodec(sparsity=0.999)
>>> late.start_round(20); early.start_round(2)
>>> sent(late, rng.normal(size=100_000).astype(np.float32))
100
>>> sent(early, rng.normal(size=100_000).astype(np.float32))
7017

The state restores exactly:

>>> restored = DGCCodec(sparsity=0.999, momentum=0.9, clip=10.0, warmup=4, start=0.75)
>>> restored.load_state(codec.state_bytes())
>>> update = rng.normal(size=100_000).astype(np.float32)
>>> codec.encode(update) == restored.encode(update)
True
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from edgefleet.federated.compression import wire
from edgefleet.federated.compression._state import pack_state, unpack_state
from edgefleet.federated.compression.base import Codec, as_update, check_round, fp16_error
from edgefleet.federated.compression.topk import (
    check_sparsity,
    kept_count,
    kth_largest,
    top_k_indices,
)
from edgefleet.federated.params import Vector

__all__ = [
    "DGCCodec",
    "sampled_threshold",
    "select_top_k",
    "warmup_sparsity",
]

MIN_HITS = 256
"""Expected sample values above the estimated threshold; sets the estimate's accuracy."""
OVERSAMPLE = 2.0
"""The threshold aims at this many times ``k`` candidates, so that it rarely gets fewer."""
WARMUP_START = 0.9
"""The sparsity of a job's first round (10% of the values sent), where the warm-up starts."""
WARMUP_ROUNDS = 13
"""Rounds of warm-up by default: round 14 of a job reaches the target sparsity."""


def warmup_sparsity(round_: int, target: float, warmup: int, start: float = WARMUP_START) -> float:
    """The sparsity of round ``round_`` (from 0): exponential warm-up, then ``target``.

    Round 0 has sparsity ``start``; the density then shrinks by one factor per round, so that
    round ``warmup`` reaches ``target``. A target at or below ``start`` needs no warm-up.

    >>> [round(warmup_sparsity(r, 0.999, 4, start=0.75), 4) for r in range(6)]  # the paper's
    [0.75, 0.9371, 0.9842, 0.996, 0.999, 0.999]
    >>> warmup_sparsity(0, 0.99, 0), warmup_sparsity(5, 0.99, 5), warmup_sparsity(0, 0.5, 3)
    (0.99, 0.99, 0.5)
    >>> round(warmup_sparsity(1, 0.999, 2), 4)  # halfway from density 0.1 to 0.001: 0.01
    0.99
    """
    if round_ >= warmup or start >= target:
        return target
    # 1 - density, density = (1 - start) * ((1 - target) / (1 - start)) ** (round_ / warmup),
    # computed without cancellation for small targets
    log_start = math.log1p(-start)
    log_density = log_start + round_ / warmup * (math.log1p(-target) - log_start)
    return min(target, -math.expm1(log_density))


def sampled_threshold(
    magnitudes: Vector,
    count: float,
    rng: np.random.Generator,
    sample: float = 0.01,
    min_hits: int = MIN_HITS,
) -> float:
    """A magnitude that about ``count`` of ``magnitudes`` reach, estimated from a sample.

    Draws ``max(sample * n, min_hits * n / count)`` magnitudes with replacement and returns the
    one ranked where ``count`` would be in the whole vector. Relative standard deviation of
    the resulting count: about ``1 / sqrt(min_hits)``. Exact when the sample would cover ``n``.

    >>> rng = np.random.default_rng(1)
    >>> mags = np.abs(rng.normal(size=1_000_000)).astype(np.float32)
    >>> int(np.count_nonzero(mags >= sampled_threshold(mags, 2000, rng)))
    2174
    """
    n = magnitudes.size
    count = min(float(n), count)
    if n == 0 or count <= 0:
        return math.inf
    drawn = math.ceil(max(sample * n, min_hits * n / count))
    if drawn >= n:
        return kth_largest(magnitudes, math.ceil(count))
    picks = magnitudes[rng.integers(0, n, drawn)]
    return kth_largest(picks, max(1, round(drawn * count / n)))


def select_top_k(
    magnitudes: Vector, k: int, rng: np.random.Generator, sample: float = 0.01
) -> tuple[npt.NDArray[np.int64], int]:
    """``(indices, candidates)``: the sorted top-k nonzero indices, found via a sampled threshold.

    ``candidates`` is how many values passed the threshold before the exact top-k among them
    (``magnitudes.size`` when the threshold undershot and the whole vector was searched).

    >>> rng = np.random.default_rng(2)
    >>> mags = np.abs(rng.normal(size=1_000_000)).astype(np.float32)
    >>> chosen, candidates = select_top_k(mags, 1000, rng)
    >>> bool(np.array_equal(chosen, top_k_indices(mags, 1000))), candidates
    (True, 1836)
    """
    threshold = sampled_threshold(magnitudes, OVERSAMPLE * k, rng, sample)
    if threshold > 0.0:
        candidates = np.flatnonzero(magnitudes >= threshold)
    else:
        candidates = np.flatnonzero(magnitudes)
    if candidates.size < k:
        return top_k_indices(magnitudes, k), magnitudes.size
    chosen = candidates[top_k_indices(magnitudes[candidates], k)]
    return chosen.astype(np.int64), int(candidates.size)


class DGCCodec(Codec):
    """Deep Gradient Compression for one update per round.

    Parameters
    ----------
    sparsity
        Target fraction of values held back, in [0, 1): 0.999 sends 0.1%.
    momentum
        Momentum of the velocity ``u`` across rounds, in [0, 1). See the module notes.
    clip
        Largest L2 norm of an update before accumulation; ``None`` for no clipping.
    warmup
        Rounds of exponential sparsity warm-up before the target is reached (13).
    start
        Sparsity of the warm-up's first round, in [0, 1) (0.9: 10% of the values sent).
    sample
        Fraction of the vector sampled to estimate the threshold, in (0, 1].
    seed
        Seed of the sampling, combined with the round number.
    values
        ``"fp16"`` (default; float32 when a value exceeds float16's range) or ``"fp32"``.
    level
        zlib level, 0 (no compression) to 9.
    """

    name: ClassVar[str] = "dgc"
    codec_id: ClassVar[int] = wire.DGC
    stateful: ClassVar[bool] = True

    def __init__(
        self,
        sparsity: float = 0.999,
        momentum: float = 0.0,
        clip: float | None = None,
        warmup: int = WARMUP_ROUNDS,
        start: float = WARMUP_START,
        sample: float = 0.01,
        seed: int = 0,
        values: wire.FloatValues = "fp16",
        level: int = 6,
    ) -> None:
        self.sparsity = check_sparsity(sparsity)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if clip is not None and not (clip > 0.0 and math.isfinite(clip)):
            raise ValueError(f"clip must be a positive L2 norm, got {clip}")
        if not 0 <= warmup <= 10_000:
            raise ValueError(f"warmup must be 0..10000 rounds, got {warmup}")
        if not (isinstance(start, int | float) and 0.0 <= start < 1.0):
            raise ValueError(f"start must be a sparsity in [0, 1), got {start}")
        if not 0.0 < sample <= 1.0:
            raise ValueError(f"sample must be a fraction in (0, 1], got {sample}")
        if not 0 <= seed < 2**63:
            raise ValueError(f"seed must be in [0, 2**63), got {seed}")
        if values not in ("fp16", "fp32"):
            raise ValueError(f"values must be 'fp16' or 'fp32', got {values!r}")
        if not 0 <= level <= 9:
            raise ValueError(f"zlib level must be 0..9, got {level}")
        self.momentum = float(momentum)
        self.clip = None if clip is None else float(clip)
        self.warmup = warmup
        self.start = float(start)
        self.sample = float(sample)
        self.seed = seed
        self.values: wire.FloatValues = values
        self.level = level
        self.last_candidates = 0
        """Values that passed the sampled threshold in the last ``encode``."""
        self._velocity: Vector | None = None
        self._accumulator: Vector | None = None
        self._round = 0
        self._job_round: int | None = None

    @property
    def round(self) -> int:
        """Rounds encoded since the state was fresh (seeds the sampling)."""
        return self._round

    @property
    def job_round(self) -> int | None:
        """The job's round set by ``start_round`` (sets the warm-up); None until then."""
        return self._job_round

    def start_round(self, round_: int) -> None:
        """The next ``encode`` is for round ``round_`` of the job (from 1): its warm-up step."""
        self._job_round = check_round(round_)

    @property
    def velocity(self) -> Vector:
        """The momentum ``u`` (a copy; empty before the first round)."""
        return np.zeros(0, np.float32) if self._velocity is None else self._velocity.copy()

    @property
    def accumulator(self) -> Vector:
        """The accumulated ``v`` not yet sent (a copy; empty before the first round)."""
        return np.zeros(0, np.float32) if self._accumulator is None else self._accumulator.copy()

    def current_sparsity(self) -> float:
        """The sparsity the next ``encode`` uses: the job round's warm-up step, if known."""
        step = self._round if self._job_round is None else self._job_round - 1
        return warmup_sparsity(step, self.sparsity, self.warmup, self.start)

    def _clipped(self, update: Vector) -> Vector:
        g = as_update(update)
        if self.clip is not None:
            norm = math.sqrt(float(np.dot(g.astype(np.float64), g.astype(np.float64))))
            if norm > self.clip:
                g = (g * np.float32(self.clip / norm)).astype(np.float32)
        return g

    def _accumulate(self, update: Vector) -> tuple[Vector, Vector]:
        """The new ``(u, v)`` after steps 1 and 2, without changing the state."""
        g = self._clipped(update)
        if self._velocity is None or self._accumulator is None:
            return g.copy(), g.copy()
        if self._velocity.size != g.size:
            raise ValueError(
                f"the DGC state is for {self._velocity.size} values, the update has {g.size}; "
                "call reset_state() after a model change"
            )
        with np.errstate(over="ignore", invalid="ignore"):
            velocity: Vector = self._velocity * np.float32(self.momentum) + g
            accumulator: Vector = self._accumulator + velocity
        if not (np.isfinite(velocity).all() and np.isfinite(accumulator).all()):
            raise ValueError("the update plus the DGC accumulator overflows float32")
        return velocity, accumulator

    def target(self, update: Vector) -> Vector:
        """The accumulator ``v`` after clipping and momentum correction."""
        return self._accumulate(update)[1]

    def encode(self, update: Vector) -> bytes:
        """Accumulate ``update``, send the top-k of ``v``, mask ``u`` and ``v`` where sent."""
        velocity, accumulator = self._accumulate(update)
        k = kept_count(accumulator.size, self.current_sparsity())
        rng = np.random.default_rng([self.seed, self._round])
        chosen, self.last_candidates = select_top_k(np.abs(accumulator), k, rng, self.sample)
        values = accumulator[chosen]
        payload = wire.encode_sparse(
            chosen,
            values,
            accumulator.size,
            codec_id=self.codec_id,
            value_type=self.values,
            level=self.level,
        )
        accumulator[chosen] = values - wire.as_sent(values, self.values)
        velocity[chosen] = 0.0
        self._velocity, self._accumulator = velocity, accumulator
        self._round += 1
        return payload

    def error_bound(self, update: Vector) -> float:
        """The (k+1)-th largest magnitude of the target, or the float16 rounding if larger."""
        magnitudes = np.abs(self.target(update))
        if magnitudes.size == 0:
            return 0.0
        held_back = kth_largest(
            magnitudes, kept_count(magnitudes.size, self.current_sparsity()) + 1
        )
        rounding = fp16_error(float(magnitudes.max())) if self.values == "fp16" else 0.0
        return max(held_back, rounding)

    def spec(self) -> str:
        """``dgc:SPARSITY`` followed by the options that differ from their defaults."""
        options = [repr(self.sparsity)]
        if self.momentum != 0.0:
            options.append(f"momentum={self.momentum!r}")
        if self.clip is not None:
            options.append(f"clip={self.clip!r}")
        if self.warmup != WARMUP_ROUNDS:
            options.append(f"warmup={self.warmup}")
        if self.start != WARMUP_START:
            options.append(f"start={self.start!r}")
        if self.sample != 0.01:
            options.append(f"sample={self.sample!r}")
        if self.seed != 0:
            options.append(f"seed={self.seed}")
        if self.values != "fp16":
            options.append(f"values={self.values}")
        if self.level != 6:
            options.append(f"level={self.level}")
        return "dgc:" + ",".join(options)

    def state_bytes(self) -> bytes:
        """The round counter, ``u`` and ``v``."""
        if self._velocity is None or self._accumulator is None:
            return pack_state(self.codec_id, self._round, [])
        return pack_state(self.codec_id, self._round, [self._velocity, self._accumulator])

    def load_state(self, data: bytes) -> None:
        """Restore ``state_bytes()``; ``b""`` means a fresh state."""
        if not data:
            self.reset_state()
            return
        self._round, vectors = unpack_state(data, self.codec_id, 2)
        self._velocity, self._accumulator = (vectors[0], vectors[1]) if vectors else (None, None)

    def reset_state(self) -> None:
        """Forget ``u``, ``v`` and the round counter (the warm-up starts over)."""
        self._velocity = self._accumulator = None
        self._round = 0
