"""DGC: warm-up schedule, sampled threshold, momentum correction and masking, clipping."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefleet.federated.compression import (
    DGCCodec,
    TopKCodec,
    kept_count,
    sampled_threshold,
    select_top_k,
    top_k_indices,
    warmup_sparsity,
)


def test_the_papers_schedule_is_start_75_percent_over_4_rounds() -> None:
    schedule = [warmup_sparsity(r, 0.999, 4, start=0.75) for r in range(6)]
    assert [round(100 * s, 1) for s in schedule] == [75.0, 93.7, 98.4, 99.6, 99.9, 99.9]
    assert schedule[4] == 0.999


def test_the_default_warm_up_sends_10_percent_then_falls_to_the_target_over_13_rounds() -> None:
    """A federated job learns most in its first rounds: the bytes go there, not all in round 1.

    The paper's schedule sent 25% in a job's first round and the target from round 5 on; a
    default ``dgc:0.999`` job then ended 1.1-3.3 points below dense with 25% dropout.
    """
    codec = DGCCodec(0.999)
    density = []
    for round_ in range(1, 17):
        codec.start_round(round_)
        density.append(1 - codec.current_sparsity())
    assert density[0] == pytest.approx(0.10)
    assert all(later < earlier for earlier, later in itertools.pairwise(density[:14]))
    assert density[:13] > [0.001] * 13
    assert density[13:] == pytest.approx([0.001] * 3)
    assert sum(density) < 0.35  # about what the paper's schedule spends (0.334 of a model)


@given(
    target=st.floats(0.0, 0.9999),
    warmup=st.integers(0, 20),
    start=st.floats(0.0, 0.9999),
)
def test_the_warmup_reaches_the_target_at_round_warmup(
    target: float, warmup: int, start: float
) -> None:
    schedule = [warmup_sparsity(r, target, warmup, start) for r in range(warmup + 3)]
    assert schedule[warmup:] == [target] * 3
    # it rises (weakly) to the target, the density shrinking by one factor per round
    assert all(a <= b for a, b in itertools.pairwise(schedule))
    if warmup and start < target:
        assert schedule[0] == pytest.approx(start, abs=1e-12)
        ratios = [(1 - schedule[r + 1]) / (1 - schedule[r]) for r in range(warmup)]
        factor = ((1 - target) / (1 - start)) ** (1 / warmup)
        assert ratios == pytest.approx([factor] * warmup, rel=1e-6)
    else:  # a target at or below the start needs no warm-up
        assert schedule == [target] * (warmup + 3)


def test_the_codec_sends_the_scheduled_count_each_round() -> None:
    codec = DGCCodec(0.999, warmup=4)
    n = 20_000
    rng = np.random.default_rng(0)
    for r in range(7):
        assert codec.current_sparsity() == warmup_sparsity(r, 0.999, 4)
        decoded = codec.decode(codec.encode(rng.normal(size=n).astype(np.float32)), n)
        assert np.count_nonzero(decoded) == kept_count(n, warmup_sparsity(r, 0.999, 4))
    assert codec.round == 7
    assert codec.current_sparsity() == 0.999


DISTRIBUTIONS = ["normal", "laplace", "lognormal", "uniform", "sparse-normal"]


def magnitudes(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "normal":
        x = rng.normal(size=n)
    elif kind == "laplace":
        x = rng.laplace(size=n)
    elif kind == "lognormal":
        x = rng.lognormal(sigma=3.0, size=n)
    elif kind == "uniform":
        x = rng.uniform(size=n)
    else:  # most entries exactly zero, as after several rounds of masking
        x = rng.normal(size=n) * (rng.uniform(size=n) < 0.3)
    return np.abs(x).astype(np.float32)


@settings(deadline=None, max_examples=30)
@given(
    kind=st.sampled_from(DISTRIBUTIONS),
    n=st.integers(20_000, 400_000),
    density=st.sampled_from([0.25, 0.05, 0.01, 0.001, 0.0001]),
    seed=st.integers(0, 2**32),
)
def test_the_sampled_threshold_keeps_about_the_asked_count(
    kind: str, n: int, density: float, seed: int
) -> None:
    """Stated accuracy: aiming at c values, 0.5c..1.5c pass (the std is about 6%)."""
    rng = np.random.default_rng(seed)
    mags = magnitudes(kind, n, rng)
    count = 2 * kept_count(n, 1 - density)
    threshold = sampled_threshold(mags, count, rng)
    passed = int(np.count_nonzero(mags >= threshold))
    nonzero = int(np.count_nonzero(mags))
    if count <= nonzero:
        assert 0.5 * count <= passed <= 1.5 * count
    k = count // 2
    chosen, candidates = select_top_k(mags, k, rng)
    assert np.array_equal(chosen, top_k_indices(mags, k))
    assert candidates >= min(k, nonzero)


def test_the_sampled_threshold_is_unbiased_enough_on_average() -> None:
    rng = np.random.default_rng(7)
    mags = magnitudes("normal", 1_000_000, rng)
    counts = [np.count_nonzero(mags >= sampled_threshold(mags, 2000, rng)) for _ in range(40)]
    assert abs(np.mean(counts) / 2000 - 1) < 0.03
    assert np.std(counts) / 2000 < 0.1  # 1/sqrt(256) = 6%


def test_without_momentum_or_clipping_dgc_is_top_k_with_warmup() -> None:
    rng = np.random.default_rng(3)
    dgc = DGCCodec(0.99, momentum=0.0, warmup=0)
    topk = TopKCodec(0.99)
    for _ in range(5):
        update = rng.normal(size=50_000).astype(np.float32)
        a = dgc.decode(dgc.encode(update), update.size)
        b = topk.decode(topk.encode(update), update.size)
        assert np.array_equal(a, b)
        assert np.array_equal(dgc.accumulator, topk.residual)


def test_momentum_correction_and_factor_masking() -> None:
    codec = DGCCodec(0.5, momentum=0.9, warmup=0, values="fp32")
    g = np.array([4.0, 1.0, -3.0, 0.5], np.float32)
    sent = codec.decode(codec.encode(g), 4)
    assert sent.tolist() == [4.0, 0.0, -3.0, 0.0]
    # u = g, v = u; sent coordinates of both u and v are zeroed
    assert codec.velocity.tolist() == [0.0, 1.0, 0.0, 0.5]
    assert codec.accumulator.tolist() == [0.0, 1.0, 0.0, 0.5]
    zero = np.zeros(4, np.float32)
    codec.encode(zero)
    # u = 0.9 u + 0 = [0, .9, 0, .45]; v = v + u = [0, 1.9, 0, .95]; both then sent and masked
    assert codec.velocity.tolist() == [0.0, 0.0, 0.0, 0.0]
    assert codec.accumulator.tolist() == [0.0, 0.0, 0.0, 0.0]


def test_momentum_makes_a_waiting_value_grow_like_momentum_sgd() -> None:
    codec = DGCCodec(0.5, momentum=0.5, warmup=0, values="fp32")
    g = np.array([100.0, 1.0], np.float32)
    for _ in range(30):
        codec.encode(g)
    # coordinate 1 never gets sent: v grows by u, and u tends to g / (1 - m) = 2 per round
    assert codec.velocity[1] == pytest.approx(2.0, rel=1e-6)
    assert codec.accumulator[1] > 50


def test_clipping_bounds_the_norm_before_accumulation() -> None:
    codec = DGCCodec(0.0, clip=1.0, warmup=0, values="fp32")
    g = np.array([3.0, 4.0], np.float32)  # norm 5
    out = codec.decode(codec.encode(g), 2)
    assert out.tolist() == pytest.approx([0.6, 0.8])
    assert math.isclose(float(np.linalg.norm(out)), 1.0, rel_tol=1e-6)
    small = np.array([0.3, 0.4], np.float32)
    assert codec.decode(codec.encode(small), 2).tolist() == pytest.approx([0.3, 0.4])


def test_the_sampling_is_reproducible_from_seed_and_round() -> None:
    rng = np.random.default_rng(5)
    updates = [rng.normal(size=300_000).astype(np.float32) for _ in range(3)]
    a, b = DGCCodec(0.999, seed=1), DGCCodec(0.999, seed=1)
    assert [a.encode(u) for u in updates] == [b.encode(u) for u in updates]


def test_a_model_change_needs_a_reset() -> None:
    codec = DGCCodec(0.9)
    codec.encode(np.ones(10, np.float32))
    with pytest.raises(ValueError, match="state is for 10 values, the update has 3"):
        codec.encode(np.ones(3, np.float32))
    codec.reset_state()
    assert codec.round == 0
    codec.encode(np.ones(3, np.float32))


BAD_SETTINGS: list[tuple[dict[str, float], str]] = [
    ({"momentum": 1.0}, "momentum must be in"),
    ({"clip": 0.0}, "clip must be a positive"),
    ({"clip": math.inf}, "clip must be a positive"),
    ({"warmup": -1}, "warmup must be"),
    ({"sample": 0.0}, "sample must be"),
    ({"seed": -1}, "seed must be"),
    ({"sparsity": 1.0}, "sparsity is the fraction"),
]


def test_bad_settings_are_value_errors() -> None:
    for kwargs, message in BAD_SETTINGS:
        with pytest.raises(ValueError, match=message):
            DGCCodec(**kwargs)  # type: ignore[arg-type]
