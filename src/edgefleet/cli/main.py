"""The ``edgefleet`` command line.

Exit codes: 0 success; 1 unexpected error; 2 bad usage, option or configuration;
3 a model or pipeline could not be loaded; 4 the address could not be bound;
5 a benchmark target is unreachable or serves a different model; 6 a credential or token was
refused; 7 the control plane cannot be reached.
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
from edgefleet.cli.fl_jobs import fl_app  # `fl simulate` and the job commands
from edgefleet.cli.server import server_app
from edgefleet.errors import (
    AuthError,
    ConfigurationError,
    EdgefleetError,
    ModelLoadError,
    PipelineError,
    TargetError,
    UplinkError,
)

__all__ = ["app", "main"]

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_MODEL = 3
EXIT_ADDRESS = 4
EXIT_TARGET = 5
EXIT_AUTH = 6
EXIT_UNREACHABLE = 7
EXIT_DATA_DIR_IN_USE = 8  # edgefleet agent: another agent holds the data dir's lock

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
        int | None, typer.Option(help="ONNX Runtime threads per operator; 0 = one per core.")
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
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        fail(f"invalid settings: {problems}", EXIT_USAGE)
    try:
        run(settings, announce=lambda line: typer.echo(line, err=True))
    except OSError as exc:
        fail(
            f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}", EXIT_ADDRESS
        )


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="Where models and logs go.")] = Path(
        ".edgefleet-demo"
    ),
    seconds: Annotated[float, typer.Option(help="Seconds of load per measurement.")] = 3.0,
) -> None:
    """Build models, serve them, send real requests, print latency percentiles and throughput."""
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
    from edgefleet.testing.demo_assets import write_demo_assets

    for path in write_demo_assets(out, resnet=resnet):
        typer.echo(path)


def main() -> None:
    """Entry point: run the app and turn edgefleet errors into one line and an exit code."""
    try:
        app()
    except (ConfigurationError, PipelineError) as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE if isinstance(exc, ConfigurationError) else EXIT_MODEL)
    except ModelLoadError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_MODEL)
    except TargetError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_TARGET)
    except AuthError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_AUTH)
    except UplinkError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_UNREACHABLE)
    except EdgefleetError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        sys.exit(130)
