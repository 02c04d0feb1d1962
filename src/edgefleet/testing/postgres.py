"""A throwaway PostgreSQL cluster for tests: ``initdb`` into a temporary folder, ``pg_ctl start``.

The cluster listens on a free TCP port on 127.0.0.1 (and on a Unix socket inside its folder),
trusts every local connection, and is built for speed, not durability (``fsync=off``). When
the current process is root, which PostgreSQL refuses to run as, the server runs as the
``postgres`` operating-system user (through ``runuser``, or ``su``) and its folder belongs to
that user.

Databases are created and dropped with psycopg (the ``server`` extra), imported only when needed.

Examples
--------
>>> from edgefleet.testing.postgres import start_postgres
>>> with start_postgres() as pg:  # doctest: +SKIP
...     url = pg.create_database("demo")
...     url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
True
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["PostgresNotFoundError", "PostgresServer", "find_postgres_bin", "start_postgres"]

_SEARCH_GLOB = "/usr/lib/postgresql/*/bin"
_SERVER_OPTIONS = (
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
    "-c max_connections=300 -c shared_buffers=32MB"
)
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresNotFoundError(RuntimeError):
    """No PostgreSQL server binaries (``initdb``, ``pg_ctl``) could be found."""


def find_postgres_bin() -> Path:
    """The folder holding ``initdb`` and ``pg_ctl``: from ``PATH``, else the newest Debian one.

    Raises
    ------
    PostgresNotFoundError
        When neither ``PATH`` nor ``/usr/lib/postgresql/*/bin`` has them.
    """
    on_path = shutil.which("initdb")
    if on_path is not None:
        folder = Path(on_path).resolve().parent
        if (folder / "pg_ctl").exists():
            return folder
    candidates = [p for p in Path("/").glob(_SEARCH_GLOB.lstrip("/")) if (p / "initdb").exists()]
    if not candidates:
        raise PostgresNotFoundError(
            "PostgreSQL server binaries (initdb, pg_ctl) are neither on PATH nor under "
            f"{_SEARCH_GLOB}; install them with `make postgres` (apt-get install postgresql)"
        )
    return max(candidates, key=lambda p: _version_key(p.parent.name))


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresServer:
    """A running throwaway cluster; stop it with :meth:`stop` or by leaving its ``with`` block.

    Parameters
    ----------
    root
        The cluster's folder (data, socket and log); removed by :meth:`stop`.
    bin_dir
        The folder of the PostgreSQL binaries.
    port
        The TCP port on 127.0.0.1.
    run_as
        The operating-system user the server runs as, or None for the current user.
    """

    user = "postgres"
    """The database superuser (trust authentication, no password)."""

    def __init__(self, root: Path, bin_dir: Path, port: int, run_as: str | None) -> None:
        self.root = root
        self.bin_dir = bin_dir
        self.port = port
        self.run_as = run_as
        self.data_dir = root / "data"
        self.socket_dir = root / "socket"
        self.log_file = root / "postgres.log"
        self._running = False

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``edgefleet`` database created at start."""
        return self.database_url("edgefleet")

    def database_url(self, name: str) -> str:
        """SQLAlchemy URL (psycopg 3 driver) of the database ``name`` on this server."""
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{name}"

    def _command(self, *args: str) -> None:
        command = [str(a) for a in args]
        if self.run_as is not None:
            runuser = shutil.which("runuser")
            if runuser is not None:
                command = [runuser, "-u", self.run_as, "--", *command]
            else:
                joined = " ".join(_quote(a) for a in command)
                command = ["su", "-s", "/bin/sh", self.run_as, "-c", joined]
        done = subprocess.run(
            command, cwd=self.root, capture_output=True, text=True, check=False, timeout=120
        )
        if done.returncode != 0:
            log = self.log_file.read_text() if self.log_file.exists() else ""
            raise RuntimeError(
                f"{Path(args[0]).name} failed with exit code {done.returncode}:\n"
                f"{done.stdout}{done.stderr}{log[-4000:]}"
            )

    def start(self) -> None:
        """Run ``initdb`` and ``pg_ctl start``, then create the ``edgefleet`` database."""
        self.socket_dir.mkdir()
        if self.run_as is not None:
            entry = pwd.getpwnam(self.run_as)
            for path in (self.root, self.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._command(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            self.user,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        options = f"-h 127.0.0.1 -p {self.port} -k {self.socket_dir} {_SERVER_OPTIONS}"
        self._command(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        self._running = True
        self.create_database("edgefleet")

    def stop(self) -> None:
        """Stop the server at once (``pg_ctl stop -m immediate``) and remove its folder."""
        try:
            self._stop_server()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def _stop_server(self) -> None:
        if self._running:
            self._running = False
            self._command(
                str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "stop"
            )

    def _admin(self) -> Any:
        import psycopg  # the server extra; only tests of the control plane start PostgreSQL

        return psycopg.connect(
            host="127.0.0.1", port=self.port, user=self.user, dbname="postgres", autocommit=True
        )

    def create_database(self, name: str, *, template: str | None = None) -> str:
        """Create the database ``name`` (a copy of ``template`` if given) and return its URL."""
        _check_name(name)
        sql = f'CREATE DATABASE "{name}"'
        if template is not None:
            _check_name(template)
            sql += f' TEMPLATE "{template}"'
        with self._admin() as conn:
            conn.execute(sql)
        return self.database_url(name)

    def drop_database(self, name: str) -> None:
        """Drop the database ``name``, closing any connection still open to it."""
        _check_name(name)
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise ValueError(f"database name {name!r} must match {_NAME.pattern}")


def _quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\"'\"'") + "'"


def start_postgres(base_dir: Path | None = None, *, bin_dir: Path | None = None) -> PostgresServer:
    """Start a throwaway PostgreSQL cluster and return it, running.

    Parameters
    ----------
    base_dir
        Where to create the cluster's folder; the system's temporary folder by default. When
        running as root it must be reachable by the ``postgres`` user (pytest's ``tmp_path``
        is not: it lies under a folder only root may enter).
    bin_dir
        The folder of ``initdb`` and ``pg_ctl``; found with :func:`find_postgres_bin` if None.

    Returns
    -------
    PostgresServer
        The running server, with a database ``edgefleet`` at :attr:`PostgresServer.url`.

    Raises
    ------
    PostgresNotFoundError
        When no PostgreSQL binaries can be found.
    RuntimeError
        When ``initdb`` or ``pg_ctl`` fails (the message holds their output and the server log).
    """
    folder = bin_dir if bin_dir is not None else find_postgres_bin()
    run_as = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="edgefleet-pg-", dir=base_dir))
    root.chmod(0o755)
    last_error: RuntimeError | None = None
    for _ in range(3):  # another process may take the free port before the server binds it
        server = PostgresServer(root, folder, _free_port(), run_as)
        try:
            server.start()
        except BaseException as error:
            with contextlib.suppress(RuntimeError):
                server._stop_server()
            shutil.rmtree(server.data_dir, ignore_errors=True)
            shutil.rmtree(server.socket_dir, ignore_errors=True)
            server.log_file.unlink(missing_ok=True)
            if not isinstance(error, RuntimeError):
                shutil.rmtree(root, ignore_errors=True)
                raise
            last_error = error
            continue
        return server
    shutil.rmtree(root, ignore_errors=True)
    assert last_error is not None
    raise last_error
