"""``edgefleet fl``: federated learning; ``fl simulate`` runs a job with simulated devices."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from edgefleet.cli.extras import missing_extra_hint, require_extras

if TYPE_CHECKING:
    from edgefleet.federated.simulation import Backend

__all__ = ["fl_app"]

fl_app = typer.Typer(
    help="Federated learning: train one model on many devices' data without moving the data.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

_COLUMNS = [
    ("round", 5),
    ("participants", 12),
    ("dropouts", 8),
    ("late", 4),
    ("uplink_bytes", 12),
    ("downlink_bytes", 14),
    ("accuracy", 8),
    ("loss", 7),
]


def _line(values: list[str]) -> str:
    return "  ".join(v.rjust(w) for v, (_, w) in zip(values, _COLUMNS, strict=True))


def _check(option: str, problem: Exception | str) -> typer.BadParameter:
    return typer.BadParameter(str(problem), param_hint=f"'{option}'")


@fl_app.command("simulate")
def simulate_command(
    task: Annotated[
        str,
        typer.Option(help="Task to train: a built-in name (digits) or module:attr of a Task."),
    ] = "digits",
    clients: Annotated[int, typer.Option(help="Number of simulated devices.")] = 10,
    partition: Annotated[
        str,
        typer.Option(
            help="How the training data is split over the devices: 'iid', or "
            "'dirichlet:ALPHA' for label skew (smaller ALPHA, more skew; 0.5 is typical)."
        ),
    ] = "iid",
    rounds: Annotated[int, typer.Option(help="Federated rounds to run.")] = 30,
    per_round: Annotated[
        int, typer.Option("--per-round", help="Devices sampled per round (at most --clients).")
    ] = 5,
    strategy: Annotated[
        str,
        typer.Option(
            help="Aggregation strategy spec: fedavg, fedavgm, fedadam, fedprox, trimmed_mean, "
            "median, with optional parameters, e.g. 'fedprox:mu=0.01' or 'fedavgm:momentum=0.9'."
        ),
    ] = "fedavg",
    compression: Annotated[
        str,
        typer.Option(
            help="Uplink codec spec: dense, fp16, int8, 'topk:SPARSITY' or 'dgc:SPARSITY' "
            "(e.g. dgc:0.999 sends 0.1% of the values; the rest waits on the device)."
        ),
    ] = "dense",
    local_epochs: Annotated[
        int, typer.Option("--local-epochs", help="Epochs of local training per round.")
    ] = 1,
    dropout: Annotated[
        float,
        typer.Option(help="Probability that a selected device fails and never reports, [0, 1)."),
    ] = 0.0,
    slow: Annotated[
        float,
        typer.Option(
            help="Probability that a selected device reports after the deadline, [0, 1); its "
            "update is ignored that round and it keeps its codec state."
        ),
    ] = 0.0,
    downlink: Annotated[
        str,
        typer.Option(
            help="'full': send the whole model each round; 'delta': a float16 delta against "
            "the model the device holds."
        ),
    ] = "full",
    seed: Annotated[
        int, typer.Option(help="Seeds initialisation, partition, sampling, failures, training.")
    ] = 0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document instead of the table.")
    ] = False,
    backend: Annotated[
        str,
        typer.Option(
            help="Where the devices' training runs: 'local' (this process, one device after "
            "another) or 'ray' (Ray tasks on this machine or a cluster; "
            "pip install 'edgefleet[ray]'). Both give the same results."
        ),
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            help="With --backend ray: the cluster to use, 'auto' (the one running on this "
            "machine), 'HOST:PORT' or 'ray://HOST:PORT'. Default: start Ray on this machine "
            "for this run.",
        ),
    ] = None,
) -> None:
    """Simulate a federated job and print each round and a summary.

    Every simulated device holds its own shard of the task's training data and its own codec
    state (error-feedback residuals persist across rounds). Bytes are the encoded payloads'
    lengths on the wire; accuracy and loss are the global model's on held-out data. The
    devices' training runs in this process, or as Ray tasks with --backend ray.
    """
    from edgefleet.federated import codec_from_spec, load_task, strategy_from_spec
    from edgefleet.federated.partition import from_spec as partition_from_spec
    from edgefleet.federated.simulation import LocalBackend, RoundResult, SimulationConfig, simulate
    from edgefleet.federated.task import TASKS

    on_ray = ("ray",) if backend == "ray" else ()
    needed = ("train",) if task.strip() in TASKS else ()  # the built-ins train with PyTorch
    require_extras("edgefleet fl simulate", *needed, *on_ray)
    try:
        chosen = load_task(task)
    except ValueError as exc:
        raise _check("--task", exc) from None
    for option, parse, text in [
        ("--partition", partition_from_spec, partition),
        ("--strategy", strategy_from_spec, strategy),
        ("--compression", codec_from_spec, compression),
    ]:
        try:
            parse(text)
        except ValueError as exc:
            raise _check(option, exc) from None
    for option, value in [
        ("--clients", clients),
        ("--rounds", rounds),
        ("--per-round", per_round),
        ("--local-epochs", local_epochs),
    ]:
        if value < 1:
            raise _check(option, f"must be at least 1, got {value}")
    if per_round > clients:
        raise _check("--per-round", f"{per_round} is more than --clients {clients}")
    for option, probability in [("--dropout", dropout), ("--slow", slow)]:
        if not 0.0 <= probability < 1.0:
            raise _check(option, f"must be a probability in [0, 1), got {probability}")
    if downlink not in ("full", "delta"):
        raise _check("--downlink", f"must be 'full' or 'delta', got {downlink!r}")
    if backend not in ("local", "ray"):
        raise _check("--backend", f"must be 'local' or 'ray', got {backend!r}")
    if ray_address is not None and backend != "ray":
        raise _check("--ray-address", "needs --backend ray")
    runner: Backend = LocalBackend()
    if backend == "ray":
        runner = _ray_backend(ray_address)
    config = SimulationConfig(
        clients=clients,
        rounds=rounds,
        per_round=per_round,
        partition=partition,
        strategy=strategy,
        compression=compression,
        local_epochs=local_epochs,
        dropout=dropout,
        slow=slow,
        downlink=downlink,
        seed=seed,
    )

    def show(result: RoundResult) -> None:
        values = [
            str(result.round),
            str(result.participants),
            str(result.dropouts),
            str(result.late),
            str(result.uplink_bytes),
            str(result.downlink_bytes),
            f"{100 * result.accuracy:.2f}%",
            f"{result.metrics.get('loss', float('nan')):.4f}",
        ]
        typer.echo(_line(values))

    if not as_json:
        typer.echo(
            f"task {chosen.name}: {clients} devices ({partition}), {per_round} per round, "
            f"{rounds} rounds, strategy {strategy}, compression {compression}"
            + ("" if backend == "local" else f", backend ray ({ray_address or 'this machine'})")
        )
        typer.echo(_line([name for name, _ in _COLUMNS]))
    hint = missing_extra_hint("edgefleet fl simulate", "train", *on_ray)  # any task's imports
    with hint, _started(runner) as started:
        result = simulate(chosen, config, backend=started, progress=None if as_json else show)
    last = result.rounds[-1]
    summary: dict[str, Any] = {
        "initial_accuracy": result.initial.get("accuracy"),
        "final_accuracy": last.metrics.get("accuracy"),
        "final_loss": last.metrics.get("loss"),
        "uplink_bytes": sum(r.uplink_bytes for r in result.rounds),
        "downlink_bytes": sum(r.downlink_bytes for r in result.rounds),
        "uplink_bytes_per_update": result.uplink_per_update(),
        "downlink_bytes_per_device": result.downlink_per_device(),
        "updates": sum(r.participants for r in result.rounds),
        "dropouts": sum(r.dropouts for r in result.rounds),
        "late": sum(r.late for r in result.rounds),
        "parameters": int(result.model.size),
    }
    if as_json:
        document = {
            "config": vars(config),
            "rounds": [
                {
                    "round": r.round,
                    "selected": list(r.selected),
                    "participants": r.participants,
                    "dropouts": r.dropouts,
                    "late": r.late,
                    "late_devices": list(r.late_devices),
                    "uplink_bytes": r.uplink_bytes,
                    "downlink_bytes": r.downlink_bytes,
                    "metrics": r.metrics,
                }
                for r in result.rounds
            ],
            "summary": summary,
        }
        typer.echo(json.dumps(document, indent=2))
        return
    typer.echo(
        f"final accuracy {100 * last.accuracy:.2f}% (initial "
        f"{100 * result.initial.get('accuracy', float('nan')):.2f}%); "
        f"{summary['updates']} updates, {summary['dropouts']} dropouts, "
        f"{summary['late']} late; uplink {summary['uplink_bytes']} bytes "
        f"({summary['uplink_bytes_per_update']:.0f} per update), downlink "
        f"{summary['downlink_bytes']} bytes ({summary['downlink_bytes_per_device']:.0f} per device)"
    )


def _ray_backend(address: str | None) -> Backend:
    """A Ray backend for ``address``; bad options and a missing Ray exit 2 naming the option."""
    from edgefleet.federated.ray_backend import RayBackend, require_ray

    try:
        require_ray()
    except ImportError as exc:
        raise _check("--backend", exc) from None
    try:
        return RayBackend(address)
    except ValueError as exc:
        raise _check("--ray-address", exc) from None


@contextmanager
def _started(backend: Backend) -> Iterator[Backend]:
    """``backend``, started and closed afterwards when it has a life of its own (Ray)."""
    from edgefleet.federated.ray_backend import RayBackend

    if not isinstance(backend, RayBackend):
        yield backend
        return
    try:
        backend.start()
    except ConnectionError as exc:
        raise _check("--ray-address", exc) from None
    with backend:
        yield backend
