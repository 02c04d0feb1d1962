"""Top-k with error feedback: k values a round, nothing lost across rounds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefleet.federated.compression import TopKCodec, from_spec, kept_count, top_k_indices
from edgefleet.federated.params import Vector

from .vectors import rounds_of, vectors


@settings(deadline=None, max_examples=40)
@given(
    updates=rounds_of(size=50, count=8, max_abs=1e3),
    sparsity=st.sampled_from([0.0, 0.5, 0.9, 0.98]),
    values=st.sampled_from(["fp16", "fp32"]),
)
def test_no_mass_is_lost_over_rounds(updates: list[Vector], sparsity: float, values: str) -> None:
    codec = TopKCodec(sparsity, values=values)  # type: ignore[arg-type]
    sent = np.zeros(50, np.float64)
    for update in updates:
        before = codec.target(update)
        decoded = codec.decode(codec.encode(update), 50)
        # Within a round nothing is lost, bit for bit: what went out plus what stayed is what
        # there was (update + previous residual, added in float32).
        assert np.array_equal(decoded + codec.residual, before)
        sent += decoded
    # Over all rounds: sum of decoded = sum of inputs - final residual, up to the float32
    # roundings of update + residual (one per round).
    inputs = np.sum(np.array(updates, np.float64), axis=0)
    scale = max(1.0, float(np.max(np.abs(np.cumsum(np.array(updates, np.float64), axis=0)))))
    tolerance = len(updates) * 2.0**-23 * scale * 4
    assert np.max(np.abs(sent - (inputs - codec.residual))) <= tolerance


@given(update=vectors(max_abs=1e6, min_size=1), sparsity=st.floats(0.0, 0.999))
def test_it_sends_k_values_or_every_nonzero(update: Vector, sparsity: float) -> None:
    codec = TopKCodec(sparsity)
    decoded = codec.decode(codec.encode(update), update.size)
    k = kept_count(update.size, sparsity)
    assert np.count_nonzero(decoded) <= k
    sent = np.flatnonzero(decoded)
    if np.count_nonzero(update) >= k:
        # exactly k entries are sent (an entry may decode to 0 only if float16 flushes it)
        assert len(sent) == k or np.any(np.abs(update) < 2.0**-24)
    held = np.abs(codec.residual)
    held[sent] = 0.0
    assert np.max(held, initial=0.0) <= np.min(np.abs(update[sent]), initial=np.inf)


def test_a_small_value_is_delayed_not_dropped() -> None:
    codec = TopKCodec(0.5)
    x = np.array([10.0, 0.3], np.float32)
    arrived = np.zeros(2, np.float32)
    for _ in range(40):
        arrived += codec.decode(codec.encode(x), 2)
    # 0.3 per round accumulates until it beats 10 and goes out; on average both arrive
    assert arrived[1] > 0
    assert abs((arrived[0] + codec.residual[0]) - 400.0) < 1e-3
    assert abs((arrived[1] + codec.residual[1]) - 12.0) < 1e-3


def test_kept_count_is_round_n_times_density_and_at_least_one() -> None:
    assert kept_count(11_700_000, 0.999) == 11_700
    assert kept_count(1_000_000, 0.99) == 10_000
    assert kept_count(3, 0.999) == 1
    assert kept_count(5, 0.0) == 5


def test_top_k_indices_are_the_largest_magnitudes_sorted() -> None:
    mags = np.array([0.5, 4.0, 0.0, 3.0, 1.0], np.float32)
    assert top_k_indices(mags, 3).tolist() == [1, 3, 4]
    assert top_k_indices(mags, 0).tolist() == []
    assert top_k_indices(mags, 10).tolist() == [0, 1, 3, 4]  # zeros are never sent


def test_a_model_change_needs_a_reset() -> None:
    codec = from_spec("topk:0.5")
    codec.encode(np.ones(4, np.float32))
    with pytest.raises(ValueError, match="residual is for 4 values, the update has 5"):
        codec.encode(np.ones(5, np.float32))
    codec.reset_state()
    codec.encode(np.ones(5, np.float32))


def test_an_overflowing_residual_is_refused_and_the_state_kept() -> None:
    codec = TopKCodec(0.5)
    big = np.array([3e38, 3e38], np.float32)
    codec.encode(big)
    state = codec.state_bytes()
    with pytest.raises(ValueError, match="overflows float32"):
        codec.encode(big)
    assert codec.state_bytes() == state
