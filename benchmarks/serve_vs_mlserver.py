"""`edgefleet serve` versus MLServer 1.7 serving the same ONNX model over KServe V2 REST.

Both servers serve the digit classifier under the name ``digits`` on 127.0.0.1. MLServer runs
with its default settings (one inference worker) and a short custom ``MLModel`` that runs the
model with ONNX Runtime; it is installed into its own virtual environment under
``benchmarks/.cache/`` on the first run. One JSON client (standard-library ``http.client``,
keep-alive, one connection per thread, threads spread over up to 4 processes) drives both at
concurrency 1, 4 and 16: a warm-up that is discarded, then a measured period of back-to-back
requests. ``edgefleet serve`` is also measured with the binary tensor extension, which MLServer
does not support. Target: >= 4x MLServer throughput and lower p99 at every level.

Usage: python benchmarks/serve_vs_mlserver.py [--quick] [--duration SECONDS]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing as mp
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, replace
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save
from edgefleet.testing.models import build_digits_classifier, digits_data

LEVELS = (1, 4, 16)
TARGET = "target: >= 4x MLServer throughput and lower p99 at every level"
INFER_PATH = "/v2/models/digits/infer"
VENV = Path(__file__).resolve().parent / ".cache" / "mlserver-venv"
REQUIREMENTS = ["mlserver>=1.7,<1.8", "onnxruntime", "numpy", "uvloop<0.22"]

MODEL_CODE = """
import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse

class OnnxModel(MLModel):
    async def load(self) -> bool:
        self._session = ort.InferenceSession(self.settings.parameters.uri)
        self._input = self._session.get_inputs()[0].name
        self._output = self._session.get_outputs()[0].name
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32, copy=False)
        (y,) = self._session.run([self._output], {self._input: x})
        outputs = [NumpyCodec.encode_output(self._output, y)]
        return InferenceResponse(model_name=self.name, model_version=self.version, outputs=outputs)
"""


@dataclass
class Stats:
    requests: int
    errors: int
    throughput_rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float


@dataclass(frozen=True)
class Load:
    port: int
    body: bytes
    headers: dict[str, str]
    binary: bool
    warmup: float
    duration: float


# -- the client ------------------------------------------------------------------------------


def _valid(response: http.client.HTTPResponse, data: bytes, binary: bool) -> bool:
    if response.status != 200:
        return False
    if not binary:
        return len(json.loads(data)["outputs"][0]["data"]) == 10
    length = int(response.getheader("Inference-Header-Content-Length") or "-1")
    output = json.loads(data[:length])["outputs"][0]
    return bool(output["parameters"]["binary_data_size"] == 40 == len(data) - length)


def _connection(load: Load, start: int, out: list[int], errors: list[int]) -> None:
    warm_end = start + int(load.warmup * 1e9)
    end = warm_end + int(load.duration * 1e9)
    clock = time.perf_counter_ns
    conn = http.client.HTTPConnection("127.0.0.1", load.port, timeout=30)
    while (begin := clock()) < end:
        try:
            conn.request("POST", INFER_PATH, load.body, load.headers)
            response = conn.getresponse()
            ok = _valid(response, response.read(), load.binary)
        except (OSError, http.client.HTTPException, ValueError, KeyError, IndexError):
            ok = False
            conn.close()
            time.sleep(0.01)
        if begin >= warm_end:
            if ok:
                out.append(clock() - begin)
            else:
                errors.append(1)
    conn.close()


def _worker(
    load: Load, threads: int, ready: Queue[int], go: Event, results: Queue[tuple[list[int], int]]
) -> None:
    latencies: list[int] = []  # list.append is atomic: the threads share both lists
    errors: list[int] = []
    ready.put(os.getpid())
    go.wait()
    start = time.perf_counter_ns()
    args = (load, start, latencies, errors)
    pool = [threading.Thread(target=_connection, args=args) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    results.put((latencies, len(errors)))


def drive(load: Load, concurrency: int) -> Stats:
    """Run ``concurrency`` connections over up to 4 processes and aggregate what they saw."""
    processes = min(concurrency, 4)
    shares = [concurrency // processes + (i < concurrency % processes) for i in range(processes)]
    ready: Queue[int] = mp.Queue()
    results: Queue[tuple[list[int], int]] = mp.Queue()
    go = mp.Event()
    workers = [mp.Process(target=_worker, args=(load, n, ready, go, results)) for n in shares]
    for worker in workers:
        worker.start()
    for _ in workers:
        ready.get(timeout=60)
    go.set()
    gathered = [results.get(timeout=load.warmup + load.duration + 120) for _ in workers]
    for worker in workers:
        worker.join()
    ns = np.asarray([v for lat, _ in gathered for v in lat], dtype=np.float64)
    ms = ns / 1e6 if ns.size else np.asarray([np.nan])
    p50, p90, p99 = (float(v) for v in np.percentile(ms, [50, 90, 99]))
    errors = sum(e for _, e in gathered)
    return Stats(int(ns.size), errors, ns.size / load.duration, p50, p90, p99)


def payloads(x: np.ndarray) -> tuple[bytes, bytes, int]:
    """The JSON request body, the binary-extension body and the binary JSON header's length."""
    tensor = {"name": "input", "shape": list(x.shape), "datatype": "FP32"}
    body = json.dumps({"inputs": [{**tensor, "data": x.ravel().tolist()}]}).encode()
    raw = x.astype("<f4").tobytes()
    header = json.dumps(
        {
            "inputs": [{**tensor, "parameters": {"binary_data_size": len(raw)}}],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    return body, header + raw, len(header)


# -- the servers -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{port}/v2/health/ready"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            problem = f"it exited with status {process.returncode}"
            break
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.2)
    else:
        problem = f"it was not ready after {timeout:.0f} s"
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise RuntimeError(f"{problem}; the end of its log:\n{tail}")


def launch(command: list[str], log: Path, **options: Any) -> subprocess.Popen[bytes]:
    """Start a server in its own process group (MLServer has worker processes)."""
    with log.open("wb") as out:
        return subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **options
        )


