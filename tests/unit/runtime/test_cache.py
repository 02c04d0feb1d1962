from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from edgefleet.errors import ConfigurationError, ModelUnavailableError
from edgefleet.runtime import ModelCache


def test_hits_and_least_recently_used_eviction(
    digits_path: Path, detector_path: Path, echo_path: Path, one_digit: NDArray[np.float32]
) -> None:
    sizes = {p: p.stat().st_size for p in (digits_path, detector_path, echo_path)}
    cache = ModelCache(budget_bytes=sizes[digits_path] + sizes[echo_path])
    digits = cache.get(digits_path)
    assert cache.get(digits_path) is digits
    detector = cache.get(detector_path)
    cache.get(digits_path)  # digits is now the most recently used
    cache.get(echo_path)  # over budget: the detector goes
    assert (cache.hits, cache.misses, cache.evictions) == (2, 3, 1)
    assert detector.closed
    assert not digits.closed
    assert cache.used_bytes <= cache.budget_bytes
    digits.predict({"input": one_digit})
    with pytest.raises(ModelUnavailableError):
        detector.predict({"image": np.zeros((1, 1, 32, 32), np.float32)})


def test_a_model_over_budget_alone_is_kept(digits_path: Path) -> None:
    cache = ModelCache(budget_bytes=1)
    model = cache.get(digits_path)
    assert len(cache) == 1
    assert not model.closed


def test_different_options_are_different_entries(digits_path: Path) -> None:
    cache = ModelCache(budget_bytes=10**9)
    assert cache.get(digits_path, nan_policy="reject") is not cache.get(digits_path)


def test_budget_must_be_positive() -> None:
    with pytest.raises(ConfigurationError, match="positive"):
        ModelCache(0)
