"""DGC's warm-up follows the job's round, on a device and in the simulation alike.

Counting each device's own updates made a device picked in half of a job's rounds spend four of
its updates warming up; the round number comes from the assignment (the agent) or the loop (the
simulation), and both encode through ``encode_for_round``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from edgefleet.federated import (
    Dataset,
    DGCCodec,
    Task,
    TrainConfig,
    codec_from_spec,
    encode_for_round,
    get_params,
    model_hash,
)
from edgefleet.federated.compression import kept_count, warmup_sparsity
from edgefleet.federated.simulation import (
    ClientJob,
    ClientReport,
    LocalBackend,
    SimulationConfig,
    run_client,
    simulate,
)

N = 20_000


def _sent(codec: Any, payload: bytes, size: int) -> int:
    return int(np.count_nonzero(codec.decode(payload, size)))


def _updates(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=N).astype(np.float32) for _ in range(count)]


def test_a_device_that_first_takes_part_after_the_warm_up_is_not_warming_up() -> None:
    codec = DGCCodec(0.999)
    payload = encode_for_round(codec, codec.warmup + 1, _updates(1)[0])
    assert _sent(codec, payload, N) == kept_count(N, 0.999)


def test_every_device_of_a_round_sends_the_rounds_share_whatever_its_history() -> None:
    """A device in all of rounds 1-3 and one that joins in round 3 send alike in round 3."""
    regular, newcomer = DGCCodec(0.999), DGCCodec(0.999)
    updates = _updates(4)
    for round_ in (1, 2):
        encode_for_round(regular, round_, updates[round_])
    expected = kept_count(N, warmup_sparsity(2, 0.999, regular.warmup))
    assert _sent(regular, encode_for_round(regular, 3, updates[3]), N) == expected
    assert _sent(newcomer, encode_for_round(newcomer, 3, updates[3]), N) == expected


def test_the_warm_up_step_is_not_kept_in_the_state() -> None:
    """A state saved after round 1 and restored for round 20 sends at the target."""
    first = DGCCodec(0.999)
    encode_for_round(first, 1, _updates(1)[0])
    later = DGCCodec(0.999)
    later.load_state(first.state_bytes())
    payload = encode_for_round(later, 20, _updates(1, seed=1)[0])
    assert _sent(later, payload, N) == kept_count(N, 0.999)


@pytest.mark.parametrize("bad", [0, -3, True, 1.5])
def test_a_round_is_an_integer_from_1(bad: Any) -> None:
    with pytest.raises(ValueError, match="a job's round is an integer from 1"):
        DGCCodec(0.999).start_round(bad)


class _Recording(LocalBackend):
    """The local backend, keeping every report with the round it was for."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, ClientReport]] = []

    def run(self, task: Task, data: Dataset, jobs: Sequence[ClientJob]) -> list[ClientReport]:
        reports = super().run(task, data, jobs)
        self.sent += [(job.round, report) for job, report in zip(jobs, reports, strict=True)]
        return reports


def test_the_simulation_warms_up_on_the_jobs_round_with_dropout() -> None:
    pytest.importorskip("torch")
    config = SimulationConfig(
        clients=6, per_round=3, rounds=6, compression="dgc:0.99", dropout=0.4, seed=2
    )
    backend = _Recording()
    simulate("digits", config, backend=backend)
    codec = codec_from_spec(config.compression)
    size = 1898
    counts = {(round_, _sent(codec, r.payload, size)) for round_, r in backend.sent}
    expected = {
        (round_, kept_count(size, warmup_sparsity(round_ - 1, 0.99, 13))) for round_, _ in counts
    }
    assert counts == expected
    rounds_of: dict[int, list[int]] = {}
    for round_, report in backend.sent:
        rounds_of.setdefault(report.device, []).append(round_)
    assert any(rounds[0] > 1 for rounds in rounds_of.values())  # someone joined late


class _Uplink:
    """Stands in for the control plane: serves one round's model, keeps what is uploaded."""

    def __init__(self, model: np.ndarray) -> None:
        self.model = model
        self.uploads: list[bytes] = []

    def fl_model(self, job_id: str, round_: int) -> bytes:
        return self.model.astype("<f4").tobytes()

    def fl_update(
        self, job_id: str, round_: int, payload: bytes, examples: int, metrics: str
    ) -> Any:
        self.uploads.append(payload)
        return type("Ack", (), {"detail": "accepted"})()

    def fl_decline(self, job_id: str, round_: int, reason: str) -> Any:
        raise AssertionError(f"declined: {reason}")


class _Events:
    def __init__(self) -> None:
        self.emitted: list[dict[str, Any]] = []

    def emit(self, kind: str, **fields: Any) -> None:
        self.emitted.append({"kind": kind, **fields})


def test_an_agent_and_the_simulation_send_the_same_update_for_round_20(tmp_path: Path) -> None:
    """Same model, data, seed and round: the agent's payload is the simulated device's."""
    pytest.importorskip("torch")
    from edgefleet.agent.backoff import Backoff
    from edgefleet.agent.fl import FLWorker, _train_seed
    from edgefleet.federated import load_task
    from edgefleet.protocol.v1 import FLAssignment

    task = load_task("digits")
    model = get_params(task.build_model(seed=0))[0]
    uplink = _Uplink(model)
    events = _Events()
    worker = FLWorker(
        device_id="dev-a",
        uplink=cast(Any, uplink),
        folder=tmp_path / "fl",
        tasks=["digits"],
        partition=(1, 4),
        events=cast(Any, events),
        stop=threading.Event(),
        backoff=lambda: Backoff(0.01, 0.02),
    )
    assignment = FLAssignment(
        job_id="job1",
        round=20,
        task="digits",
        model_hash=model_hash(model),
        num_params=model.size,
        compression="dgc:0.99",
        seed=7,
        deadline=4e9,
    )
    worker.work(assignment)
    assert events.emitted[-1]["ok"], events.emitted
    (payload,) = uplink.uploads
    codec = codec_from_spec("dgc:0.99")
    assert _sent(codec, payload, model.size) == kept_count(model.size, 0.99)

    train = task.load_data()
    job = ClientJob(
        device=0,
        round=20,
        model=model,
        indices=np.arange(1, len(train), 4, dtype=np.int64),
        epochs=1,
        config=TrainConfig(seed=_train_seed(7, 20, "dev-a")),
        codec_spec="dgc:0.99",
        codec_state=b"",
    )
    simulated = run_client(task, train, job)
    assert simulated.payload == payload
    assert (tmp_path / "fl" / "job1" / "codec.state").read_bytes() == simulated.codec_state
