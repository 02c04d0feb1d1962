"""One agent per data dir: what a second ``edgefleet agent`` on a data dir in use does.

Every test runs the agent as a real process. The first agent is started on a data dir whose
model is under its health watch, which is exactly when a second agent mistaking the first one's
run marker for a crash would roll the model back.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edgefleet.agent.state import AgentState, ModelRecord, StateStore
from tests.unit.agent.models import scale_model

EXIT_DATA_DIR_IN_USE = 8
CLI = [
    sys.executable,
    "-c",
    "import typer; from edgefleet.cli.agent import agent_command; typer.run(agent_command)",
]
UNREACHABLE = "http://127.0.0.1:9"  # the agents serve and retry enrolment meanwhile


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _agent(data_dir: Path, port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEFLEET_")}
    env.update({"EDGEFLEET_BACKOFF_MAX_S": "0.5", "EDGEFLEET_SHUTDOWN_GRACE_S": "2"})
    args = ["--data-dir", str(data_dir), "--serve", f"127.0.0.1:{port}"]
    return subprocess.Popen(
        [*CLI, *args, "--server", UNREACHABLE, "--enroll-token", "t" * 32],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _wait_serving(proc: subprocess.Popen[str], port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2).is_success:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError("the agent did not start serving")


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return err


def _event_kinds(data_dir: Path) -> list[str]:
    with sqlite3.connect(data_dir / "spool.db") as db:
        rows = db.execute("SELECT payload FROM events").fetchall()
    return [bytes(payload).decode() for (payload,) in rows]


@pytest.fixture
def watched_dir(tmp_path: Path) -> Path:
    """A data dir serving ``scaler`` v2 under its health watch, with v1 kept for rollback."""
    data_dir = tmp_path / "agent"
    models = data_dir / "models"
    models.mkdir(parents=True)
    records = []
    for version in (1, 2):
        data = scale_model(version)
        sha = hashlib.sha256(data).hexdigest()
        path = models / f"{sha}.onnx"
        path.write_bytes(data)
        records.append(
            ModelRecord(
                name="scaler", version=str(version), release=version, sha256=sha, path=str(path)
            )
        )
    StateStore(data_dir / "state.json").save(
        AgentState(
            active=records[1], previous=records[0], desired_version=2, watching_since=time.time()
        )
    )
    return data_dir


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_a_second_agent_exits_naming_the_first_and_touches_nothing(
    watched_dir: Path, processes: list[subprocess.Popen[str]]
) -> None:
    port = _free_port()
    first = _agent(watched_dir, port)
    processes.append(first)
    _wait_serving(first, port)
    state_before = (watched_dir / "state.json").read_bytes()
    listing_before = sorted(p.name for p in watched_dir.rglob("*"))

    second = _agent(watched_dir, port)
    processes.append(second)
    _, err = second.communicate(timeout=60)

    assert second.returncode == EXIT_DATA_DIR_IN_USE, err
    assert f"in use by another agent (pid {first.pid})" in err
    assert "Traceback" not in err
    assert (watched_dir / "state.json").read_bytes() == state_before
    assert sorted(p.name for p in watched_dir.rglob("*")) == listing_before
    first_log = _stop(first)
    assert not [e for e in _event_kinds(watched_dir) if "rolled_back" in e]
    assert "EBADF" not in first_log
    assert "Bad file descriptor" not in first_log
    assert "Traceback" not in first_log


def test_an_agent_killed_with_sigkill_does_not_block_the_next_start(
    watched_dir: Path, processes: list[subprocess.Popen[str]]
) -> None:
    port = _free_port()
    first = _agent(watched_dir, port)
    processes.append(first)
    _wait_serving(first, port)
    first.kill()
    first.communicate(timeout=30)
    assert (watched_dir / "agent.lock").exists()  # the stale file stays; its lock did not

    port = _free_port()
    second = _agent(watched_dir, port)
    processes.append(second)
    _wait_serving(second, port)
    assert (watched_dir / "agent.lock").read_text().strip() == str(second.pid)
    assert "Traceback" not in _stop(second)


def _refused(data_dir: Path) -> tuple[int, str]:
    proc = _agent(data_dir, _free_port())
    _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err
    return proc.returncode, err


def test_a_data_dir_that_is_a_regular_file_is_a_bad_setting(tmp_path: Path) -> None:
    data_dir = tmp_path / "agent"
    data_dir.write_text("not a folder")
    code, err = _refused(data_dir)
    assert code == 2, err
    assert f"data dir {str(data_dir)!r} exists and is not a directory" in err
    assert data_dir.read_text() == "not a folder"
    assert sorted(tmp_path.iterdir()) == [data_dir]


def test_a_data_dir_that_cannot_be_created_is_a_bad_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    data_dir = blocker / "agent"  # a path under a regular file: ENOTDIR, even for root
    code, err = _refused(data_dir)
    assert code == 2, err
    assert f"cannot create data dir {str(data_dir)!r}: Not a directory" in err
    assert sorted(tmp_path.iterdir()) == [blocker]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a directory of mode 000 anyway")
def test_an_unreadable_data_dir_is_a_bad_setting(tmp_path: Path) -> None:
    data_dir = tmp_path / "agent"
    data_dir.mkdir(mode=0o000)
    try:
        code, err = _refused(data_dir)
    finally:
        data_dir.chmod(0o700)
    assert code == 2, err
    assert f"data dir {str(data_dir)!r}" in err
    assert list(data_dir.iterdir()) == []


def test_a_failed_first_start_leaves_no_new_folders_behind(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proc = _agent(tmp_path / "new" / "agent", taken.getsockname()[1])
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 4, err
    assert "cannot listen on" in err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_failed_start_leaves_an_existing_data_dir_as_it_found_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "agent"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)  # whatever the umask
    (data_dir / "notes.txt").write_text("the operator's own file")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proc = _agent(data_dir, taken.getsockname()[1])
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 4, err
    assert "cannot listen on" in err
    # no models/, downloads/, trust/, spool or run marker: only the lock file was added
    assert sorted(p.name for p in data_dir.iterdir()) == ["agent.lock", "notes.txt"]
    assert (data_dir / "notes.txt").read_text() == "the operator's own file"
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o755


def test_a_failed_start_keeps_what_an_earlier_start_left(tmp_path: Path) -> None:
    data_dir = tmp_path / "agent"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        data_dir.mkdir()
        (data_dir / "models").mkdir()
        (data_dir / "models" / "kept.onnx").write_bytes(b"model bytes")
        proc = _agent(data_dir, port)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 4, err
    assert sorted(p.name for p in data_dir.iterdir()) == ["agent.lock", "models"]
    assert (data_dir / "models" / "kept.onnx").read_bytes() == b"model bytes"
