"""``edgefleet server``: initialise a data dir, or serve the control plane."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

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
) -> None:
    """Serve the control plane from DATA_DIR (migrations run first).

    The database is SQLite in the data dir unless EDGEFLEET_DATABASE_URL names PostgreSQL
    (postgresql+psycopg://user:password@host/db); several servers may share one PostgreSQL.
    """
    if ctx.invoked_subcommand is not None:
        return
    from edgefleet.cli.main import EXIT_ADDRESS, EXIT_USAGE, fail
    from edgefleet.server.run import serve as run
    from edgefleet.server.settings import load_settings

    if data_dir is None:
        fail("--data-dir is required (create one with `edgefleet server init`)", EXIT_USAGE)
    if (tls_cert is None) != (tls_key is None):
        fail("--tls-cert and --tls-key go together", EXIT_USAGE)
    settings = load_settings(
        data_dir, host=host, port=port, tls_certfile=tls_cert, tls_keyfile=tls_key
    )
    try:
        run(settings, announce=lambda line: typer.echo(line, err=True))
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
