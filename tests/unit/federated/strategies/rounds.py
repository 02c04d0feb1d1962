"""Hypothesis generators for aggregation rounds: a global model and client updates."""

from __future__ import annotations

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgefleet.federated.params import Vector
from edgefleet.federated.strategies import ClientUpdate

property_test = settings(max_examples=40, deadline=None)
"""Settings for the property tests here: 40 rounds each keeps the directory at a few seconds."""

BOUND = 1e3
"""Generated values lie in [-BOUND, BOUND]: big enough to matter, far from float32 limits."""


def vectors(size: int, bound: float = BOUND) -> st.SearchStrategy[Vector]:
    return hnp.arrays(np.float32, size, elements=st.floats(-bound, bound, width=32))


sizes = st.integers(min_value=1, max_value=12)
weights = st.integers(min_value=1, max_value=10_000)


@st.composite
def updates_of_size(
    draw: st.DrawFn, size: int, min_updates: int = 1, max_updates: int = 8
) -> list[ClientUpdate]:
    count = draw(st.integers(min_value=min_updates, max_value=max_updates))
    return [ClientUpdate(draw(vectors(size)), draw(weights)) for _ in range(count)]


@st.composite
def rounds(
    draw: st.DrawFn, min_updates: int = 1, max_updates: int = 8
) -> tuple[Vector, list[ClientUpdate]]:
    """A global model and between ``min_updates`` and ``max_updates`` updates for it."""
    size = draw(sizes)
    return draw(vectors(size)), draw(updates_of_size(size, min_updates, max_updates))


def assert_close(actual: Vector, expected: Vector) -> None:
    """Equal up to float32 rounding of the result (a few ulps, or 1e-6 near zero)."""
    assert actual.dtype == np.float32
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-6)
