from __future__ import annotations

import threading
from pathlib import Path

import pytest

from edgefleet.agent.health import HealthPolicy
from edgefleet.errors import ModelNotFoundError, UplinkError
from edgefleet.runtime import ModelRepository
from tests.unit.agent.models import fragile_model, golden, scale_model, slow_model
from tests.unit.agent.rig import NAME, TWO_ROWS, Rig


def test_first_model_then_a_hot_swap_under_load_fails_no_request(rig: Rig) -> None:
    assert rig.apply(rig.stage(scale_model(1), 1, golden_bytes=golden(scale_model(1))), 1)
    assert rig.predict()[0, 0] == 1.0
    errors: list[BaseException] = []
    seen: set[float] = set()
    done = threading.Event()

    def hammer() -> None:
        while not done.is_set():
            try:
                seen.add(float(rig.predict()[0, 0]))
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    v2 = rig.stage(scale_model(2), 2, golden_bytes=golden(scale_model(2)))
    assert rig.apply(v2, 2)
    while 2.0 not in seen and not errors:
        pass
    done.set()
    for thread in threads:
        thread.join()
    assert errors == []
    assert seen == {1.0, 2.0}
    state = rig.state_file()
    assert state["active"]["version"] == "v2"
    assert state["previous"]["version"] == "v1"
    assert Path(state["previous"]["path"]).is_file()  # the previous model stays on disk
    assert state["watching_since"] is not None
    assert rig.source.accepted == [(NAME, 1), (NAME, 2)]
    assert rig.kinds() == ["verified", "smoke_test_passed", "activated"] * 2
    assert rig.updater.active_model() is not None
    assert rig.repository.names() == [NAME]


def test_the_same_file_under_a_new_release_and_version_is_adopted_without_a_download(
    rig: Rig,
) -> None:
    assert rig.apply(rig.stage(scale_model(1), 1), 1)
    again = rig.stage(scale_model(1), 3)  # identical bytes, published as version v3
    assert not rig.apply(again, 2)  # nothing new to activate
    assert rig.source.fetches == [f"models/{NAME}/r1.onnx"]
    active = rig.state_file()["active"]
    assert (active["version"], active["release"]) == ("v3", 3)
    assert rig.source.accepted == [(NAME, 1), (NAME, 3)]
    assert rig.predict()[0, 0] == 1.0


def test_smoke_test_failure_keeps_the_old_model_and_is_not_retried_at_once(rig: Rig) -> None:
    rig.apply(rig.stage(scale_model(1), 1), 1)
    bad = rig.stage(scale_model(3), 2, golden_bytes=golden(scale_model(3), wrong=True))
    assert not rig.apply(bad, 2)
    assert rig.predict()[0, 0] == 1.0
    assert rig.kinds()[-1] == "smoke_test_failed"
    assert rig.state_file()["active"]["version"] == "v1"
    assert not rig.apply(bad, 2)  # remembered: no second fetch
    assert rig.source.fetches.count(bad.target) == 1
    failure = rig.updater.state.failures[f"2:{bad.sha256}"]
    assert failure.attempts == 1
    assert "golden case 0" in failure.reason
    assert not rig.apply(bad, 3)  # a new desired version is tried again
    assert rig.source.fetches.count(bad.target) == 2


def test_incompatible_model_keeps_the_old_one(rig: Rig) -> None:
    rig.apply(rig.stage(scale_model(1), 1), 1)
    needs_gpu = rig.stage(
        scale_model(2), 2, requirements={"execution_providers": ["NoSuchExecutionProvider"]}
    )
    assert not rig.apply(needs_gpu, 2)
    too_new = rig.stage(scale_model(4), 3, opset=999)
    assert not rig.apply(too_new, 3)
    assert rig.predict()[0, 0] == 1.0
    events = [e for e in rig.spool.pending().events if e.kind != "verified"]
    assert [e.kind for e in events[-2:]] == ["incompatible", "incompatible"]
    assert "NoSuchExecutionProvider" in events[-2].detail
    assert "opset 999" in events[-1].detail
    assert not events[-1].ok


def test_verification_and_download_failures_are_reported(rig: Rig) -> None:
    from edgefleet.errors import DowngradeError

    v1 = rig.stage(scale_model(1), 5)
    rig.source.fail_with = DowngradeError("release 5 is older than release 6")
    assert not rig.apply(v1, 1)
    rig.source.fail_with = UplinkError("connection refused")
    assert not rig.apply(v1, 2)
    events = rig.spool.pending().events
    assert [e.kind for e in events] == ["verification_failed", "error"]
    assert "older than" in events[0].detail
    with pytest.raises(ModelNotFoundError):
        rig.predict()


