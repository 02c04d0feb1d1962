"""Errors name what the user typed, and each server error code gets its own exit code.

The operator CLI runs as a real subprocess against a real `edgefleet server`; the codes a
healthy server is hard to make send (an incompatible model, a failed verification, a failed
store) come from a real HTTP server on loopback that answers with exactly that error body. The
server's own messages about uploads are in tests/integration/server/test_upload_names.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from edgefleet import __version__
from edgefleet.cli.exit_codes import (
    EXIT_CONFLICT,
    EXIT_MODEL,
    EXIT_NOT_FOUND,
    EXIT_SERVER,
    EXIT_USAGE,
    EXIT_VERIFICATION,
)
from edgefleet.testing.fleet import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess.start(tmp_path_factory.mktemp("errors") / "server") as running:
        yield running


def edgefleet(*args: str, url: str = "", token: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EDGEFLEET_SERVER": url, "EDGEFLEET_TOKEN": token}
    return subprocess.run(
        [sys.executable, "-m", "edgefleet", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def cli(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return edgefleet(*args, url=server.url, token=server.token)


def test_version_option_prints_the_package_version() -> None:
    result = edgefleet("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"edgefleet {__version__}"


def test_serve_names_the_threads_option_it_refuses(echo_path: Path) -> None:
    result = edgefleet("serve", str(echo_path), "--threads", "-3")
    assert result.returncode == EXIT_USAGE
    assert "--threads" in result.stderr
    assert "intra_op_threads" not in result.stderr


def test_serve_settings_errors_name_the_option_not_the_settings_field(echo_path: Path) -> None:
    result = edgefleet("serve", str(echo_path), "--port", "70000")
    assert result.returncode == EXIT_USAGE
    assert "--port" in result.stderr


def test_a_refused_model_file_is_named_as_the_user_named_it(
    server: ServerProcess, tmp_path: Path
) -> None:
    bad = tmp_path / "my-detector-v2.onnx"
    bad.write_text("not a model")
    result = cli(server, "model", "push", str(bad), "--name", "detector")
    assert result.returncode == EXIT_MODEL
    assert "my-detector-v2.onnx" in result.stderr
    assert "model.onnx" not in result.stderr


def test_golden_out_of_range_names_the_option(server: ServerProcess, echo_path: Path) -> None:
    result = cli(server, "model", "push", str(echo_path), "--name", "echo", "--golden", "100")
    assert result.returncode == EXIT_USAGE
    assert "--golden" in result.stderr
    assert "body.golden" not in result.stderr


def _npy(path: Path) -> Path:
    with path.open("wb") as f:  # a file object: np.save would add ".npy" to a path
        np.save(f, np.zeros(3))
    return path


def _text(path: Path) -> Path:
    path.write_text("x,y\n0.1,1\n")
    return path


def _objects(path: Path) -> Path:
    with path.open("wb") as f:
        np.savez(f, x=np.array([{"a": 1}], dtype=object), y=np.array([1]))
    return path


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (_npy, "is a single .npy array"),
        (_text, "is not an .npz file"),
        (_objects, "holds Python objects"),
    ],
)
def test_a_calibration_file_that_is_not_an_npz_says_so_and_never_mentions_pickles(
    server: ServerProcess, digits_path: Path, tmp_path: Path, make: object, says: str
) -> None:
    assert callable(make)
    calibration = make(tmp_path / "labels.data")
    result = cli(
        server, "model", "push", str(digits_path), "--name", "digits", "--calibration",
        str(calibration),
    )  # fmt: skip
    assert result.returncode == EXIT_USAGE
    assert str(calibration) in result.stderr
    assert says in result.stderr
    assert "pickle" not in result.stderr


def test_not_found_and_conflict_have_their_own_exit_codes(
    server: ServerProcess, digits_path: Path, echo_path: Path
) -> None:
    missing = cli(server, "device", "show", "dev-nope")
    assert missing.returncode == EXIT_NOT_FOUND
    assert "dev-nope" in missing.stderr
    assert "unexpected" not in missing.stderr
    first = cli(server, "model", "push", str(digits_path), "--name", "twice", "--version", "1")
    assert first.returncode == 0, first.stderr
    other = cli(server, "model", "push", str(echo_path), "--name", "twice", "--version", "1")
    assert other.returncode == EXIT_CONFLICT, other.stderr
    assert "twice" in other.stderr


class _Answer(BaseHTTPRequestHandler):
    """Answers every request with the status and error body the test put on the server."""

    def do_GET(self) -> None:
        status, body = self.server.answer  # type: ignore[attr-defined]
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def answering() -> Iterator[ThreadingHTTPServer]:
    stub = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=stub.serve_forever, daemon=True)
    thread.start()
    yield stub
    stub.shutdown()
    stub.server_close()
    thread.join()


@pytest.mark.parametrize(
    ("status", "code", "exit_code"),
    [
        (422, "model.incompatible", EXIT_MODEL),
        (422, "trust.verification", EXIT_VERIFICATION),
        (503, "store.failed", EXIT_SERVER),
        (404, "resource.not_found", EXIT_NOT_FOUND),
        (409, "resource.conflict", EXIT_CONFLICT),
    ],
)
def test_server_error_codes_that_once_read_as_unreachable_keep_their_meaning(
    answering: ThreadingHTTPServer, status: int, code: str, exit_code: int
) -> None:
    answering.answer = (status, {"error": f"the server says {code}", "code": code})  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{answering.server_address[1]}"
    result = edgefleet("device", "list", url=url, token="efo_x")
    assert result.returncode == exit_code
    assert result.stderr == f"error: the server says {code} (HTTP {status})\n"
