"""Shared fixtures: models built from code (cached across runs in .cache/models)."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from edgefleet.testing.demo_assets import write_demo_assets
from edgefleet.testing.models import (
    DigitsData,
    build_detector,
    build_digits_classifier,
    build_echo_model,
    digits_data,
)

MODEL_CACHE = Path(__file__).resolve().parents[1] / ".cache" / "models"

# netguard/sitecustomize.py is for subprocesses (see tests/e2e/netguard.py); where the
# interpreter already loaded a sitecustomize of its own, a second one cannot be imported here.
collect_ignore = ["netguard/sitecustomize.py"] if "sitecustomize" in sys.modules else []


@pytest.fixture(autouse=True)
def _collect_garbage_after_each_test() -> Iterator[None]:
    """Collect garbage at teardown so a leaked socket or file fails the test that leaked it."""
    yield
    gc.collect()


@pytest.fixture(scope="session")
def model_cache() -> Path:
    return MODEL_CACHE


@pytest.fixture(scope="session")
def digits_path() -> Path:
    return build_digits_classifier(MODEL_CACHE)


@pytest.fixture(scope="session")
def detector_path() -> Path:
    return build_detector(MODEL_CACHE)


@pytest.fixture(scope="session")
def echo_path() -> Path:
    return build_echo_model(MODEL_CACHE)


@pytest.fixture(scope="session")
def digits() -> DigitsData:
    return digits_data()


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    write_demo_assets(out, cache_dir=MODEL_CACHE)
    return out


@pytest.fixture
def one_digit(digits: DigitsData) -> NDArray[np.float32]:
    return digits.x_holdout[:1].copy()
