from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _collect_garbage_after_each_test() -> None:
    """Override the suite-wide ``gc.collect()`` after each test with nothing.

    That collection exists so a leaked socket or file fails the test that leaked it. These tests
    are pure numpy math and open neither; with hypothesis' caches on the heap each collection
    costs about 40 ms, which for this directory's 160-odd tests was most of its run time.
    """
