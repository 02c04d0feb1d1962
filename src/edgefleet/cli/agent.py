"""``edgefleet agent``: the device daemon.

Exit codes:

* 0: stopped by SIGTERM or SIGINT (a second signal during the stop kills the process at once,
  with the signal's usual status);
* 1: an unexpected error;
* 2: bad options or settings (malformed labels or address, not enrolled and no token or
  server URL, unreadable credential or CA file);
* 4: the serve address cannot be bound;
* 6: the control plane refused the enrolment token (unknown, expired or used up);
* 8: another agent runs on the data dir (the message names its PID); nothing in the data dir
  was read or written;
* any other error exits with its code from :mod:`edgefleet.cli.exit_codes` (11 for a failed
  verification, for example), never 1 unless it is unexpected.

A data dir that is a regular file, or cannot be created or read, is a bad setting (2).

A control plane that cannot be reached is not an exit: the agent serves its current model and
retries with backoff. A refused device credential (revoked) is logged as an error; the agent
keeps serving.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError

from edgefleet.cli.exit_codes import (
    EXIT_ADDRESS,
    EXIT_AUTH,
    EXIT_ERROR,
    EXIT_USAGE,
    exit_code_for,
)
from edgefleet.errors import EdgefleetError

__all__ = [
    "EXIT_ADDRESS",
    "EXIT_ENROLL_REFUSED",
    "EXIT_ERROR",
    "EXIT_USAGE",
    "agent_command",
]

EXIT_ENROLL_REFUSED = EXIT_AUTH  # the control plane refused the enrolment token


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _problems(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(map(str, error["loc"])) or "settings"
        parts.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def agent_command(
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            help="Control plane URL (https://host:port); needed to enrol, later the stored one.",
        ),
    ] = None,
    enroll_token: Annotated[
        str | None,
        typer.Option(
            "--enroll-token",
            help="One-time enrolment token (first start only; or EDGEFLEET_ENROLL_TOKEN).",
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Agent data directory (credential, models, spool)."),
    ] = None,
    labels: Annotated[
        str | None, typer.Option("--labels", help="Device labels: k=v,k2=v2 (sent at enrolment).")
    ] = None,
    serve: Annotated[
        str | None,
        typer.Option(
            "--serve", help="HOST:PORT of the local inference server [default: 127.0.0.1:8500]."
        ),
    ] = None,
    ca_file: Annotated[
        Path | None,
        typer.Option("--ca-file", help="PEM CA certificates to trust for the server's TLS."),
    ] = None,
    threads: Annotated[
        int | None, typer.Option("--threads", help="ONNX Runtime threads per operator; 0 = auto.")
    ] = None,
    providers: Annotated[
        str | None, typer.Option(help="Execution providers, comma-separated, or 'auto'.")
    ] = None,
    log_level: Annotated[
        str, typer.Option("--log-level", help="debug, info, warning or error.")
    ] = "info",
) -> None:
    """Run the device agent: serve the active model, pull desired state, report telemetry.

    Enrols once with --enroll-token, then reuses credential.json in --data-dir. The active model
    is served over the Open Inference Protocol on --serve under its registry name, even while
    the control plane is unreachable. Every setting can also come from EDGEFLEET_* environment
    variables (EDGEFLEET_HEARTBEAT_INTERVAL_S, EDGEFLEET_HEALTH_WATCH_S, ...).

    Exit codes: 0 stopped by a signal; 1 unexpected error; 2 bad options or settings; 4 the
    serve address cannot be bound; 6 the enrolment token was refused; 8 another agent runs on
    the data dir (one agent per data dir).
    """
    from edgefleet.agent.daemon import Agent
    from edgefleet.agent.settings import AgentSettings

    level = getattr(logging, log_level.upper(), None)
    if not isinstance(level, int):
        _fail(f"unknown log level {log_level!r}; use debug, info, warning or error", EXIT_USAGE)
    given: dict[str, object] = {
        "server_url": server,
        "enroll_token": enroll_token,
        "data_dir": data_dir,
        "labels": labels,
        "serve": serve,
        "ca_file": ca_file,
        "intra_op_threads": threads,
        "providers": providers,
    }
    try:
        settings = AgentSettings.model_validate({k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        _fail(f"invalid settings: {_problems(exc)}", EXIT_USAGE)
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    if level > logging.DEBUG:  # one line per heartbeat would drown what matters
        logging.getLogger("httpx").setLevel(logging.WARNING)
    agent = Agent(settings, announce=lambda line: typer.echo(line, err=True))
    try:
        agent.run()
    except EdgefleetError as exc:  # codes come from the one table (exit_codes.BY_ERROR)
        _fail(str(exc), exit_code_for(exc))
