from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from edgefleet.runtime import Model, ModelRepository, load
from edgefleet.runtime.shadow import ShadowRunner, ShadowTally, top1_disagreement
from tests.unit.agent.models import classifier_model, fragile_model, slow_model

EYE = np.eye(4, dtype=np.float32)  # row i: class i for the identity classifier


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[[bytes, str], Model]]:
    models: list[Model] = []

    def make(data: bytes, version: str) -> Model:
        path = tmp_path / f"{version}.onnx"
        path.write_bytes(data)
        model = load(path, name="clf", version=version, intra_op_threads=1)
        models.append(model)
        return model

    yield make
    for model in models:
        model.close()


@pytest.fixture
def repository() -> Iterator[ModelRepository]:
    repo = ModelRepository()
    yield repo
    repo.close()


def test_the_shadow_scores_sampled_inputs_and_counts_disagreements(
    make: Callable[[bytes, str], Model], repository: ModelRepository
) -> None:
    repository.add(make(classifier_model(), "1"))
    swapped = make(classifier_model((1, 0, 2, 3)), "2")  # classes 0 and 1 swapped
    runner = ShadowRunner(swapped, 1.0)
    runner.start()
    repository.set_tap("clf", runner)
    answers = [repository.predict("clf", {"x": EYE[i : i + 1]})["y"] for i in range(4)]
    assert [int(a.argmax()) for a in answers] == [0, 1, 2, 3]  # the active model answers
    assert runner.wait_idle()
    assert swapped.telemetry.snapshot().count == 4  # its own telemetry: latency, confidence
    (tally,) = runner.take()
    assert (tally.active_version, tally.compared, tally.disagreed) == ("1", 4, 2)
    runner.stop()
    assert swapped.closed


def test_tallies_are_per_active_version_and_reset_by_take(
    make: Callable[[bytes, str], Model], repository: ModelRepository
) -> None:
    repository.add(make(classifier_model(), "1"))
    shadow = make(classifier_model((1, 0, 2, 3)), "9")
    runner = ShadowRunner(shadow, 1.0)
    runner.start()
    repository.set_tap("clf", runner)
    repository.predict("clf", {"x": EYE})  # one call, four samples, two disagree
    repository.swap(make(classifier_model((1, 0, 2, 3)), "2"))  # now agrees with the shadow
    repository.predict("clf", {"x": EYE[:2]})
    assert runner.wait_idle()
    tallies = {t.active_version: t for t in runner.take()}
    assert tallies["1"].compared == 4
    assert tallies["1"].disagreed == 2
    assert tallies["2"] == ShadowTally("2", 2, 0, pytest.approx(0.0, abs=1e-5))  # type: ignore[arg-type]
    assert runner.take() == []
    runner.stop()


def test_confidence_delta_is_shadow_minus_active(
    make: Callable[[bytes, str], Model], repository: ModelRepository
) -> None:
    repository.add(make(classifier_model(k=4.0), "1"))
    softer = make(classifier_model(k=1.0), "2")
    runner = ShadowRunner(softer, 1.0)
    runner.start()
    repository.set_tap("clf", runner)
    active = repository.predict("clf", {"x": EYE[:1]})["y"]
    assert runner.wait_idle()
    (tally,) = runner.take()
    shadow_answer = softer.predict({"x": EYE[:1]})["y"]
    expected = float(shadow_answer.max() - active.max())
    assert expected < 0
    assert tally.confidence_delta_sum == pytest.approx(expected, rel=1e-5)
    runner.stop()


def test_only_the_sampled_share_runs_on_the_shadow(
    make: Callable[[bytes, str], Model], repository: ModelRepository
) -> None:
    repository.add(make(classifier_model(), "1"))
    shadow = make(classifier_model(), "2")
    runner = ShadowRunner(shadow, 0.25, rng=random.Random(7))
    runner.start()
    repository.set_tap("clf", runner)
    for _ in range(400):
        repository.predict("clf", {"x": EYE[:1]})
    draws = random.Random(7)
    expected = sum(draws.random() < 0.25 for _ in range(400))
    assert runner.wait_idle()
    assert shadow.telemetry.snapshot().count + runner.dropped == expected
    assert 60 < expected < 140
    runner.stop()


def test_a_full_queue_drops_samples_and_no_request_waits(
    make: Callable[[bytes, str], Model], repository: ModelRepository
) -> None:
    repository.add(make(classifier_model(), "1"))
    slow = make(slow_model(1.0, size=384, rounds=24), "slow")
    runner = ShadowRunner(slow, 1.0, queue_size=1, comparator=lambda a, s: np.zeros(1, bool))
    runner.start()
    repository.set_tap("clf", runner)
    for _ in range(50):
        repository.predict("clf", {"x": EYE[:1]})
    assert runner.dropped > 0
    assert runner.wait_idle(30)
    assert slow.telemetry.snapshot().count == 50 - runner.dropped
    runner.stop()


def test_shadow_failures_are_counted_and_never_reach_the_caller(
    make: Callable[[bytes, str], Model], repository: ModelRepository
) -> None:
    repository.add(make(classifier_model(), "1"))
    fragile = make(fragile_model(1.0), "2")  # fails on more than one row
    runner = ShadowRunner(fragile, 1.0)
    runner.start()
    repository.set_tap("clf", runner)
    assert repository.predict("clf", {"x": EYE})["y"].shape == (4, 4)
    assert runner.wait_idle()
    assert runner.errors == 1
    assert "InferenceError" in runner.last_error
    assert fragile.telemetry.snapshot().errors == 1
    runner.stop()


def test_a_failing_tap_never_changes_an_answer(
    make: Callable[[bytes, str], Model], repository: ModelRepository
) -> None:
    repository.add(make(classifier_model(), "1"))

    def broken(*args: object) -> None:
        raise RuntimeError("observer bug")

    repository.set_tap("clf", broken)
    assert int(repository.predict("clf", {"x": EYE[2:3]})["y"].argmax()) == 2
    repository.set_tap("clf", None)


def test_top1_disagreement_needs_comparable_outputs() -> None:
    with pytest.raises(ValueError, match="cannot be compared"):
        top1_disagreement({"a": np.zeros((2, 3))}, {"b": np.zeros((2, 4))})
