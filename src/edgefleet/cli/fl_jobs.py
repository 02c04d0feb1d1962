"""``edgefleet fl start|status|list|cancel``: federated jobs through the fleet's agents."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any

import typer

from edgefleet.cli.fl import fl_app
from edgefleet.cli.fleet import (
    DEFAULT_SERVER,
    CaOpt,
    JsonOpt,
    ServerOpt,
    TokenOpt,
    _client,
    _print_json,
    _table,
)
from edgefleet.cli.rollout import parse_target
from edgefleet.errors import ConfigurationError

__all__ = ["fl_app", "print_job", "wait_for_job"]

_DONE = ("completed", "failed", "cancelled")


def _num(value: Any, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def round_rows(result: dict[str, Any]) -> list[list[str]]:
    """One table row per round of a job status."""
    rows = []
    for r in result["rounds"]:
        metrics = r.get("metrics") or {}
        rows.append(
            [
                str(r["round"]),
                r["state"],
                f"{r.get('participants', 0)}/{r.get('selected', 0)}",
                str(r.get("dropouts", "-")),
                str(r.get("rejected", "-")),
                str(r.get("bytes_up", 0)),
                str(r.get("bytes_down", 0)),
                _num(metrics.get("accuracy")),
                _num(metrics.get("loss")),
            ]
        )
    return rows


ROUND_HEADER = [
    "ROUND",
    "STATE",
    "SENT/SEL",
    "DROPPED",
    "REJECTED",
    "UP_B",
    "DOWN_B",
    "ACC",
    "LOSS",
]


def print_job(result: dict[str, Any], *, echo: Callable[[str], None] = typer.echo) -> None:
    """Print a job status (as the operator API returns it) for people."""
    config = result["config"]
    echo(
        f"{result['job_id']}  {result['task']} from {result['model']}@{result['base_version']}  "
        f"{result['state'].upper()}  round {result['round']}/{config['rounds']}  "
        f"{config['strategy']} + {config['compression']}, {config['per_round']} per round"
    )
    initial = result.get("initial_metrics") or {}
    if initial:
        echo(f"start: accuracy {_num(initial.get('accuracy'))}, loss {_num(initial.get('loss'))}")
    if result["rounds"]:
        _table(round_rows(result), ROUND_HEADER, echo)
    spent = [r["privacy"] for r in result["rounds"] if r.get("privacy")]
    if spent and spent[-1].get("epsilon") is not None:
        last = spent[-1]
        echo(
            f"privacy: {last['spec']}; spent epsilon {last['epsilon']:.3g} "
            f"at delta {last['delta']:g}"
        )
    if result["reason"]:
        echo(f"reason: {result['reason']}")
    for r in result["rounds"]:
        for device in r.get("devices", []):
            if device["state"] in ("rejected", "refused") or "refused" in device["reason"]:
                echo(f"  round {r['round']} {device['device_id']}: {device['reason']}")


def wait_for_job(
    get: Callable[[], dict[str, Any]],
    *,
    timeout_s: float,
    echo: Callable[[str], None] = typer.echo,
    poll_s: float = 1.0,
) -> dict[str, Any]:
    """Poll a job until it is done, printing each round as it closes; the last status."""
    shown = 0
    deadline = time.monotonic() + timeout_s
    while True:
        result = get()
        closed = [r for r in result["rounds"] if r["state"] != "open"]
        for r in closed[shown:]:
            metrics = r.get("metrics") or {}
            echo(
                f"  round {r['round']:>3} {r['state']:<6} {r['participants']}/{r['selected']} "
                f"updates, {r['dropouts']} dropped, {r['rejected']} rejected, "
                f"{r['bytes_up']} B up, {r['bytes_down']} B down, "
                f"accuracy {_num(metrics.get('accuracy'))}  ({r['closed_by']})"
            )
        shown = len(closed)
        if result["state"] in _DONE:
            return result
        if time.monotonic() > deadline:
            raise ConfigurationError(
                f"federated job {result['job_id']} still {result['state']} after {timeout_s:g} s"
            )
        time.sleep(poll_s)


@fl_app.command("start")
def start(
    task: Annotated[str, typer.Option(help="Task the devices train: digits, or module:attr.")],
    model: Annotated[
        str, typer.Option(help="NAME@VERSION: the registered model the job starts from.")
    ],
    select: Annotated[
        str, typer.Option(help="Label selector of the devices, e.g. site=plant-3 (all: '').")
    ] = "",
    rounds: Annotated[int, typer.Option(help="Rounds to run.")] = 10,
    per_round: Annotated[int, typer.Option("--per-round", help="Devices per round.")] = 5,
    min_results: Annotated[
        int,
        typer.Option(
            "--min-results", help="Close a round once this many updates arrived (0: all)."
        ),
    ] = 0,
    strategy: Annotated[
        str, typer.Option(help="Aggregation: fedavg, fedavgm, fedadam, fedprox:mu=0.01, ...")
    ] = "fedavg",
    compression: Annotated[
        str, typer.Option(help="Uplink codec: dense, fp16, int8, topk:0.99, dgc:0.999.")
    ] = "dense",
    deadline: Annotated[
        str, typer.Option(help="A round closes this long after it opened (e.g. 90s, 5m).")
    ] = "5m",
    local_epochs: Annotated[int, typer.Option("--local-epochs", help="Local epochs.")] = 1,
    learning_rate: Annotated[
        float | None,
        typer.Option("--learning-rate", help="Local learning rate (default: the task's)."),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Local batch size (default: the task's).")
    ] = None,
    privacy: Annotated[
        str | None,
        typer.Option(
            help="Differential privacy: 'dp:clip=C,noise=Z[,delta=1e-5][,at=device|relay]' "
            "(clip each update to L2 norm C, Gaussian noise Z*C; the spent epsilon is shown)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seeds device selection and training.")] = 0,
    wait: Annotated[
        bool, typer.Option(help="Wait for the job to finish, printing each round.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="With --wait: give up after this many s.")] = 3600,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = "",
    ca_file: CaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Start a federated job: devices train on their own data, only updates travel.

    The result is registered as a new version of the model, ready for `edgefleet rollout`.
    """
    name, version = parse_target(model, "--model")
    body = {
        "task": task,
        "model": name,
        "version": version,
        "selector": select,
        "rounds": rounds,
        "per_round": per_round,
        "min_results": min_results,
        "strategy": strategy,
        "compression": compression,
        "deadline": deadline,
        "local_epochs": local_epochs,
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "privacy": privacy,
        "seed": seed,
    }
    with _client(server, token, ca_file) as client:
        result = client.request("POST", "/fl/jobs", json=body)
        job_id = result["job_id"]
        if not as_json:
            typer.echo(
                f"started {job_id}: {task} from {name}@{version}, {rounds} rounds of "
                f"{per_round} devices, {compression}"
            )
        if wait:
            result = wait_for_job(
                lambda: client.request("GET", f"/fl/jobs/{job_id}"),
                timeout_s=timeout,
                echo=(lambda _: None) if as_json else typer.echo,
            )
    if as_json:
        _print_json(result)
    elif wait:
        print_job(result)


