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
from dataclasses import asdict, dataclass
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
        self._session = ort.InferenceSession(
            self.settings.parameters.uri, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name
        self._output = self._session.get_outputs()[0].name
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32, copy=False)
        (y,) = self._session.run([self._output], {self._input: x})
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[NumpyCodec.encode_output(self._output, y)],
        )
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
    latencies: list[list[int]] = [[] for _ in range(threads)]
    errors: list[list[int]] = [[] for _ in range(threads)]
    ready.put(os.getpid())
    go.wait()
    start = time.perf_counter_ns()
    pool = [
        threading.Thread(target=_connection, args=(load, start, latencies[i], errors[i]))
        for i in range(threads)
    ]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    results.put(([ns for lat in latencies for ns in lat], sum(len(e) for e in errors)))


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
    return Stats(
        requests=int(ns.size),
        errors=sum(e for _, e in gathered),
        throughput_rps=ns.size / load.duration,
        p50_ms=float(np.percentile(ms, 50)),
        p90_ms=float(np.percentile(ms, 90)),
        p99_ms=float(np.percentile(ms, 99)),
    )


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


def wait_ready(port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{port}/v2/health/ready"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the server was not ready after {timeout:.0f} s")


def stop(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def install_mlserver() -> str:
    """Create the MLServer virtual environment once; return the installed MLServer version."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".installed"
    if not stamp.exists() or stamp.read_text() != " ".join(REQUIREMENTS):
        print(f"installing MLServer into {VENV} (first run only, takes a few minutes)")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, *REQUIREMENTS], check=True, timeout=1800)
        stamp.write_text(" ".join(REQUIREMENTS))
    query = "import importlib.metadata as m; print(m.version('mlserver'))"
    found = subprocess.run([str(python), "-c", query], check=True, capture_output=True, text=True)
    return found.stdout.strip()


def start_mlserver(model: Path, workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    http_port = free_port()
    settings = {
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        "metrics_endpoint": None,  # no metrics server, no third port to collide on
        "kafka_enabled": False,
        "tracing_server": None,
    }
    model_settings = {
        "name": "digits",
        "implementation": "onnx_model.OnnxModel",
        "parameters": {"uri": str(model)},
    }
    (workdir / "settings.json").write_text(json.dumps(settings))
    (workdir / "model-settings.json").write_text(json.dumps(model_settings))
    (workdir / "onnx_model.py").write_text(MODEL_CODE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLSERVER_")}
    process = subprocess.Popen(
        [str(VENV / "bin" / "mlserver"), "start", str(workdir)],
        cwd=workdir,
        env=env,
        stdout=(workdir / "mlserver.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    return process, http_port


def start_edgefleet(model: Path, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    command = [sys.executable, "-m", "edgefleet", "serve", str(model), "--name", "digits"]
    process = subprocess.Popen(
        [*command, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=log.open("wb")
    )
    return process, port


# -- the run ---------------------------------------------------------------------------------


def cell(stats: Stats | None) -> str:
    if stats is None:
        return f"{'-':>8} {'-':>7} {'-':>7}"
    errors = f" ({stats.errors} errors)" if stats.errors else ""
    return f"{stats.throughput_rps:8.0f} {stats.p50_ms:7.2f} {stats.p99_ms:7.2f}{errors}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke run)")
    parser.add_argument("--duration", type=float, help="measured seconds per run [8; quick 2]")
    args = parser.parse_args()
    warmup = 0.5 if args.quick else 2.0
    duration = args.duration or (2.0 if args.quick else 8.0)
    model = build_digits_classifier()
    json_body, binary_body, header_length = payloads(digits_data().x_holdout[:1].copy())
    json_headers = {"Content-Type": "application/json"}
    binary_headers = {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(header_length),
    }

    with tempfile.TemporaryDirectory(prefix="serve-vs-mlserver-") as tmp:
        workdir = Path(tmp)
        servers: list[subprocess.Popen[bytes]] = []
        mlserver_port: int | None = None
        mlserver_version: str | None = None
        try:
            try:
                mlserver_version = install_mlserver()
                process, port = start_mlserver(model, workdir)
                servers.append(process)
                wait_ready(port, process, timeout=120)
                mlserver_port = port
            except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
                log = workdir / "mlserver.log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                print(f"MLSERVER UNAVAILABLE: {exc}\n{tail}\nreporting edgefleet figures only")
            process, edgefleet_port = start_edgefleet(model, workdir / "edgefleet.log")
            servers.append(process)
            wait_ready(edgefleet_port, process, timeout=60)

            def run(port: int, level: int, binary: bool = False) -> Stats:
                body, headers = (
                    (binary_body, binary_headers) if binary else (json_body, json_headers)
                )
                return drive(Load(port, body, headers, binary, warmup, duration), level)

            levels: list[dict[str, Any]] = []
            for level in LEVELS:
                ml = None
                if mlserver_port is not None:
                    ml = run(mlserver_port, level)
                ours = run(edgefleet_port, level)
                binary = run(edgefleet_port, level, binary=True)
                ratio = ours.throughput_rps / ml.throughput_rps if ml else None
                p99_lower = ours.p99_ms < ml.p99_ms if ml else None
                levels.append(
                    {
                        "concurrency": level,
                        "mlserver": asdict(ml) if ml else None,
                        "edgefleet_json": asdict(ours),
                        "edgefleet_binary": asdict(binary),
                        "throughput_ratio": ratio,
                        "edgefleet_p99_lower": p99_lower,
                    }
                )
        finally:
            for server in servers:
                stop(server)

    print(f"MLServer {mlserver_version or '(not available)'} (default settings) versus")
    print(f"edgefleet serve, digits model, {warmup:g} s warm-up + {duration:g} s measured per run")
    print(TARGET)
    print(
        f"{'conc':>4} | {'MLServer':>8} {'p50 ms':>7} {'p99 ms':>7} | {'edge JSON':>8} "
        f"{'p50 ms':>7} {'p99 ms':>7} | {'ratio':>6} {'p99 lower':>9} | "
        f"{'edge bin':>8} {'p50 ms':>7} {'p99 ms':>7}"
    )
    for row in levels:
        ml_stats = Stats(**row["mlserver"]) if row["mlserver"] else None
        ratio_text = f"{row['throughput_ratio']:5.2f}x" if ml_stats else f"{'-':>6}"
        lower = {True: "yes", False: "NO", None: "-"}[row["edgefleet_p99_lower"]]
        print(
            f"{row['concurrency']:>4} | {cell(ml_stats)} | {cell(Stats(**row['edgefleet_json']))}"
            f" | {ratio_text} {lower:>9} | {cell(Stats(**row['edgefleet_binary']))}"
        )
    print("(throughput in req/s; 'ratio' is edgefleet JSON / MLServer throughput)")
    met = mlserver_port is not None and all(
        row["throughput_ratio"] >= 4 and row["edgefleet_p99_lower"] for row in levels
    )
    if mlserver_port is not None:
        print(f"targets met: {'yes' if met else 'NO'}")
    result = {
        "mlserver_version": mlserver_version if mlserver_port is not None else None,
        "warmup_s": warmup,
        "duration_s": duration,
        "target": TARGET,
        "target_met": met if mlserver_port is not None else None,
        "levels": levels,
    }
    print(f"saved {save('serve_vs_mlserver', result)}")
    return 0 if mlserver_port is not None else 1


if __name__ == "__main__":
    sys.exit(main())
