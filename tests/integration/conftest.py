from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgefleet.runtime import ModelRepository, load, load_pipeline
from edgefleet.runtime.oip import HTTPServer, InferenceService, make_server


@pytest.fixture(scope="module")
def server(
    digits_path: Path, echo_path: Path, demo_dir: Path
) -> Iterator[tuple[HTTPServer, InferenceService]]:
    """A real server on a loopback port, serving the digits, echo and pipeline models."""
    repo = ModelRepository()
    repo.add(load(digits_path, name="digits", version="2", nan_policy="reject"))
    repo.add(load(echo_path, name="echo"))
    repo.add(load_pipeline(demo_dir / "digit-reader.yaml"))
    srv, service = make_server(repo, "127.0.0.1", 0, max_body_bytes=1_000_000)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv, service
    srv.shutdown(5)
    thread.join(5)
    repo.close()


@pytest.fixture
def base(server: tuple[HTTPServer, InferenceService]) -> str:
    return f"127.0.0.1:{server[0].port}"
