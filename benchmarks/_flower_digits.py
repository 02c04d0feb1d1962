"""The Flower side of the federated benchmarks: the digits CNN as a Flower 1.42 app.

Runs in Flower's own virtual environment (``flwr[simulation]==1.42.0``, torch, numpy), never
in edgefleet's: it imports nothing from edgefleet. Everything that has to match the edgefleet
side comes in a job file (``.npz``) that the edgefleet side writes: the training and held-out
arrays, every device's shard, the initial weights, the devices sampled in each round and every
device's training seed in each round. The model, the local training (SGD with momentum,
cross-entropy, shuffled mini-batches drawn from the seed, one torch thread) and the evaluation
are written out here to do exactly what ``edgefleet.federated.tasks.digits.DigitsTask`` does.

The server is Flower's own ``FedAvg`` (``flwr.serverapp.strategy``), with one change that
touches nothing in the aggregation: each round it samples from the devices the job names for
that round instead of drawing them itself, so that both sides train on the same devices in the
same order. Devices answer one query message at start-up with their partition id so that the
server knows which node holds which shard.

Bytes are measured as Flower 1.42 moves them: a message is a tree of content-addressed objects
(message, record dict, records, arrays, array chunks), each sent as its deflated bytes; the
count is the sum over the distinct objects of one message's tree (protobuf, gRPC and HTTP/2
framing excluded).

Usage (inside the Flower venv): python _flower_digits.py JOB.npz CONFIG.json OUT.json
"""

# flwr is installed only in the Flower venv; mypy sees it as untyped (pyproject.toml).

from __future__ import annotations

import json
import sys
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.app import (
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects

_JOBS: dict[str, dict[str, np.ndarray]] = {}


def load_job(path: str) -> dict[str, np.ndarray]:
    """The job file's arrays, read once per process (an actor serves many rounds)."""
    if path not in _JOBS:
        with np.load(path) as data:
            _JOBS[path] = {name: data[name] for name in data.files}
    return _JOBS[path]


def build_model(width: int) -> torch.nn.Module:
    """The digits CNN: conv(8w) - ReLU - pool - conv(16w) - ReLU - pool - linear(10)."""
    nn = torch.nn
    c1, c2 = 8 * width, 16 * width
    return nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(1, c1, 3, padding=1),
            relu1=nn.ReLU(),
            pool1=nn.MaxPool2d(2),
            conv2=nn.Conv2d(c1, c2, 3, padding=1),
            relu2=nn.ReLU(),
            pool2=nn.MaxPool2d(2),
            flatten=nn.Flatten(),
            fc=nn.Linear(4 * c2, 10),
        )
    )


def initial_state(job: dict[str, np.ndarray]) -> OrderedDict[str, torch.Tensor]:
    """The initial weights stored in the job as ``init/NAME``."""
    return OrderedDict(
        (name[len("init/") :], torch.from_numpy(job[name].copy()))
        for name in job
        if name.startswith("init/")
    )


def train(
    model: torch.nn.Module, x: np.ndarray, y: np.ndarray, cfg: dict[str, Any], seed: int
) -> int:
    """SGD with momentum on cross-entropy, shuffled by ``seed``; the number of examples seen."""
    xs = torch.from_numpy(np.ascontiguousarray(x, np.float32))
    ys = torch.from_numpy(np.ascontiguousarray(y, np.int64))
    optimizer = torch.optim.SGD(
        model.parameters(), lr=cfg["learning_rate"], momentum=cfg["momentum"]
    )
    generator = torch.Generator().manual_seed(seed)
    batch_size = cfg["batch_size"]
    model.train()
    for _ in range(cfg["epochs"]):
        order = torch.randperm(len(ys), generator=generator)
        for start in range(0, len(ys), batch_size):
            batch = order[start : start + batch_size]
            optimizer.zero_grad()
            loss: Any = torch.nn.functional.cross_entropy(model(xs[batch]), ys[batch])
            loss.backward()
            optimizer.step()
    return len(ys) * int(cfg["epochs"])


def evaluate(model: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Accuracy and mean cross-entropy of ``model`` on ``(x, y)``."""
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(np.ascontiguousarray(x, np.float32)))
        labels = torch.from_numpy(np.ascontiguousarray(y, np.int64))
        loss = float(torch.nn.functional.cross_entropy(logits, labels))
        accuracy = float((logits.argmax(dim=1) == labels).float().mean())
    return {"accuracy": accuracy, "loss": loss}


def wire_bytes(message: Message) -> int:
    """Bytes of the distinct objects of ``message``'s tree, as Flower sends them."""
    return sum(len(obj.deflate()) for obj in get_all_nested_objects(message).values())


# -- the apps ----------------------------------------------------------------------------------


def make_client_app(job_path: str | None, cfg: dict[str, Any] | None) -> ClientApp:
    """The device side; with ``None``, the run config names the job and config files."""
    app = ClientApp()

    def _setup(context: Context) -> tuple[dict[str, np.ndarray], dict[str, Any], int]:
        path = job_path or str(context.run_config["job"])
        config = cfg or json.loads(Path(str(context.run_config["config"])).read_text())
        return load_job(path), config, int(context.node_config["partition-id"])

    @app.query()
    def query(message: Message, context: Context) -> Message:
        _, _, partition = _setup(context)
        content = RecordDict({"info": ConfigRecord({"partition-id": partition})})
        return Message(content, reply_to=message)

    @app.train()
    def train_round(message: Message, context: Context) -> Message:
        job, config, partition = _setup(context)
        round_ = int(message.content["config"]["server-round"])
        shard = job[f"shard/{partition}"]
        model = build_model(config["width"])
        model.load_state_dict(message.content["arrays"].to_torch_state_dict())
        seed = int(job["client_seeds"][round_ - 1, partition])
        torch.set_num_threads(1)
        examples = train(model, job["x_train"][shard], job["y_train"][shard], config, seed)
        content = RecordDict(
            {
                "arrays": ArrayRecord(model.state_dict()),
                "metrics": MetricRecord({"num-examples": examples}),
            }
        )
        return Message(content, reply_to=message)

    return app


class _Nodes:
    """A view of the grid that offers only the nodes scheduled for this round."""

    def __init__(self, grid: Grid, nodes: list[int]) -> None:
        self._grid, self._nodes = grid, nodes

    def get_node_ids(self) -> list[int]:
        return list(self._nodes)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._grid, name)


