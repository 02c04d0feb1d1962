"""The network guard itself: what it records, what it lets pass, and that it is in force."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from edgefleet.testing.postgres import PostgresServer
from edgefleet.testing.pytest_postgres import postgres_server  # noqa: F401 (used by name)
from tests.e2e.netguard import GUARD_DIR, LOG_VARIABLE, guarded_env, report

# Local traffic first; then a hook added after the guard's refuses every socket operation, so
# the off-machine lookup and connection are recorded by the guard and never leave the machine.
CHILD = textwrap.dedent(
    """
    import os, socket, sys

    with socket.create_server(("127.0.0.1", 0)) as server:
        socket.create_connection(server.getsockname(), timeout=5).close()
    path = os.path.join(sys.argv[1], "db.sock")  # as PostgreSQL's unix socket
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(path)
        server.listen()
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(path)
    socket.getaddrinfo("localhost", 5432)
    socket.getaddrinfo("127.0.0.1", 5432)
    socket.getaddrinfo(None, 8080)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # made before the refusing hook

    def refuse(event, args):
        if event.startswith("socket."):
            raise PermissionError("refused by the test: no traffic off this machine")

    sys.addaudithook(refuse)
    for call in (
        lambda: socket.getaddrinfo("phone-home.example", 443),
        lambda: udp.connect(("192.0.2.1", 9)),
    ):
        try:
            call()
        except PermissionError:
            pass
        else:
            sys.exit("the operation went ahead")
    """
)


def test_off_machine_lookups_and_connections_are_recorded_and_loopback_is_not(
    tmp_path: Path,
) -> None:
    log = tmp_path / "net.jsonl"
    env = {**os.environ, **guarded_env(log, os.environ.get("PYTHONPATH"))}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["event"], e["destination"]) for e in entries] == [
        ("socket.getaddrinfo", "phone-home.example:443"),
        ("socket.connect", "192.0.2.1:9"),
    ]
    assert all(e["pid"] != os.getpid() and e["stack"] for e in entries)
    message = report(log)  # what would fail the session
    assert message is not None
    assert "phone-home.example:443" in message
    assert "192.0.2.1:9" in message
    assert f"pid {entries[0]['pid']}" in message


def test_postgresql_over_its_unix_socket_and_loopback_is_allowed(
    tmp_path: Path,
    postgres_server: PostgresServer,  # noqa: F811 (the fixture)
) -> None:
    log = tmp_path / "net.jsonl"
    env = {**os.environ, **guarded_env(log, os.environ.get("PYTHONPATH"))}
    server = postgres_server
    child = textwrap.dedent(
        f"""
        import psycopg

        for host in ({str(server.socket_dir)!r}, "127.0.0.1", "localhost"):
            dsn = f"host={{host}} port={server.port} user={server.user} dbname=edgefleet"
            with psycopg.connect(dsn, connect_timeout=30) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", child], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert report(log) is None


def test_a_clean_log_fails_nothing(tmp_path: Path) -> None:
    assert report(tmp_path / "never-written.jsonl") is None


def test_every_subprocess_of_this_session_inherits_the_guard() -> None:
    assert os.environ.get(LOG_VARIABLE)
    assert str(GUARD_DIR) in os.environ["PYTHONPATH"].split(os.pathsep)
    probe = "import sitecustomize; print(sitecustomize.__file__)"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert Path(done.stdout.strip()) == GUARD_DIR / "sitecustomize.py"
