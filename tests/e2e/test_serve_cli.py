"""`edgefleet serve` and friends as real subprocesses: what a user runs."""

from __future__ import annotations

import ctypes
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient

from edgefleet.testing.models import DigitsData, build_resnet18

CLI = [sys.executable, "-m", "edgefleet"]


class Served:
    def __init__(self, proc: subprocess.Popen[str], port: int) -> None:
        self.proc = proc
        self.port = port


def start(*args: str) -> Served:
    proc = subprocess.Popen(
        [*CLI, "serve", *args, "--port", "0"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
    assert match, f"unexpected announcement: {line!r}"
    return Served(proc, int(match.group(1)))


def stop(served: Served) -> tuple[int, str]:
    served.proc.send_signal(signal.SIGTERM)
    _, err = served.proc.communicate(timeout=120)
    return served.proc.returncode, err


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used so far (user and system), from ``/proc/PID/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture
def digits_server(digits_path: Path) -> Iterator[Served]:
    served = start(str(digits_path), "--name", "digits")
    yield served
    if served.proc.poll() is None:
        stop(served)


def test_serve_answers_tritonclient_and_stops_on_sigterm(
    digits_server: Served, digits: DigitsData
) -> None:
    client = httpclient.InferenceServerClient(f"127.0.0.1:{digits_server.port}")
    try:
        assert client.is_server_ready()
        inp = httpclient.InferInput("input", [4, 1, 8, 8], "FP32")
        inp.set_data_from_numpy(digits.x_holdout[:4])
        probs = client.infer("digits", [inp]).as_numpy("probabilities")
        assert (probs.argmax(1) == digits.y_holdout[:4]).all()
    finally:
        client.close()
    code, err = stop(digits_server)
    assert code == 0
    assert "stopped" in err
    assert "Traceback" not in err


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc and tgkill")
def test_sigterm_delivered_to_a_worker_thread_still_stops_the_server(digits_server: Served) -> None:
    # The kernel may hand a process-directed SIGTERM to any thread; target one that is not the
    # main thread on purpose, as the kernel may do by chance.
    pid = digits_server.proc.pid
    workers = [int(t.name) for t in Path(f"/proc/{pid}/task").iterdir() if int(t.name) != pid]
    assert workers, "serve should run worker threads (accept loop, ONNX Runtime pool)"
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.tgkill(pid, workers[0], signal.SIGTERM) == 0, os.strerror(ctypes.get_errno())
    _, err = digits_server.proc.communicate(timeout=120)
    assert digits_server.proc.returncode == 0
    assert "stopped" in err


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs Linux /proc")
def test_sigterm_lets_the_running_request_finish(model_cache: Path) -> None:
    served = start(str(build_resnet18(model_cache)), "--name", "resnet")
    idle = cpu_seconds(served.proc.pid)
    x = np.random.default_rng(0).random((16, 3, 224, 224), dtype=np.float32)
    result: list[object] = []

    def slow_request() -> None:
        client = httpclient.InferenceServerClient(f"127.0.0.1:{served.port}", network_timeout=120)
        inp = httpclient.InferInput("input", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        try:
            result.append(client.infer("resnet", [inp]).as_numpy("probabilities").shape)
        except Exception as exc:
            result.append(exc)
        client.close()

    thread = threading.Thread(target=slow_request)
    thread.start()
    # the request is being computed once the idle server burns CPU (it needs well over 1 s)
    deadline = time.monotonic() + 120
    while cpu_seconds(served.proc.pid) - idle < 0.2 and not result:
        assert time.monotonic() < deadline, "the request never started computing"
        time.sleep(0.01)
    code, _ = stop(served)
    thread.join(120)
    assert result == [(16, 1000)]
    assert code == 0


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


def test_missing_model_is_one_clear_line(tmp_path: Path) -> None:
    result = run_cli("serve", str(tmp_path / "nope.onnx"))
    assert result.returncode == 3
    assert result.stderr.strip() == f"error: model file not found: {tmp_path / 'nope.onnx'}"


def test_corrupt_model_exits_3(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x01garbage" * 50)
    result = run_cli("serve", str(bad))
    assert result.returncode == 3
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr


def test_bad_pipeline_exits_3(tmp_path: Path) -> None:
    spec = tmp_path / "p.yaml"
    spec.write_text("stages:\n  - glue: nothing\n")
    result = run_cli("serve", str(spec))
    assert result.returncode == 3
    assert "unknown glue step 'nothing'" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "70000"], "port"),
        (["--nan-policy", "sometimes"], "--nan-policy"),
        (["--providers", "MagicExecutionProvider"], "MagicExecutionProvider"),
    ],
)
def test_bad_options_exit_2(digits_path: Path, args: list[str], message: str) -> None:
    result = run_cli("serve", str(digits_path), *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_port_in_use_exits_4(digits_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = run_cli("serve", str(digits_path), "--port", str(taken.getsockname()[1]))
    assert result.returncode == 4
    assert "cannot listen" in result.stderr


def test_help_explains_serve() -> None:
    result = run_cli("serve", "--help")
    assert result.returncode == 0
    assert "Open Inference Protocol" in result.stdout
    assert "[default: 127.0.0.1]" in result.stdout  # defaults shown, not eaten as markup
    assert "tritonclient[http]" in result.stdout
    assert "--no-spin-wait" in result.stdout


def test_models_build_writes_the_demo_assets(tmp_path: Path) -> None:
    result = run_cli("models", "build", "--out", str(tmp_path))
    assert result.returncode == 0
    assert {p.name for p in tmp_path.iterdir()} == {
        "digits.onnx",
        "digits-3-epochs.onnx",
        "digits-1-epoch.onnx",
        "detector.onnx",
        "digit-reader.yaml",
    }


@pytest.mark.timeout(1260)
def test_demo_runs_to_the_end(tmp_path: Path) -> None:
    """The whole story, rollouts and federated learning included (about three minutes on an
    idle 2-core machine; the deadline leaves room for a machine busy with other work)."""
    result = run_cli("demo", "--workdir", str(tmp_path), "--seconds", "0.3", timeout=1200)
    assert result.returncode == 0, result.stderr
    assert "p99" in result.stdout
    assert re.search(r"accuracy on \d+ held-out digits .*: 9\d\.\d%", result.stdout)
    # What every device serves is read back from the server, never assumed.
    assert "read back from the server, every device reports serving digits@2" in result.stdout
    # The agents' health watch does not roll back the better model on scheduler noise.
    assert "LOCAL ROLLBACK" not in result.stdout
    assert re.search(r"rolled back by the server: gate failed: accuracy_delta", result.stdout)
    assert "killed during round 1" in result.stdout
    assert re.search(r"round +1 closed 2/3 updates, 1 dropped", result.stdout)
    assert "reports serving digits@4" in result.stdout
    assert "digits@4 was trained where the data lives" in result.stdout
    assert "Done." in result.stdout
