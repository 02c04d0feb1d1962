"""The health watch on a busy CPU: it keeps a model as fast as the previous one, and it still
rolls back a model twenty times slower.

Real ONNX Runtime sessions serve real calls through the updater. The previous model serves its
calls first; then busy-loop processes load every core (as when other work starts on a shared
device) while the new model is watched, so the new model's calls also carry the scheduler's
delays that the previous model's did not. The models are built in code: the same
matrix-product chain, 2 products for the fast ones (about 0.15 ms a call, alone) and 64 for the
slow one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from edgefleet.agent.health import HealthPolicy, HealthVerdict
from tests.unit.agent.models import slow_model
from tests.unit.agent.rig import Rig

POLICY = HealthPolicy(period_s=60, min_requests=20)  # the agent's default latency rule
HOG = "import sys; print('busy', flush=True)\nwhile True: pass"


@pytest.fixture
def cpu_hog() -> Iterator[Callable[[], None]]:
    """Starts one busy-loop process per core (at least two); returns once all of them spin."""
    hogs: list[subprocess.Popen[str]] = []

    def start() -> None:
        for _ in range(max(2, os.cpu_count() or 2)):
            hogs.append(
                subprocess.Popen([sys.executable, "-c", HOG], stdout=subprocess.PIPE, text=True)
            )
        for hog in hogs:
            assert hog.stdout is not None
            assert hog.stdout.readline() == "busy\n"

    try:
        yield start
    finally:
        for hog in hogs:
            hog.kill()
            hog.communicate()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _serve_previous_model(rig: Rig, clock: Clock) -> None:
    rig.updater = rig.new_updater(POLICY, monotonic=clock)
    assert rig.apply(rig.stage(slow_model(1, size=128, rounds=2), 1), 1)
    for _ in range(300):
        rig.predict()


def _serve_and_watch(rig: Rig, calls: int) -> list[HealthVerdict]:
    """``calls`` calls of the active model, the watch judging after every ten."""
    verdicts = []
    for call in range(1, calls + 1):
        rig.predict()
        if call % 10 == 0:
            verdict = rig.updater.check_health()
            if verdict is None:
                break
            verdicts.append(verdict)
            if verdict.done:
                break
    return verdicts


def test_a_model_as_fast_as_the_previous_one_is_kept_under_load(
    rig: Rig, cpu_hog: Callable[[], None]
) -> None:
    clock = Clock()
    _serve_previous_model(rig, clock)
    assert rig.apply(rig.stage(slow_model(2, size=128, rounds=2), 2), 2)
    cpu_hog()

    verdicts = _serve_and_watch(rig, 600)

    assert [v.reason for v in verdicts if v.status != "watching"] == []
    clock.now = POLICY.period_s
    final = rig.updater.check_health()
    assert final is not None
    assert final.status == "passed"
    assert "latency judged in 12 windows of 50+ calls, never slow 3 in a row" in final.reason
    assert rig.predict()[0, 0] == 2.0
    assert "rolled_back" not in rig.kinds()


def test_a_model_twenty_times_slower_is_rolled_back_under_load(
    rig: Rig, cpu_hog: Callable[[], None]
) -> None:
    clock = Clock()
    _serve_previous_model(rig, clock)
    assert rig.apply(rig.stage(slow_model(2, size=128, rounds=64), 2), 2)
    cpu_hog()

    verdicts = _serve_and_watch(rig, 600)

    assert verdicts[-1].status == "failed"
    assert "in 3 consecutive windows of 50+ calls" in verdicts[-1].reason
    assert len(verdicts) == 15  # 150 calls: three windows of 50, not one more
    assert rig.predict()[0, 0] == 1.0
    assert rig.kinds()[-1] == "rolled_back"