class ScheduledFedAvg(FedAvg):
    """Flower's FedAvg sampling the job's devices each round, counting the bytes it moves."""

    def __init__(self, schedule: list[list[int]], node_of: dict[int, int], **kwargs: Any):
        super().__init__(**kwargs)
        self.schedule, self.node_of = schedule, node_of
        self.downlink: list[int] = []
        self.uplink: list[int] = []

    def configure_train(self, server_round, arrays, config, grid):  # type: ignore[no-untyped-def]
        nodes = [self.node_of[d] for d in self.schedule[server_round - 1]]
        messages = list(super().configure_train(server_round, arrays, config, _Nodes(grid, nodes)))
        self.downlink.extend(wire_bytes(m) for m in messages)
        return messages

    def aggregate_train(self, server_round, replies):  # type: ignore[no-untyped-def]
        replies = list(replies)
        self.uplink.extend(wire_bytes(m) for m in replies if not m.has_error())
        return super().aggregate_train(server_round, replies)


def partitions_of(grid: Grid, count: int) -> dict[int, int]:
    """Ask every node for its partition id once: ``{partition: node_id}``."""
    while len(nodes := list(grid.get_node_ids())) < count:
        time.sleep(0.1)
    asks = [Message(RecordDict(), dst_node_id=n, message_type=MessageType.QUERY) for n in nodes]
    found = {}
    for reply in grid.send_and_receive(asks, timeout=600):
        if reply.has_error():
            raise RuntimeError(f"node {reply.metadata.src_node_id}: {reply.error.reason}")
        found[int(reply.content["info"]["partition-id"])] = reply.metadata.src_node_id
    return found


def run_server(grid: Grid, job: dict[str, np.ndarray], cfg: dict[str, Any]) -> dict[str, Any]:
    """Flower FedAvg over the job's schedule with central evaluation; the figures."""
    schedule = job["schedule"].tolist()
    node_of = partitions_of(grid, cfg["clients"])
    per_round = len(schedule[0])
    strategy = ScheduledFedAvg(
        schedule,
        node_of,
        fraction_train=1.0,
        fraction_evaluate=0.0,
        min_train_nodes=per_round,
        min_available_nodes=per_round,
    )
    model = build_model(cfg["width"])
    marks: list[float] = []
    accuracy: list[float] = []

    def central(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        model.load_state_dict(arrays.to_torch_state_dict())
        torch.set_num_threads(1)
        metrics = evaluate(model, job["x_holdout"], job["y_holdout"])
        marks.append(time.perf_counter())
        if server_round > 0:
            accuracy.append(metrics["accuracy"])
            print(
                f"  flower round {server_round}/{cfg['rounds']}: "
                f"accuracy {metrics['accuracy']:.4f}",
                flush=True,
            )
        return MetricRecord(metrics)

    strategy.start(
        grid,
        initial_arrays=ArrayRecord(initial_state(job)),
        num_rounds=cfg["rounds"],
        evaluate_fn=central,
    )
    return {
        "accuracy": accuracy,
        "round_seconds": np.diff(marks).tolist(),
        "uplink_bytes": strategy.uplink,
        "downlink_bytes": strategy.downlink,
    }


def make_server_app(
    job_path: str | None, cfg: dict[str, Any] | None, out: dict[str, Any]
) -> ServerApp:
    """The server side; its figures land in ``out``."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        path = job_path or str(context.run_config["job"])
        config = cfg or json.loads(Path(str(context.run_config["config"])).read_text())
        out.update(run_server(grid, load_job(path), config))

    return app


def main(argv: list[str]) -> int:
    """Run one simulated job with Flower's simulation runtime; write the figures as JSON."""
    from flwr.simulation import run_simulation

    job_path, config_path, out_path = argv
    cfg = json.loads(Path(config_path).read_text())
    out: dict[str, Any] = {}
    start = time.perf_counter()
    run_simulation(
        server_app=make_server_app(job_path, cfg, out),
        client_app=make_client_app(job_path, cfg),
        num_supernodes=cfg["clients"],
    )
    out["wall_seconds"] = time.perf_counter() - start
    import flwr

    out["flwr"] = flwr.__version__
    out["torch"] = torch.__version__
    Path(out_path).write_text(json.dumps(out))
    return 0 if "accuracy" in out else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