def stop(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL to the whole process group after ``timeout`` seconds."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def install_mlserver() -> str:
    """Create the MLServer virtual environment once; return the installed MLServer version."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".installed"
    if not stamp.exists() or stamp.read_text() != " ".join(REQUIREMENTS):
        print(f"installing MLServer into {VENV} (first run only, takes a few minutes)")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        done = subprocess.run([*pip, *REQUIREMENTS], capture_output=True, text=True, timeout=1800)
        if done.returncode:
            raise RuntimeError(f"pip install failed:\n{done.stderr[-2000:]}")
        stamp.write_text(" ".join(REQUIREMENTS))
    query = "import importlib.metadata as m; print(m.version('mlserver'))"
    found = subprocess.run([str(python), "-c", query], check=True, capture_output=True, text=True)
    return found.stdout.strip()


def start_mlserver(model: Path, workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Write the settings and the MLModel into ``workdir`` and start ``mlserver start``."""
    http_port = free_port()
    settings = {
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        "metrics_endpoint": None,  # no metrics server
        "kafka_enabled": False,
        "tracing_server": None,
    }
    model_settings = {
        "name": "digits",
        "implementation": "onnx_model.OnnxModel",
        "parameters": {"uri": str(model)},
    }
    (workdir / "digits").mkdir()
    (workdir / "settings.json").write_text(json.dumps(settings))
    (workdir / "digits" / "model-settings.json").write_text(json.dumps(model_settings))
    (workdir / "digits" / "onnx_model.py").write_text(MODEL_CODE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLSERVER_")}
    command = [str(VENV / "bin" / "mlserver"), "start", str(workdir)]
    return launch(command, workdir / "mlserver.log", cwd=workdir, env=env), http_port


def start_edgefleet(model: Path, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    command = [sys.executable, "-m", "edgefleet", "serve", str(model), "--name", "digits"]
    return launch([*command, "--port", str(port)], log), port


# -- the run ---------------------------------------------------------------------------------


def cell(stats: Stats | None) -> str:
    if stats is None:
        return f"{'-':>8} {'-':>7} {'-':>7}"
    errors = f" ({stats.errors} errors)" if stats.errors else ""
    return f"{stats.throughput_rps:8.0f} {stats.p50_ms:7.2f} {stats.p99_ms:7.2f}{errors}"


Row = tuple[int, Stats | None, Stats, Stats]


def report(rows: list[Row], version: str | None, warmup: float, duration: float) -> bool | None:
    """Print the table; return whether the targets were met (None without MLServer)."""
    who = f"MLServer {version} (default settings)" if version else "MLServer (not available)"
    print(f"{who} versus edgefleet serve, digits model, JSON client;")
    print(f"{warmup:g} s warm-up + {duration:g} s measured per run; edge bin = binary extension")
    print(TARGET)
    print(
        f"{'conc':>4} | {'MLServer':>8} {'p50 ms':>7} {'p99 ms':>7} | {'edge JSON':>8} "
        f"{'p50 ms':>7} {'p99 ms':>7} | {'ratio':>6} {'p99 lower':>9} | "
        f"{'edge bin':>8} {'p50 ms':>7} {'p99 ms':>7}"
    )
    met = True
    for level, ml, ours, binary in rows:
        ratio, lower = f"{'-':>6}", "-"
        if ml is not None:
            ratio = f"{ours.throughput_rps / ml.throughput_rps:5.2f}x"
            lower = "yes" if ours.p99_ms < ml.p99_ms else "NO"
            met = met and ours.throughput_rps >= 4 * ml.throughput_rps and lower == "yes"
            met = met and not (ml.errors or ours.errors)
        print(f"{level:>4} | {cell(ml)} | {cell(ours)} | {ratio} {lower:>9} | {cell(binary)}")
    print("req/s over all connections; ratio = edgefleet JSON / MLServer req/s")
    if version is None:
        return None
    print(f"targets met: {'yes' if met else 'NO'}")
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke run)")
    parser.add_argument("--duration", type=float, help="measured seconds per run [8; quick 2]")
    args = parser.parse_args()
    warmup = 0.5 if args.quick else 2.0
    duration = args.duration or (2.0 if args.quick else 8.0)
    model = build_digits_classifier()
    json_body, binary_body, header_length = payloads(digits_data().x_holdout[:1].copy())
    json_load = Load(0, json_body, {"Content-Type": "application/json"}, False, warmup, duration)
    binary_headers = {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(header_length),
    }
    binary_load = Load(0, binary_body, binary_headers, True, warmup, duration)

    rows: list[Row] = []
    version: str | None = None
    with tempfile.TemporaryDirectory(prefix="serve-vs-mlserver-") as tmp:
        workdir = Path(tmp)
        servers: list[subprocess.Popen[bytes]] = []
        try:
            mlserver_port = None
            try:
                installed = install_mlserver()
                process, port = start_mlserver(model, workdir)
                servers.append(process)
                wait_ready(port, process, workdir / "mlserver.log", timeout=120)
                mlserver_port, version = port, installed
            except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
                print(f"MLSERVER UNAVAILABLE, reporting edgefleet figures only: {exc}")
            process, port = start_edgefleet(model, workdir / "edgefleet.log")
            servers.append(process)
            wait_ready(port, process, workdir / "edgefleet.log", timeout=60)
            for level in LEVELS:
                ml = None
                if mlserver_port is not None:
                    ml = drive(replace(json_load, port=mlserver_port), level)
                ours = drive(replace(json_load, port=port), level)
                rows.append((level, ml, ours, drive(replace(binary_load, port=port), level)))
        finally:
            for server in servers:
                stop(server)

    met = report(rows, version, warmup, duration)
    levels = [
        {
            "concurrency": level,
            "mlserver": asdict(ml) if ml else None,
            "edgefleet_json": asdict(ours),
            "edgefleet_binary": asdict(binary),
            "throughput_ratio": ours.throughput_rps / ml.throughput_rps if ml else None,
            "edgefleet_p99_lower": ours.p99_ms < ml.p99_ms if ml else None,
        }
        for level, ml, ours, binary in rows
    ]
    result = {
        "mlserver_version": version,
        "warmup_s": warmup,
        "duration_s": duration,
        "target": TARGET,
        "target_met": met,
        "levels": levels,
    }
    print(f"saved {save('serve_vs_mlserver', result)}")
    return 1 if version is None else 0


if __name__ == "__main__":
    sys.exit(main())
