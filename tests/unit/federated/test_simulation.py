"""The in-process simulation: rounds, failures, codec state per device, bytes on the wire."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pytest

from edgefleet.federated.simulation import (
    ClientJob,
    ClientReport,
    LocalBackend,
    RoundResult,
    SimulationConfig,
    client_seed,
    simulate,
)
from edgefleet.federated.task import Dataset, Task, TrainConfig, get_params
from edgefleet.federated.tasks.digits import DigitsTask

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def task() -> DigitsTask:
    return DigitsTask()


class RecordingBackend(LocalBackend):
    """The local backend, keeping every job it ran (to look at the state devices carried)."""

    def __init__(self) -> None:
        self.jobs: list[ClientJob] = []

    def run(self, task: Task, data: Dataset, jobs: Sequence[ClientJob]) -> list[ClientReport]:
        self.jobs.extend(jobs)
        return super().run(task, data, jobs)


@pytest.mark.parametrize(("rounds", "tolerance"), [(1, 1e-6), (2, 1e-3)])
def test_one_client_with_fedavg_is_local_training(
    task: DigitsTask, rounds: int, tolerance: float
) -> None:
    """Equal up to float32 rounding of ``old + (new - old)``, which training then amplifies."""
    config = SimulationConfig(clients=1, per_round=1, rounds=rounds, partition="iid", seed=4)
    result = simulate(task, config)
    model = task.build_model(seed=4)
    data = task.load_data()
    for round_ in range(1, rounds + 1):
        task.train(model, data, 1, TrainConfig(seed=client_seed(4, round_, 0)))
    np.testing.assert_allclose(result.model, get_params(model)[0], rtol=0, atol=tolerance)
    assert [r.participants for r in result.rounds] == [1] * rounds


def test_identical_updates_average_to_one_of_them(task: DigitsTask) -> None:
    """Two devices with the same data and seed send the same delta: FedAvg keeps it."""

    class SameSeed(LocalBackend):
        def run(self, task: Task, data: Dataset, jobs: Sequence[ClientJob]) -> list[ClientReport]:
            same = [
                ClientJob(
                    j.device, j.round, j.model, np.arange(200), 1, TrainConfig(seed=1), "dense", b""
                )
                for j in jobs
            ]
            reports = super().run(task, data, same)
            assert reports[0].payload == reports[1].payload
            return reports

    config = SimulationConfig(clients=2, per_round=2, rounds=1, seed=2)
    result = simulate(task, config, backend=SameSeed())
    model = task.build_model(seed=2)
    task.train(model, task.load_data().subset(np.arange(200)), 1, TrainConfig(seed=1))
    np.testing.assert_allclose(result.model, get_params(model)[0], atol=1e-5)


def test_dgc_sends_far_fewer_uplink_bytes_than_dense(task: DigitsTask) -> None:
    common = {"clients": 4, "per_round": 2, "rounds": 6, "partition": "dirichlet:0.5"}
    dense = simulate(task, SimulationConfig(**common, compression="dense"))  # type: ignore[arg-type]
    dgc = simulate(task, SimulationConfig(**common, compression="dgc:0.999"))  # type: ignore[arg-type]
    assert dgc.uplink_per_update() < dense.uplink_per_update() / 5
    assert dgc.rounds[-1].uplink_bytes < dense.rounds[-1].uplink_bytes / 20
    # the downlink is the same dense model either way
    assert dgc.rounds[0].downlink_bytes == pytest.approx(dense.rounds[0].downlink_bytes, rel=0.2)


def test_dropouts_and_late_devices_are_accounted_and_reproducible(task: DigitsTask) -> None:
    config = SimulationConfig(
        clients=6, per_round=4, rounds=4, dropout=0.3, slow=0.3, compression="topk:0.9", seed=1
    )
    seen: list[RoundResult] = []
    first = simulate(task, config, progress=seen.append)
    assert seen == first.rounds
    for r in first.rounds:
        assert r.participants + r.dropouts + r.late == len(r.selected) == 4
    assert sum(r.dropouts for r in first.rounds) > 0
    assert sum(r.late for r in first.rounds) > 0
    second = simulate(task, config)
    assert second.rounds == first.rounds
    assert np.array_equal(second.model, first.model)


def test_a_late_device_keeps_its_codec_state(task: DigitsTask) -> None:
    config = SimulationConfig(
        clients=3, per_round=3, rounds=6, slow=0.5, compression="topk:0.99", seed=3
    )
    backend = RecordingBackend()
    result = simulate(task, config, backend=backend)
    late = {(r.round, d) for r in result.rounds for d in r.late_devices}
    assert late, "the seed was chosen so that some device is late"
    by_device: dict[int, list[ClientJob]] = {}
    for job in backend.jobs:
        by_device.setdefault(job.device, []).append(job)
    kept = 0
    for jobs in by_device.values():
        for before, after in itertools.pairwise(jobs):
            if (before.round, before.device) in late:
                assert after.codec_state == before.codec_state
                kept += 1
            else:
                report = LocalBackend().run(task, task.load_data(), [before])[0]
                assert after.codec_state == report.codec_state != before.codec_state
    assert kept > 0


def test_delta_downlink_sends_fewer_bytes_after_the_first_round(task: DigitsTask) -> None:
    common = {"clients": 2, "per_round": 2, "rounds": 3}
    full = simulate(task, SimulationConfig(**common))  # type: ignore[arg-type]
    delta = simulate(task, SimulationConfig(**common, downlink="delta"))  # type: ignore[arg-type]
    assert delta.rounds[0].downlink_bytes == full.rounds[0].downlink_bytes
    assert delta.rounds[-1].downlink_bytes < 0.7 * full.rounds[-1].downlink_bytes
    assert delta.rounds[-1].accuracy == pytest.approx(full.rounds[-1].accuracy, abs=0.05)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"clients": 0}, "clients must be an integer >= 1"),
        ({"per_round": 11}, "per_round .11. exceeds clients .10."),
        ({"dropout": 1.0}, "dropout must be a probability"),
        ({"slow": -0.1}, "slow must be a probability"),
        ({"downlink": "zip"}, "downlink must be 'full' or 'delta'"),
        ({"partition": "dirichlet:x"}, "partition spec"),
        ({"strategy": "fedsgd"}, "unknown strategy 'fedsgd'"),
        ({"compression": "dgc:2"}, "dgc"),
    ],
)
def test_bad_configs_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SimulationConfig(**changes)  # type: ignore[arg-type]
