"""The Gaussian mechanism: clipping bounds each update, noise has the stated spread, seeds replay.

The statistical checks draw about a million noise values. The sample standard deviation of
``N`` Gaussian draws has a relative standard error of ``1 / sqrt(2N)`` (0.07% at ``N = 2**20``),
so a 1% tolerance is more than 10 standard errors: a correct mechanism fails with probability
far below 1e-20, while a wrong scale (``C`` instead of ``z * C``, ``n`` instead of
``sqrt(n)``) misses by 10% or more. Seeds are fixed, so the tests are deterministic anyway.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgefleet.federated.params import Vector
from edgefleet.federated.privacy.gaussian import (
    GaussianMechanism,
    clip_update,
    l2_norm,
    private_mean,
    privatize_update,
)

LARGE = 2**20
REL_TOL = 0.01


def vectors(max_abs: float | None = None) -> st.SearchStrategy[Vector]:
    """Float32 vectors of 0 to 200 values: any finite float32, or within ``max_abs``."""
    if max_abs is None:
        elements = st.floats(allow_nan=False, allow_infinity=False, width=32)
    else:
        elements = st.floats(-max_abs, max_abs, allow_nan=False, width=32)
    return hnp.arrays(np.float32, st.integers(0, 200), elements=elements)


clip_norms = st.floats(1e-6, 1e6)


def relay(clip_norm: float = 1.0, noise_multiplier: float = 1.1) -> GaussianMechanism:
    return GaussianMechanism(clip_norm=clip_norm, noise_multiplier=noise_multiplier, at="relay")


def device(clip_norm: float = 1.0, noise_multiplier: float = 1.1) -> GaussianMechanism:
    return GaussianMechanism(clip_norm=clip_norm, noise_multiplier=noise_multiplier, at="device")


# Clipping


@given(vectors(), clip_norms)
def test_clipping_never_increases_the_norm_or_any_coordinate(
    update: Vector, clip_norm: float
) -> None:
    clipped, _ = clip_update(update, clip_norm)
    assert clipped.dtype == np.float32
    assert clipped.shape == update.shape
    assert l2_norm(clipped) <= l2_norm(update)
    assert np.all(np.abs(clipped) <= np.abs(update))


@given(vectors(), clip_norms)
def test_a_clipped_update_has_the_clip_norm(update: Vector, clip_norm: float) -> None:
    clipped, was_clipped = clip_update(update, clip_norm)
    assert was_clipped == (l2_norm(update) > clip_norm)
    if was_clipped:
        assert l2_norm(clipped) == pytest.approx(clip_norm, rel=1e-6)
    else:
        assert l2_norm(clipped) <= clip_norm


@given(vectors(max_abs=1.0), st.floats(15.0, 1e6))
def test_short_updates_come_back_untouched(update: Vector, clip_norm: float) -> None:
    # 200 values of at most 1 have a norm of at most sqrt(200) < 15.
    clipped, was_clipped = clip_update(update, clip_norm)
    assert not was_clipped
    assert clipped.tobytes() == update.tobytes()


@given(vectors(max_abs=1e6), clip_norms)
def test_clipping_keeps_the_direction(update: Vector, clip_norm: float) -> None:
    clipped, was_clipped = clip_update(update, clip_norm)
    if was_clipped:
        factor = clip_norm / l2_norm(update)
        expected = update.astype(np.float64) * factor
        assert np.allclose(clipped, expected, rtol=1e-6, atol=clip_norm * 1e-6)


def test_clipping_scales_by_the_norm() -> None:
    clipped, was_clipped = clip_update(np.array([3.0, 4.0], np.float32), 1.0)
    assert was_clipped
    assert clipped.tolist() == pytest.approx([0.6, 0.8])


def test_clipping_the_largest_float32_values_to_a_tiny_norm_keeps_precision() -> None:
    # clip / norm is below float32's normal range here.
    huge = np.array([3e38, -3e38], np.float32)
    clipped, was_clipped = clip_update(huge, 1e-6)
    assert was_clipped
    assert l2_norm(clipped) == pytest.approx(1e-6, rel=1e-6)
    assert clipped[0] > 0 > clipped[1]


def test_clipping_returns_a_copy_and_leaves_the_input_alone() -> None:
    short = np.array([0.1, 0.2], np.float32)
    long = np.array([30.0, 40.0], np.float32)
    for update in (short, long):
        before = update.copy()
        clipped, _ = clip_update(update, 1.0)
        clipped += 1
        assert np.array_equal(update, before)


def test_clipping_zero_and_empty_updates() -> None:
    zero, was_clipped = clip_update(np.zeros(4, np.float32), 1.0)
    assert not was_clipped
    assert zero.tolist() == [0.0] * 4
    empty, was_clipped = clip_update(np.zeros(0, np.float32), 1.0)
    assert (empty.size, was_clipped) == (0, False)


# Device placement


def test_device_noise_has_standard_deviation_z_times_c() -> None:
    mechanism = device(clip_norm=0.5, noise_multiplier=1.1)
    noised, was_clipped = privatize_update(
        np.zeros(LARGE, np.float32), mechanism, np.random.default_rng(1)
    )
    assert not was_clipped
    std = 0.5 * 1.1
    assert mechanism.noise_std == pytest.approx(std)
    assert float(noised.std()) == pytest.approx(std, rel=REL_TOL)
    # Centred: the sample mean's standard error is std / sqrt(N); allow 6 of them.
    assert abs(float(noised.mean())) < 6 * std / math.sqrt(LARGE)
    # Gaussian, not merely of the right spread: 68.27% within one std (standard error 0.05%).
    within = float(np.mean(np.abs(noised) < std))
    assert within == pytest.approx(0.6827, abs=0.005)


def test_device_noise_is_added_after_clipping() -> None:
    mechanism = device(clip_norm=1.0, noise_multiplier=1.1)
    update = np.full(10_000, 0.1, np.float32)  # norm 10: clipped to 1
    noised, was_clipped = privatize_update(update, mechanism, np.random.default_rng(5))
    noise_only, _ = privatize_update(np.zeros_like(update), mechanism, np.random.default_rng(5))
    assert was_clipped
    clipped, _ = clip_update(update, 1.0)
    assert np.allclose(noised - noise_only, clipped, atol=1e-5)


def test_the_mean_of_device_noised_updates_has_z_c_over_root_n() -> None:
    mechanism = device(clip_norm=1.0, noise_multiplier=1.1)
    rng = np.random.default_rng(2)
    n = 16
    noised = [
        privatize_update(np.zeros(LARGE // 4, np.float32), mechanism, rng)[0] for _ in range(n)
    ]
    mean = np.mean(noised, axis=0)
    assert mechanism.mean_noise_std(n) == pytest.approx(1.1 / 4)
    assert float(mean.std()) == pytest.approx(mechanism.mean_noise_std(n), rel=REL_TOL)


# Relay placement


@pytest.mark.parametrize("n", [1, 4, 16])
def test_relay_noise_on_the_mean_scales_as_z_c_over_n(n: int) -> None:
    mechanism = relay(clip_norm=2.0, noise_multiplier=1.1)
    update = np.full(LARGE, 1e-4, np.float32)  # norm 0.1: not clipped
    mean, clipped_count = private_mean([update] * n, mechanism, np.random.default_rng(n))
    assert clipped_count == 0
    expected = 2.0 * 1.1 / n
    assert mechanism.mean_noise_std(n) == pytest.approx(expected)
    assert float((mean - update).std()) == pytest.approx(expected, rel=REL_TOL)
    assert abs(float((mean - update).mean())) < 6 * expected / math.sqrt(LARGE)


def test_relay_mean_is_the_unweighted_mean_of_the_clipped_updates() -> None:
    updates = [
        np.array([0.5, 0.0, 0.0], np.float32),  # norm 0.5: kept
        np.array([0.0, 3.0, 4.0], np.float32),  # norm 5: clipped to [0, 0.6, 0.8]
        np.array([0.0, 0.0, 0.0], np.float32),
    ]
    mechanism = relay(clip_norm=1.0, noise_multiplier=1.0)
    mean, clipped_count = private_mean(updates, mechanism, np.random.default_rng(3))
    noise_only, _ = private_mean([np.zeros(3, np.float32)] * 3, mechanism, np.random.default_rng(3))
    assert clipped_count == 1
    assert (mean - noise_only).tolist() == pytest.approx([0.5 / 3, 0.6 / 3, 0.8 / 3], abs=1e-6)


def test_relay_mean_ignores_how_many_examples_a_device_had() -> None:
    # The mean is over updates, never weighted; a tiny z makes the noise negligible here.
    updates = [np.array([1.0, 0.0], np.float32), np.array([0.0, 1.0], np.float32)]
    mean, _ = private_mean(updates, relay(noise_multiplier=1e-9), np.random.default_rng(0))
    assert mean.tolist() == pytest.approx([0.5, 0.5], abs=1e-6)


def test_relay_mean_leaves_the_updates_alone() -> None:
    updates = [np.array([0.1, 0.2], np.float32), np.array([3.0, 4.0], np.float32)]
    before = [update.copy() for update in updates]
    private_mean(updates, relay(), np.random.default_rng(0))
    assert all(np.array_equal(u, b) for u, b in zip(updates, before, strict=True))


# Reproducibility


def test_the_same_seed_gives_the_same_output() -> None:
    update = np.linspace(-1, 1, 1000, dtype=np.float32)
    one, _ = privatize_update(update, device(), np.random.default_rng(42))
    two, _ = privatize_update(update, device(), np.random.default_rng(42))
    other, _ = privatize_update(update, device(), np.random.default_rng(43))
    assert one.tobytes() == two.tobytes()
    assert one.tobytes() != other.tobytes()
    mean_one, _ = private_mean([update] * 3, relay(), np.random.default_rng(42))
    mean_two, _ = private_mean([update] * 3, relay(), np.random.default_rng(42))
    assert mean_one.tobytes() == mean_two.tobytes()


# Bad inputs


def test_each_placement_refuses_the_other_ones_function() -> None:
    rng = np.random.default_rng(0)
    update = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match=r"private_mean adds noise on the relay.*'device'"):
        private_mean([update], device(), rng)
    with pytest.raises(ValueError, match=r"privatize_update adds noise on the device.*'relay'"):
        privatize_update(update, relay(), rng)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"clip_norm": 0.0, "noise_multiplier": 1.0}, "clip_norm must be > 0, got 0.0"),
        ({"clip_norm": -1.0, "noise_multiplier": 1.0}, "clip_norm must be > 0"),
        ({"clip_norm": math.nan, "noise_multiplier": 1.0}, "clip_norm must be a finite number"),
        ({"clip_norm": True, "noise_multiplier": 1.0}, "clip_norm must be a number"),
        ({"clip_norm": 1.0, "noise_multiplier": 0.0}, "noise_multiplier must be > 0"),
        ({"clip_norm": 1.0, "noise_multiplier": math.inf}, "noise_multiplier must be a finite"),
        ({"clip_norm": 1.0, "noise_multiplier": 1.0, "at": "server"}, "at must be 'device' or"),
    ],
)
def test_bad_mechanisms_are_refused_naming_the_parameter(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        GaussianMechanism(**kwargs)  # type: ignore[arg-type]


def test_bad_updates_are_refused_naming_the_update() -> None:
    rng = np.random.default_rng(0)
    good = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match=r"update has 1 non-finite values .*index 1"):
        clip_update(np.array([0.0, np.nan, 1.0], np.float32), 1.0)
    with pytest.raises(ValueError, match="update must be a flat vector, got shape"):
        clip_update(np.zeros((2, 2), np.float32), 1.0)
    with pytest.raises(ValueError, match="update must be numeric"):
        clip_update(np.array(["a"]), 1.0)
    with pytest.raises(ValueError, match="clip_norm must be > 0"):
        clip_update(good, 0.0)
    with pytest.raises(ValueError, match=r"update 1 has 1 non-finite values"):
        private_mean([good, np.array([0, 0, np.inf], np.float32)], relay(), rng)
    with pytest.raises(ValueError, match="update 2 has 4 values, but update 0 has 3"):
        private_mean([good, good, np.zeros(4, np.float32)], relay(), rng)
    with pytest.raises(ValueError, match="at least one update"):
        private_mean([], relay(), rng)
    with pytest.raises(ValueError, match="non-finite values as float32"):
        privatize_update(np.array([1e300]), device(), rng)


def test_the_random_generator_must_be_a_numpy_generator() -> None:
    with pytest.raises(TypeError, match=r"numpy Generator \(np.random.default_rng\(seed\)\)"):
        privatize_update(np.zeros(3, np.float32), device(), 42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="got RandomState"):
        private_mean(
            [np.zeros(3, np.float32)],
            relay(),
            np.random.RandomState(0),  # type: ignore[arg-type]
        )


def test_mean_noise_std_needs_a_positive_count() -> None:
    with pytest.raises(ValueError, match="updates must be >= 1, got 0"):
        device().mean_noise_std(0)
