"""Shared fixtures: models built from code (cached across runs in .cache/models), and the
network audit hook every subprocess of the suite runs under."""

from __future__ import annotations

import gc
import os
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
from tests.e2e.netguard import guarded_env, report

MODEL_CACHE = Path(__file__).resolve().parents[1] / ".cache" / "models"

# netguard/sitecustomize.py is for subprocesses (see tests/e2e/netguard.py); where the
# interpreter already loaded a sitecustomize of its own, a second one cannot be imported here.
collect_ignore = ["netguard/sitecustomize.py"] if "sitecustomize" in sys.modules else []


@pytest.fixture(scope="session", autouse=True)
def nothing_phones_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Put every subprocess of the session under the network audit hook; fail if any reached out.

    The variables go into this process's environment, which every subprocess inherits (and
    :func:`edgefleet.testing.fleet.subprocess_env` keeps the hook's ``PYTHONPATH`` entry when a
    test adds its own): the servers, agents and CLI runs of the end-to-end tests, and the
    processes Ray starts for the simulation tests. At the end of the session the log must be
    empty.
    """
    log = tmp_path_factory.mktemp("netguard") / "connections.jsonl"
    with pytest.MonkeyPatch.context() as patch:
        for name, value in guarded_env(log, os.environ.get("PYTHONPATH")).items():
            patch.setenv(name, value)
        yield log
    message = report(log)
    if message is not None:
        pytest.fail(message, pytrace=False)


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
