"""In-process simulation of a federated job: many simulated devices, one strategy, real codecs.

Each simulated device holds a shard of the task's training data (from
:mod:`~edgefleet.federated.partition`) and its own codec, whose state (error-feedback residual,
momentum) persists across the rounds it takes part in, as it does on a real
device's disk. A round:

1. samples ``per_round`` devices (seeded);
2. sends each the global model: in full, or with ``downlink="delta"`` as a float16 delta
   against the model the device already holds
   (:func:`~edgefleet.federated.compression.encode_downlink`);
3. a device **drops out** with probability ``dropout`` (it received the model, never reports);
   a **slow** one (probability ``slow``) reports after the deadline: the server ignores its
   update and the device keeps the codec state it had before the round, as a device whose
   upload was refused does;
4. every other device trains from the model it holds, encodes its update (the delta) with its
   codec for the round (:func:`~edgefleet.federated.compression.encode_for_round`, as an agent
   does: DGC's warm-up follows the job's round), and the server decodes it;
5. the strategy aggregates the decoded updates (no update: the model stays), and the new global
   model is evaluated on the task's held-out data.

Bytes are what crosses the wire: ``uplink_bytes`` is the length of every encoded update sent
(late ones included, they were sent), ``downlink_bytes`` that of every model sent.

The devices' work runs on a :class:`Backend`; :class:`LocalBackend` runs it in this process,
one device after another. A job is a pure function of its inputs (:func:`run_client`), so
another backend can run the same jobs elsewhere.

Examples
--------
>>> config = SimulationConfig(clients=4, rounds=2, per_round=2, compression="dgc:0.99")
>>> result = simulate(load_task("digits"), config)
>>> [(r.round, r.participants) for r in result.rounds]
[(1, 2), (2, 2)]
>>> result.rounds[-1].uplink_bytes < result.rounds[-1].downlink_bytes
True
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from edgefleet.federated.compression import encode_downlink, encode_for_round
from edgefleet.federated.compression import from_spec as codec_from_spec
from edgefleet.federated.params import Vector
from edgefleet.federated.partition import from_spec as partition_from_spec
from edgefleet.federated.partition import partition
from edgefleet.federated.strategies import ClientUpdate
from edgefleet.federated.strategies import from_spec as strategy_from_spec
from edgefleet.federated.task import Dataset, Task, TrainConfig, get_params, load_task, set_params

__all__ = [
    "Backend",
    "ClientJob",
    "ClientReport",
    "LocalBackend",
    "RoundResult",
    "SimulationConfig",
    "SimulationResult",
    "client_seed",
    "run_client",
    "simulate",
]


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate; every spec is checked when the config is made (``ValueError``).

    Parameters
    ----------
    clients, rounds, per_round
        Simulated devices, rounds, and devices sampled per round (at most ``clients``).
    partition
        How the training data is split: ``"iid"`` or ``"dirichlet:ALPHA"``.
    strategy, compression
        Strategy spec (``"fedavg"``, ``"fedprox:mu=0.01"``, ...) and uplink codec spec
        (``"dense"``, ``"topk:0.99"``, ``"dgc:0.999"``, ...).
    local_epochs
        Epochs of local training per round.
    dropout, slow
        Probability that a selected device never reports, and that it reports too late.
    downlink
        ``"full"`` sends the whole model every round; ``"delta"`` a float16 delta against the
        model the device holds (the full model the first time).
    seed
        Seeds the model's initialisation, the partition, sampling, failures and training.
    """

    clients: int = 10
    rounds: int = 30
    per_round: int = 5
    partition: str = "iid"
    strategy: str = "fedavg"
    compression: str = "dense"
    local_epochs: int = 1
    dropout: float = 0.0
    slow: float = 0.0
    downlink: str = "full"
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("clients", "rounds", "per_round", "local_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.per_round > self.clients:
            raise ValueError(f"per_round ({self.per_round}) exceeds clients ({self.clients})")
        for name in ("dropout", "slow"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0.0 <= value < 1.0):
                raise ValueError(f"{name} must be a probability in [0, 1), got {value!r}")
        if self.downlink not in ("full", "delta"):
            raise ValueError(f"downlink must be 'full' or 'delta', got {self.downlink!r}")
        partition_from_spec(self.partition)
        strategy_from_spec(self.strategy)
        codec_from_spec(self.compression)


@dataclass(frozen=True, eq=False)
class ClientJob:
    """One device's work in one round: everything it needs, nothing shared."""

    device: int
    round: int
    model: Vector
    """The model the device holds and trains from."""
    indices: NDArray[np.int64]
    """The device's shard of the training set."""
    epochs: int
    config: TrainConfig
    codec_spec: str
    codec_state: bytes


@dataclass(frozen=True, eq=False)
class ClientReport:
    """What a device sends back (``payload``) and keeps (``codec_state``)."""

    device: int
    payload: bytes
    num_examples: int
    codec_state: bytes


def client_seed(seed: int, round_: int, device: int) -> int:
    """The training seed of ``device`` in round ``round_`` (from 1) of a job seeded ``seed``."""
    return int(np.random.SeedSequence([seed, round_, device]).generate_state(1)[0])


def run_client(task: Task, data: Dataset, job: ClientJob) -> ClientReport:
    """Train on the device's shard from ``job.model``, encode the delta with its codec."""
    model = task.build_model()
    set_params(model, job.model)
    num_examples = task.train(model, data.subset(job.indices), job.epochs, job.config)
    delta = get_params(model)[0] - job.model
    codec = codec_from_spec(job.codec_spec)
    codec.load_state(job.codec_state)
    payload = encode_for_round(codec, job.round, delta)
    return ClientReport(job.device, payload, num_examples, codec.state_bytes())


class Backend(abc.ABC):
    """Runs a round's client jobs and returns their reports, in the jobs' order."""

    @abc.abstractmethod
    def run(self, task: Task, data: Dataset, jobs: Sequence[ClientJob]) -> list[ClientReport]:
        """The report of every job."""


class LocalBackend(Backend):
    """Runs the jobs in this process, one after another."""

    def run(self, task: Task, data: Dataset, jobs: Sequence[ClientJob]) -> list[ClientReport]:
        """Each job through :func:`run_client`."""
        return [run_client(task, data, job) for job in jobs]


@dataclass(frozen=True)
class RoundResult:
    """What happened in one round (numbered from 1)."""

    round: int
    selected: tuple[int, ...]
    participants: int
    dropouts: int
    late: int
    uplink_bytes: int
    downlink_bytes: int
    metrics: dict[str, float] = field(default_factory=dict)
    late_devices: tuple[int, ...] = ()
    """The devices whose update came after the deadline (ignored this round)."""

    @property
    def accuracy(self) -> float:
        """Held-out accuracy of the global model after this round."""
        return self.metrics.get("accuracy", math.nan)


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """Every round's result, the initial metrics and the final global model."""

    config: SimulationConfig
    initial: dict[str, float]
    rounds: list[RoundResult]
    model: Vector

    def uplink_per_update(self) -> float:
        """Mean uplink bytes per update sent (participants and late devices)."""
        sent = sum(r.participants + r.late for r in self.rounds)
        return sum(r.uplink_bytes for r in self.rounds) / sent if sent else 0.0

    def downlink_per_device(self) -> float:
        """Mean downlink bytes per selected device."""
        sent = sum(len(r.selected) for r in self.rounds)
        return sum(r.downlink_bytes for r in self.rounds) / sent if sent else 0.0


@dataclass
class _Device:
    indices: NDArray[np.int64]
    codec_state: bytes = b""
    held: Vector | None = None


def simulate(
    task: Task | str,
    config: SimulationConfig,
    *,
    backend: Backend | None = None,
    progress: Callable[[RoundResult], None] | None = None,
) -> SimulationResult:
    """Run ``config.rounds`` rounds of federated learning on ``task``; see the module docs.

    ``progress`` is called with each round's result as soon as the round closes.
    """
    task = load_task(task) if isinstance(task, str) else task
    backend = backend or LocalBackend()
    strategy = strategy_from_spec(config.strategy)
    data, holdout = task.load_data(), task.holdout()
    shards = partition(data.y, config.clients, config.partition, seed=config.seed)
    devices = [_Device(shard) for shard in shards]
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0xF1]))
    model = task.build_model(seed=config.seed)
    global_model = get_params(model)[0]
    initial = task.evaluate(model, holdout)
    raw_mu = strategy.config_for_client().get("mu", 0.0)
    mu = float(raw_mu) if isinstance(raw_mu, int | float) else 0.0
    rounds: list[RoundResult] = []
    for round_ in range(1, config.rounds + 1):
        selected = np.sort(rng.choice(config.clients, config.per_round, replace=False))
        fates = rng.random((len(selected), 2))
        downlink = 0
        jobs: list[ClientJob] = []
        late: set[int] = set()
        dropouts = 0
        for device_id, (drop, slow) in zip(selected.tolist(), fates, strict=True):
            device = devices[device_id]
            base = device.held if config.downlink == "delta" else None
            sent = encode_downlink(global_model, base)
            downlink += len(sent.payload)
            device.held = sent.model
            if drop < config.dropout:
                dropouts += 1
                continue
            if slow < config.slow:
                late.add(device_id)
            train_config = TrainConfig(
                mu=mu,
                global_params=sent.model if mu > 0 else None,
                seed=client_seed(config.seed, round_, device_id),
            )
            jobs.append(
                ClientJob(
                    device_id,
                    round_,
                    sent.model,
                    device.indices,
                    config.local_epochs,
                    train_config,
                    config.compression,
                    device.codec_state,
                )
            )
        reports = backend.run(task, data, jobs)
        uplink = sum(len(r.payload) for r in reports)
        server_codec = codec_from_spec(config.compression)
        updates = []
        for report in reports:
            if report.device in late:
                continue  # refused at the deadline: the device keeps its earlier codec state
            devices[report.device].codec_state = report.codec_state
            delta = server_codec.decode(report.payload, global_model.size)
            updates.append(ClientUpdate(delta, report.num_examples))
        if updates and sum(u.num_examples for u in updates) > 0:
            global_model = strategy.aggregate(global_model, updates)
        set_params(model, global_model)
        result = RoundResult(
            round=round_,
            selected=tuple(selected.tolist()),
            participants=len(updates),
            dropouts=dropouts,
            late=len(late),
            uplink_bytes=uplink,
            downlink_bytes=downlink,
            metrics=task.evaluate(model, holdout),
            late_devices=tuple(sorted(late)),
        )
        rounds.append(result)
        if progress is not None:
            progress(result)
    return SimulationResult(config, initial, rounds, global_model)
