"""The ``edgefleet`` command line.

Exit codes are defined once, in :mod:`edgefleet.cli.exit_codes` (``docs/cli.md`` lists them):
every :class:`~edgefleet.errors.EdgefleetError` that reaches :func:`main` becomes one line on
stderr and the exit code of its class.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError

from edgefleet import __version__
from edgefleet.cli import fleet, rollout
from edgefleet.cli.agent import agent_command
from edgefleet.cli.bench import bench_app
from edgefleet.cli.exit_codes import (
    EXIT_ADDRESS,
    EXIT_AUTH,
    EXIT_DATA_DIR_IN_USE,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_MODEL,
    EXIT_TARGET,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    exit_code_for,
)
from edgefleet.cli.extras import extras_needed
from edgefleet.cli.fl_jobs import fl_app  # `fl simulate` and the job commands
from edgefleet.cli.server import server_app
from edgefleet.errors import EdgefleetError

__all__ = [
    "EXIT_ADDRESS",
    "EXIT_AUTH",
    "EXIT_DATA_DIR_IN_USE",
    "EXIT_ERROR",
    "EXIT_MODEL",
    "EXIT_TARGET",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "app",
    "fail",
    "main",
]

app = typer.Typer(
    name="edgefleet",
    help="Run ML models on edge devices and manage the fleet around them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: Rich markup would eat "[default: ...]" and "pkg[extra]"
)
models_app = typer.Typer(
    help="Build the demo and test models (nothing is downloaded).", rich_markup_mode=None
)
app.add_typer(models_app, name="models")
app.add_typer(bench_app, name="bench")
app.add_typer(server_app, name="server")
fleet.register(app)
app.add_typer(rollout.rollout_app, name="rollout")
app.add_typer(rollout.policy_app, name="policy")
app.add_typer(fl_app, name="fl")
app.command("agent")(agent_command)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"edgefleet {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the edgefleet version and exit.",
        ),
    ] = False,
) -> None:
    """Run ML models on edge devices and manage the fleet around them."""


def fail(message: str, code: int) -> NoReturn:
    """Print ``error: message`` to stderr and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@app.command()
def version() -> None:
    """Print the edgefleet version."""
    typer.echo(__version__)


@app.command()
def serve(
    model: Annotated[
        Path, typer.Argument(help="ONNX model (.onnx) or pipeline definition (.yaml/.json).")
    ],
    name: Annotated[
        str | None, typer.Option(help="Name to serve under [default: file name].")
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="Address to listen on [default: 127.0.0.1].")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="TCP port; 0 picks a free one [default: 8000].")
    ] = None,
    model_version: Annotated[
        str | None, typer.Option("--model-version", help="Version label [default: 1].")
    ] = None,
    nan_policy: Annotated[
        str | None, typer.Option(help="'reject' (default) or 'allow' NaN/inf inputs.")
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(min=0, help="ONNX Runtime threads per operator; 0 = one per core."),
    ] = None,
    spin_wait: Annotated[
        bool | None,
        typer.Option(
            "--spin-wait/--no-spin-wait",
            help="Let idle ONNX Runtime threads spin [default: no; they would take CPU "
            "from concurrent requests].",
        ),
    ] = None,
    providers: Annotated[
        str | None, typer.Option(help="Execution providers, comma-separated, or 'auto'.")
    ] = None,
    max_body_bytes: Annotated[
        int | None, typer.Option(help="Request body limit; larger gets HTTP 413.")
    ] = None,
) -> None:
    """Serve a model or pipeline over the Open Inference Protocol (KServe V2 REST).

    Works with tritonclient[http], KServe clients and curl; JSON and binary tensors. Settings
    can also come from EDGEFLEET_* environment variables (EDGEFLEET_PORT, ...).
    """
    from edgefleet.runtime.oip.serve import serve as run
    from edgefleet.runtime.oip.settings import ServeSettings

    given = {
        "model_path": model,
        "name": name,
        "host": host,
        "port": port,
        "version": model_version,
        "nan_policy": nan_policy,
        "intra_op_threads": threads,
        "spin_wait": spin_wait,
        "providers": providers,
        "max_body_bytes": max_body_bytes,
    }
    try:
        settings = ServeSettings.model_validate({k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        fail(f"invalid settings: {_problems(exc, _SERVE_OPTIONS)}", EXIT_USAGE)
    try:
        run(settings, announce=lambda line: typer.echo(line, err=True))
    except OSError as exc:
        fail(
            f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}", EXIT_ADDRESS
        )


_SERVE_OPTIONS = {
    "model_path": "MODEL",
    "name": "--name",
    "host": "--host",
    "port": "--port",
    "version": "--model-version",
    "nan_policy": "--nan-policy",
    "intra_op_threads": "--threads",
    "spin_wait": "--spin-wait",
    "providers": "--providers",
    "max_body_bytes": "--max-body-bytes",
}


def _problems(exc: ValidationError, options: dict[str, str]) -> str:
    """Each problem of ``exc``, named by the option the user typed (or the env variable)."""
    parts = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        where = options.get(field, f"EDGEFLEET_{field.upper()}" if field else "settings")
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="Where models and logs go.")] = Path(
        ".edgefleet-demo"
    ),
    seconds: Annotated[float, typer.Option(help="Seconds of load per measurement.")] = 3.0,
) -> None:
    """Build models, serve them, send real requests, print latency percentiles and throughput."""
    with extras_needed("edgefleet demo", "server", "train"):
        from edgefleet.cli.demo import run_demo

        run_demo(workdir, seconds=seconds)


@models_app.command("build")
def models_build(
    out: Annotated[Path, typer.Option(help="Directory to write the models into.")] = Path("models"),
    resnet: Annotated[
        bool, typer.Option(help="Also build the ResNet-18-sized model (47 MB).")
    ] = False,
) -> None:
    """Build the digit classifier, the detector and a digit-reader pipeline into OUT."""
    with extras_needed("edgefleet models build", "train"):
        from edgefleet.testing.demo_assets import write_demo_assets

        for path in write_demo_assets(out, resnet=resnet):
            typer.echo(path)


def main() -> None:
    """Entry point: run the app and turn edgefleet errors into one line and an exit code."""
    try:
        app()
    except EdgefleetError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exit_code_for(exc))
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
