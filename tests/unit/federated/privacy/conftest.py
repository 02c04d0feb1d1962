from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _collect_garbage_after_each_test() -> None:
    """Override the suite-wide ``gc.collect()`` after each test with nothing.

    That collection exists so a leaked socket or file fails the test that leaked it. These tests
    are pure numpy math and open neither; with hypothesis' and dp-accounting's objects on the
    heap each collection costs about a quarter of a second, more than most tests here.
    """
