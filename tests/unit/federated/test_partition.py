"""Partitioning into client shards: every example once, reproducible, label skew as asked."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefleet.errors import ConfigurationError
from edgefleet.federated.partition import (
    PartitionSpec,
    PartitionSpecError,
    dirichlet,
    from_spec,
    iid,
    partition,
)

labels_st = st.lists(st.integers(0, 9), min_size=20, max_size=300).map(
    lambda xs: np.asarray(xs, np.int64)
)
specs = st.sampled_from(["iid", "dirichlet:0.1", "dirichlet:0.5", "dirichlet:100"])


@settings(deadline=None, max_examples=60)
@given(labels=labels_st, clients=st.integers(1, 8), spec=specs, seed=st.integers(0, 2**31))
def test_every_example_is_in_exactly_one_shard(
    labels: np.ndarray, clients: int, spec: str, seed: int
) -> None:
    try:
        shards = partition(labels, clients, spec, seed=seed)
    except ValueError as exc:  # a tiny alpha over many clients may find no usable draw
        if "no Dirichlet" not in str(exc):
            raise
        return
    assert len(shards) == clients
    everything = np.concatenate(shards)
    assert np.array_equal(np.sort(everything), np.arange(len(labels)))
    assert all(len(s) >= 1 for s in shards)
    assert all(s.dtype == np.int64 and np.array_equal(s, np.sort(s)) for s in shards)


@settings(deadline=None, max_examples=30)
@given(labels=labels_st, clients=st.integers(1, 6), spec=specs, seed=st.integers(0, 2**31))
def test_the_same_seed_gives_the_same_shards(
    labels: np.ndarray, clients: int, spec: str, seed: int
) -> None:
    try:
        first = partition(labels, clients, spec, seed=seed)
    except ValueError:
        return
    second = partition(labels, clients, spec, seed=seed)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_different_seeds_give_different_shards() -> None:
    labels = np.repeat(np.arange(10), 30)
    a, b = dirichlet(labels, 5, 0.5, seed=0), dirichlet(labels, 5, 0.5, seed=1)
    assert any(not np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_iid_shards_are_balanced() -> None:
    sizes = [len(s) for s in iid(np.zeros(103), 10, seed=0)]
    assert max(sizes) - min(sizes) <= 1


def _classes_per_client(shards: list[np.ndarray], labels: np.ndarray) -> float:
    """Mean number of classes making up 90% of a client's examples."""
    counts = []
    for shard in shards:
        share = np.sort(np.bincount(labels[shard], minlength=10))[::-1] / len(shard)
        counts.append(int(np.searchsorted(np.cumsum(share), 0.9)) + 1)
    return float(np.mean(counts))


def test_small_alpha_skews_labels_more_than_large_alpha() -> None:
    labels = np.repeat(np.arange(10), 100)
    skewed = _classes_per_client(dirichlet(labels, 10, 0.1, seed=0), labels)
    even = _classes_per_client(dirichlet(labels, 10, 100.0, seed=0), labels)
    assert skewed < 5 < even


def test_specs_parse_and_print() -> None:
    assert from_spec("iid") == PartitionSpec("iid")
    assert from_spec(" dirichlet:0.5 ") == PartitionSpec("dirichlet", 0.5)
    assert str(from_spec("dirichlet:0.5")) == "dirichlet:0.5"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("zipf", "unknown partition 'zipf'"),
        ("dirichlet", "needs a concentration"),
        ("dirichlet:", "needs a concentration"),
        ("dirichlet:abc", "'abc' is not a number"),
        ("dirichlet:0", "must be a finite number > 0"),
        ("dirichlet:inf", "must be a finite number > 0"),
        ("iid:3", "iid takes no parameter"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(PartitionSpecError, match=message) as info:
        from_spec(spec)
    assert isinstance(info.value, ConfigurationError)


def test_too_many_clients_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot give 5 clients"):
        dirichlet(np.zeros(3), 5, 1.0)
    with pytest.raises(ValueError, match="at least one client"):
        iid(np.zeros(3), 0)