@fl_app.command("status")
def status(
    job_id: Annotated[str, typer.Argument(help="The job id (fl-...).")],
    wait: Annotated[bool, typer.Option(help="Wait until the job is done.")] = False,
    timeout: Annotated[float, typer.Option(help="With --wait: give up after this many s.")] = 3600,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = "",
    ca_file: CaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Per round: participants, dropouts, rejections, bytes up and down, held-out metrics."""
    with _client(server, token, ca_file) as client:
        if wait:
            result = wait_for_job(
                lambda: client.request("GET", f"/fl/jobs/{job_id}"),
                timeout_s=timeout,
                echo=(lambda _: None) if as_json else typer.echo,
            )
        else:
            result = client.request("GET", f"/fl/jobs/{job_id}")
    if as_json:
        _print_json(result)
    else:
        print_job(result)


@fl_app.command("list")
def list_jobs(
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = "",
    ca_file: CaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every federated job, newest first."""
    with _client(server, token, ca_file) as client:
        rows = client.request("GET", "/fl/jobs")
    if as_json:
        _print_json(rows)
        return
    _table(
        [
            [
                r["job_id"],
                r["task"],
                f"{r['model']}@{r['base_version']}",
                r["state"],
                f"{r['round']}/{r['rounds']}",
                r["result_version"] or "-",
                r["reason"][:60],
            ]
            for r in rows
        ],
        ["ID", "TASK", "FROM", "STATE", "ROUND", "RESULT", "REASON"],
    )


@fl_app.command("cancel")
def cancel(
    job_id: Annotated[str, typer.Argument(help="The job id (fl-...).")],
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = "",
    ca_file: CaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Stop a running job (nothing is registered)."""
    with _client(server, token, ca_file) as client:
        result = client.request("POST", f"/fl/jobs/{job_id}/cancel")
    if as_json:
        _print_json(result)
    else:
        typer.echo(f"{job_id}: {result['state']}")
