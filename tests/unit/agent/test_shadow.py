"""Shadow candidates: checked like installs, run beside the active model, never served."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from edgefleet.agent.shadow import ShadowManager
from edgefleet.protocol.v1 import DesiredModel, DesiredState, ShadowSpec
from tests.unit.agent.models import classifier_model, golden
from tests.unit.agent.rig import NAME, Rig

EYE = np.eye(4, dtype=np.float32)


def manager(rig: Rig) -> ShadowManager:
    return ShadowManager(
        repository=rig.repository,
        updater=rig.updater,
        models_dir=rig.models_dir,
        events=rig.updater.events,
        spool=rig.spool,
        spool_lock=threading.Lock(),
        load_options={"providers": ["CPUExecutionProvider"]},
    )


def desired(
    version: int, model: DesiredModel, shadow: DesiredModel | None, rate: float = 1.0
) -> DesiredState:
    return DesiredState(
        device_id="dev-1",
        version=version,
        issued_at=0.0,
        expires_at=1e12,
        model=model,
        shadow=ShadowSpec(model=shadow, sample_rate=rate) if shadow else None,
    )


def shadow_windows(rig: Rig) -> list[object]:
    return [w for w in rig.spool.pending().windows if w.role == "shadow"]


def test_a_shadow_runs_beside_the_active_model_and_reports_its_comparison(rig: Rig) -> None:
    active = rig.stage(classifier_model(), 1)
    candidate = rig.stage(
        classifier_model((1, 0, 2, 3)),
        2,
        golden_bytes=golden(classifier_model((1, 0, 2, 3))),
        calibration={"temperature": 2.0},
    )
    assert rig.apply(active, 1)
    shadows = manager(rig)
    shadows.reconcile(desired(2, active, candidate), rig.source)
    assert shadows.running is not None
    answers = rig.repository.predict(NAME, {"x": EYE})["y"]
    assert answers.argmax(axis=1).tolist() == [0, 1, 2, 3]  # answered by the active model
    runner = shadows.runner
    assert runner is not None
    assert runner.wait_idle()

    (window,) = shadows.close_window()
    assert (window.role, window.model, window.version) == ("shadow", NAME, "v2")
    assert window.shadow is not None
    assert (window.shadow.active_version, window.shadow.compared) == ("v1", 4)
    assert window.shadow.disagreed == 2
    assert window.shadow.confidence_delta_sum < 0  # calibrated T=2 is less sure
    assert window.snapshot["count"] == 1
    assert shadow_windows(rig) == [window]
    assert rig.source.accepted == [(NAME, 1)]  # the candidate's release is not accepted
    assert rig.repository.names() == [NAME]
    assert rig.updater.state.active is not None
    assert rig.updater.state.active.version == "v1"
    assert "shadow_started" in rig.kinds()
    assert "smoke_test_passed" in rig.kinds()
    shadows.stop("test over")


def test_dropping_the_shadow_stops_it_and_spools_its_last_window(rig: Rig) -> None:
    active = rig.stage(classifier_model(), 1)
    candidate = rig.stage(classifier_model(k=3.0), 2)
    rig.apply(active, 1)
    shadows = manager(rig)
    shadows.reconcile(desired(2, active, candidate), rig.source)
    runner = shadows.runner
    assert runner is not None
    rig.repository.predict(NAME, {"x": EYE[:1]})
    runner.wait_idle()
    shadows.reconcile(desired(3, active, None), rig.source)
    assert shadows.running is None
    assert runner.shadow.closed
    assert len(shadow_windows(rig)) == 1
    assert rig.kinds()[-1] == "shadow_stopped"
    rig.repository.predict(NAME, {"x": EYE[:1]})  # untapped: nothing more is sampled
    assert len(shadows.close_window()) == 0


def test_a_promoted_candidate_stops_shadowing_and_installs_from_the_same_file(
    rig: Rig,
) -> None:
    active = rig.stage(classifier_model(), 1)
    candidate = rig.stage(classifier_model((1, 0, 2, 3)), 2)
    rig.apply(active, 1)
    shadows = manager(rig)
    shadows.reconcile(desired(2, active, candidate), rig.source)
    promoted = desired(3, candidate, candidate)
    shadows.reconcile(promoted, rig.source)
    assert shadows.running is None
    assert "promoted" in rig.spool.pending(max_events=100).events[-1].detail
    assert rig.updater.reconcile(promoted, rig.source)
    assert rig.repository.predict(NAME, {"x": EYE[:1]})["y"].argmax() == 1
    assert rig.source.fetches.count(candidate.target) == 2  # verified again; the file reused


def test_a_candidate_that_fails_its_smoke_test_never_runs_and_is_not_retried(rig: Rig) -> None:
    active = rig.stage(classifier_model(), 1)
    bad = rig.stage(
        classifier_model((3, 2, 1, 0)), 2, golden_bytes=golden(classifier_model(), wrong=True)
    )
    rig.apply(active, 1)
    shadows = manager(rig)
    state = desired(2, active, bad)
    shadows.reconcile(state, rig.source)
    shadows.reconcile(state, rig.source)
    assert shadows.running is None
    assert rig.source.fetches.count(bad.target) == 1
    assert rig.kinds()[-1] == "smoke_test_failed"
    assert rig.repository.predict(NAME, {"x": EYE[2:3]})["y"].argmax() == 2


def test_a_crashing_shadow_is_an_event_not_a_rollback(rig: Rig) -> None:
    active = rig.stage(classifier_model(), 1)
    candidate = rig.stage(classifier_model(k=3.0), 2)
    rig.apply(active, 1)
    shadows = manager(rig)
    shadows.reconcile(desired(2, active, candidate), rig.source)
    runner = shadows.runner
    assert runner is not None

    def broken(
        active: Mapping[str, NDArray[Any]], shadow: Mapping[str, NDArray[Any]]
    ) -> NDArray[np.bool_]:
        raise RuntimeError("comparison bug")

    runner.comparator = broken
    rig.repository.predict(NAME, {"x": EYE[:1]})
    runner.wait_idle()
    shadows.close_window()
    error = [e for e in rig.spool.pending(max_events=100).events if e.kind == "error"]
    assert len(error) == 1
    assert "comparison bug" in error[0].detail
    assert "rolled_back" not in rig.kinds()
    shadows.stop("test over")


@pytest.mark.parametrize("rate", [0.5, 1.0])
def test_a_new_sample_rate_applies_to_the_running_shadow(rig: Rig, rate: float) -> None:
    active = rig.stage(classifier_model(), 1)
    candidate = rig.stage(classifier_model(k=3.0), 2)
    rig.apply(active, 1)
    shadows = manager(rig)
    shadows.reconcile(desired(2, active, candidate, 0.1), rig.source)
    shadows.reconcile(desired(3, active, candidate, rate), rig.source)
    assert shadows.runner is not None
    assert shadows.runner.sample_rate == rate
    assert rig.kinds().count("shadow_started") == 1
    shadows.stop("test over")
