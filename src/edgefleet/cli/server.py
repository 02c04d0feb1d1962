"""``edgefleet server``: initialise a data dir, or serve the control plane."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from edgefleet.cli.extras import require_extras

__all__ = ["server_app"]

server_app = typer.Typer(
    help="The control plane: `server init --data-dir D` once, then `server --data-dir D`.",
    invoke_without_command=True,
    rich_markup_mode=None,
)


@server_app.callback()
def serve(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None, typer.Option(envvar="EDGEFLEET_DATA_DIR", help="Server data dir.")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Address [default: 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port; 0 picks one [default: 8400].")] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="PEM certificate: serve HTTPS.")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key for --tls-cert.")] = None,
    relay: Annotated[
        bool,
        typer.Option(
            "--relay",
            help="Run a regional relay instead (no data dir): pass the device API through to "
            "--upstream and keep the federated updates of --region's devices in the region.",
        ),
    ] = False,
    upstream: Annotated[str | None, typer.Option(help="Relay: the control plane's URL.")] = None,
    region: Annotated[
        str | None, typer.Option(help="Relay: its region (devices labelled region=NAME).")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="EDGEFLEET_RELAY_TOKEN",
            help="Relay: an operator token of the upstream (to read jobs, send aggregates).",
        ),
    ] = None,
    log_format: Annotated[
        str | None,
        typer.Option(
            "--log-format",
            help="Log lines: text, or json (one JSON object per line; audit entries carry their "
            "fields) [default: text; env EDGEFLEET_LOG_FORMAT].",
        ),
    ] = None,
) -> None:
    """Serve the control plane from DATA_DIR (migrations run first), or a regional relay.

    The database is SQLite in the data dir unless EDGEFLEET_DATABASE_URL names PostgreSQL
    (postgresql+psycopg://user:password@host/db); several servers may share one PostgreSQL.

    With --relay --upstream URL --region NAME --token TOKEN it serves a relay for one region
    [default port 8401]: devices there use its URL as their server.
    """
    if ctx.invoked_subcommand is not None:
        return
    from edgefleet.cli.main import EXIT_ADDRESS, EXIT_USAGE, fail

    require_extras("edgefleet server", "server")
    if relay:
        _relay(upstream, region, token, host, port, tls_cert, tls_key)
        return
    if upstream is not None or region is not None:
        fail("--upstream and --region go with --relay", EXIT_USAGE)
    from edgefleet.server.run import serve as run
    from edgefleet.server.settings import load_settings

    if data_dir is None:
        fail("--data-dir is required (create one with `edgefleet server init`)", EXIT_USAGE)
    if (tls_cert is None) != (tls_key is None):
        fail("--tls-cert and --tls-key go together", EXIT_USAGE)
    if log_format is not None and log_format not in ("text", "json"):
        fail(f"--log-format {log_format!r} must be text or json", EXIT_USAGE)
    settings = load_settings(
        data_dir,
        host=host,
        port=port,
        tls_certfile=tls_cert,
        tls_keyfile=tls_key,
        log_format=log_format,
    )
    from edgefleet.server.logs import configure_logging

    configure_logging(settings.log_format)
    try:
        run(settings, announce=lambda line: typer.echo(line, err=True))
    except OSError as exc:
        fail(
            f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}", EXIT_ADDRESS
        )


def _relay(
    upstream: str | None,
    region: str | None,
    token: str | None,
    host: str | None,
    port: int | None,
    tls_cert: Path | None,
    tls_key: Path | None,
) -> None:
    import logging

    from pydantic import ValidationError

    from edgefleet.cli.main import EXIT_ADDRESS, EXIT_USAGE, fail
    from edgefleet.server.relay import RelaySettings, serve_relay

    missing = [
        n for n, v in (("--upstream", upstream), ("--region", region), ("--token", token)) if not v
    ]
    if missing:
        fail(f"--relay needs {', '.join(missing)}", EXIT_USAGE)
    if (tls_cert is None) != (tls_key is None):
        fail("--tls-cert and --tls-key go together", EXIT_USAGE)
    given: dict[str, object] = {
        "upstream": upstream,
        "region": region,
        "token": token,
        "host": host,
        "port": port,
        "tls_certfile": tls_cert,
        "tls_keyfile": tls_key,
    }
    try:
        settings = RelaySettings.model_validate({k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        fail(f"invalid relay settings: {problems}", EXIT_USAGE)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per proxied request
    try:
        serve_relay(settings, announce=lambda line: typer.echo(line, err=True))
    except OSError as exc:
        fail(
            f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}", EXIT_ADDRESS
        )


@server_app.command("init")
def init(
    data_dir: Annotated[Path, typer.Option(help="Directory to create the server in.")],
    root_key: Annotated[
        Path | None,
        typer.Option(
            help="Where to write the TUF root key; keep it offline "
            "[default: DATA_DIR/keys/root.key, with a warning]."
        ),
    ] = None,
) -> None:
    """Create the database, signing keys, TUF metadata and the first operator token."""
    require_extras("edgefleet server init", "server")
    from edgefleet.server.init import initialize

    result = initialize(
        data_dir, root_key=root_key, database_url=os.environ.get("EDGEFLEET_DATABASE_URL")
    )
    typer.echo(f"initialised {result.data_dir} (database {_masked(result.database_url)})")
    typer.echo(f"TUF root key: {result.root_key_path}")
    if result.root_key_online:
        typer.echo(
            "warning: the TUF root key is inside the data dir; move it offline after init "
            "(it is only needed to rotate keys)",
            err=True,
        )
    typer.echo(f"operator token (shown once; also in {result.data_dir}/operator-token):")
    typer.echo(result.operator_token)


def _masked(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest and ":" in rest.split("@", 1)[0]:
        user = rest.split("@", 1)[0].split(":", 1)[0]
        rest = f"{user}:***@{rest.split('@', 1)[1]}"
    return f"{scheme}{sep}{rest}"