def test_health_watch_rolls_back_a_model_that_fails_on_real_inputs(rig: Rig) -> None:
    rig.apply(rig.stage(scale_model(1), 1), 1)
    fragile = rig.stage(fragile_model(5), 2, golden_bytes=golden(fragile_model(5)))
    assert rig.apply(fragile, 2)  # its golden inputs are single rows: the smoke test passes
    assert rig.predict()[0, 0] == 5.0
    for _ in range(12):
        with pytest.raises(Exception, match="failed"):
            rig.predict(TWO_ROWS)
    verdict = rig.updater.check_health()
    assert verdict is not None
    assert verdict.status == "failed"
    assert rig.predict(TWO_ROWS)[0, 0] == 1.0  # back on the previous model
    state = rig.state_file()
    assert state["active"]["version"] == "v1"
    assert state["previous"] is None
    assert state["watching_since"] is None
    assert f"2:{fragile.sha256}" in state["failures"]
    rolled = rig.spool.pending().events[-1]
    assert rolled.kind == "rolled_back"
    assert rolled.version == "v2"
    assert "12 of 13 calls failed" in rolled.detail
    rig.updater.collector.close_window()
    windows = rig.spool.pending().windows
    assert [(w.version, w.swaps, w.rollbacks) for w in windows] == [
        ("v2", 1, 0),  # the fragile model's calls and the swap to it (v1 saw no calls)
        ("v1", 0, 1),  # the rollback is counted in the window that follows it
    ]
    assert not rig.apply(fragile, 2)  # not reinstalled in a loop
    assert rig.updater.check_health() is None


def test_health_watch_rolls_back_on_a_latency_regression(rig: Rig) -> None:
    policy = HealthPolicy(period_s=30, latency_factor=3, latency_window=10, latency_windows=2)
    rig.updater = rig.new_updater(policy)
    rig.apply(rig.stage(scale_model(1), 1), 1)
    for _ in range(50):
        rig.predict()
    assert rig.apply(rig.stage(slow_model(2), 2), 2)
    verdicts = []
    for _ in range(2):  # two windows of ten calls
        for _ in range(10):
            rig.predict()
        verdicts.append(rig.updater.check_health())
    verdict = verdicts[-1]
    assert verdict is not None
    assert verdict.status == "failed"
    assert "median latency" in verdict.reason
    assert rig.predict()[0, 0] == 1.0
    assert rig.kinds()[-1] == "rolled_back"


def test_a_healthy_model_passes_its_watch(rig: Rig) -> None:
    rig.updater = rig.new_updater(HealthPolicy(period_s=0.2, min_requests=5))
    rig.apply(rig.stage(scale_model(1), 1), 1)
    for _ in range(10):
        rig.predict()
    verdict = rig.updater.check_health()
    while verdict is not None and not verdict.done:
        verdict = rig.updater.check_health()
    assert verdict is not None
    assert verdict.status == "passed"
    assert rig.kinds()[-1] == "health_passed"
    assert rig.state_file()["watching_since"] is None
    assert not rig.updater.watching


def test_restart_serves_the_model_named_in_state_json(rig: Rig) -> None:
    rig.apply(rig.stage(scale_model(1), 1), 1)
    rig.apply(rig.stage(scale_model(2), 2), 2)
    rig.repository.close()
    rig.repository = ModelRepository()
    again = rig.new_updater()
    served = again.restore()
    assert served is not None
    assert served.version == "v2"
    rig.updater = again
    assert rig.predict()[0, 0] == 2.0
    assert again.watching  # a clean restart resumes the watch
    assert not rig.apply(rig.stage(scale_model(2), 2), 2)  # already active: nothing to do


def test_a_crash_during_the_watch_restores_the_previous_model(rig: Rig) -> None:
    rig.apply(rig.stage(scale_model(1), 1), 1)
    rig.apply(rig.stage(scale_model(2), 2), 2)
    rig.repository.close()
    rig.repository = ModelRepository()
    again = rig.new_updater()
    served = again.restore(crashed=True)
    assert served is not None
    assert served.version == "v1"
    assert again.state.active is not None
    assert again.state.active.version == "v1"
    assert rig.kinds()[-1] == "rolled_back"


def test_restore_refuses_a_file_that_changed_on_disk(rig: Rig) -> None:
    rig.apply(rig.stage(scale_model(1), 1), 1)
    rig.apply(rig.stage(scale_model(2), 2), 2)
    active = rig.updater.state.active
    assert active is not None
    Path(active.path).write_bytes(scale_model(7))  # tampered with after verification
    rig.repository.close()
    rig.repository = ModelRepository()
    again = rig.new_updater()
    served = again.restore()
    assert served is not None
    assert served.version == "v1"  # the previous, intact model
    detail = rig.spool.pending().events[-1].detail
    assert "changed on disk" in detail
