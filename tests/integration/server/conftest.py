"""A real control plane on loopback: uvicorn in a thread, a fresh data dir per test.

``live`` uses the default SQLite store; ``live_on_each_backend`` runs a test once on SQLite and
once on a throwaway PostgreSQL database (edgefleet.testing.postgres).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from edgefleet.protocol.v1 import API_PREFIX
from edgefleet.server.app import create_app
from edgefleet.server.init import initialize
from edgefleet.server.settings import load_settings
from edgefleet.testing.pytest_postgres import (  # noqa: F401 (fixtures used by name)
    postgres_server,
    postgres_url,
)


@dataclass
class LiveServer:
    """A running server and what a test needs to talk to it."""

    url: str
    data_dir: Path
    operator_token: str
    ca_file: Path | None = None

    def client(self, token: str | None = None, prefix: str = "") -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(
            base_url=self.url + prefix,
            headers=headers,
            timeout=60.0,
            verify=ssl.create_default_context(cafile=self.ca_file) if self.ca_file else True,
        )

    def operator(self) -> httpx.Client:
        return self.client(self.operator_token, "/api/operator/v1")

    def device(self, credential: str) -> httpx.Client:
        return self.client(credential, API_PREFIX)

    def enroll(self, labels: dict[str, str] | None = None) -> dict[str, Any]:
        with self.operator() as op:
            token = op.post("/enroll-tokens", json={"labels": labels or {}}).json()["token"]
        with self.client(prefix=API_PREFIX) as c:
            response = c.post("/enroll", json={"token": token})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def run_server(
    data_dir: Path, *, ssl: tuple[Path, Path] | None = None, **overrides: Any
) -> Iterator[str]:
    """Serve ``data_dir`` with uvicorn in a thread; yields the base URL."""
    settings = load_settings(data_dir, **overrides)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    port = sock.getsockname()[1]
    ready = threading.Event()
    config = uvicorn.Config(
        create_app(settings, on_ready=ready.set),
        log_level="warning",
        access_log=False,
        ssl_certfile=str(ssl[0]) if ssl else None,
        ssl_keyfile=str(ssl[1]) if ssl else None,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    if not ready.wait(60):
        raise RuntimeError("server did not start")
    deadline = time.monotonic() + 60
    while not server.started:  # uvicorn sets it once every socket listens
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("server did not start listening")
        time.sleep(0.01)
    try:
        yield f"{'https' if ssl else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


ServerFactory = Callable[..., LiveServer]


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start servers on fresh data dirs; all are stopped at teardown."""
    stack: list[Iterator[str]] = []

    def start(name: str = "server", **overrides: Any) -> LiveServer:
        data_dir = tmp_path / name
        # a database named by the overrides is initialised too (its TUF metadata lives there)
        result = initialize(data_dir, database_url=overrides.get("database_url"))
        gen = run_server(data_dir, **overrides)
        stack.append(gen)
        url = next(gen)
        return LiveServer(url, data_dir, result.operator_token)

    yield start
    for gen in reversed(stack):
        with contextlib.suppress(StopIteration):
            next(gen)


@pytest.fixture
def live(server_factory: ServerFactory) -> LiveServer:
    """One running server with default settings."""
    return server_factory()


@pytest.fixture(params=("sqlite", "postgresql"))
def live_on_each_backend(
    server_factory: ServerFactory, request: pytest.FixtureRequest
) -> LiveServer:
    """One running server, on SQLite (its data dir) or on a new PostgreSQL database."""
    if request.param == "sqlite":
        return server_factory()
    url: str = request.getfixturevalue("postgres_url")
    return server_factory(database_url=url)
