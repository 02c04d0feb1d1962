"""What the device install costs: disk, packages, cold start, idle memory and idle CPU.

Installs this checkout with no extras (what ``pip install edgefleet`` gives a device) into a
fresh virtual environment, then measures, with that environment's interpreter:

* ``site_packages_mib`` and ``packages``: the size of its site-packages (every file, ``pip`` and
  ``setuptools`` excluded) and the number of installed distributions besides those two;
* ``onnx_installed``: whether the ``onnx`` package came with it (the device path must not need it);
* ``import_agent``: wall time and peak RSS of ``python -c "import edgefleet.agent.daemon"``;
* ``cold_start_s``: from launching ``edgefleet serve model.onnx`` to the first successful
  ``POST /v2/models/tiny/infer`` over HTTP (the client polls every 2 ms until one succeeds),
  the median of ``--starts`` launches (default 5; every one is in ``cold_starts_s``);
* ``idle_rss_mib``: the serving process's resident memory (``VmRSS``) once it has answered
  100 requests and sits idle; ``baseline_rss_mib`` is the same figure for a process of the same
  interpreter that imports numpy and ONNX Runtime, creates an ``InferenceSession`` on the same
  model with the same options and runs it 100 times, and ``rss_beyond_model_mib`` is the
  difference: what edgefleet adds on top of the loaded model;
* ``idle_cpu_percent``: CPU time (user + system, ``/proc/PID/stat``) the idle serving process
  used over ``--idle-seconds`` (default 60), as a percentage of one core.

The tiny model (16 inputs, a 16x4 MatMul and a Softmax) is built in code. Linux only (reads
``/proc``). Targets: no ``onnx`` on the device path, cold start < 1 s, < 60 MiB beyond the model.

Usage: python benchmarks/footprint.py [--idle-seconds 60] [--starts 5] [--venv DIR]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save
from edgefleet.testing.models import build_matmul_classifier

ROOT = Path(__file__).resolve().parents[1]
_MiB = 2**20
_TICK = os.sysconf("SC_CLK_TCK")

BASELINE = """
import sys
import numpy as np
import onnxruntime as ort
so = ort.SessionOptions()
so.intra_op_num_threads = 1
so.add_session_config_entry("session.intra_op.allow_spinning", "0")
session = ort.InferenceSession(sys.argv[1], so, providers=["CPUExecutionProvider"])
for _ in range(100):
    session.run(None, {"x": np.random.rand(1, 16).astype(np.float32)})
print(open("/proc/self/status").read())
"""


def make_venv(where: Path) -> Path:
    python = where / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                str(ROOT),
            ],
            check=True,
        )
    return python


def site_packages(python: Path) -> tuple[Path, dict[str, int], int, bool]:
    """Its path, bytes per top-level entry, distribution count (pip and setuptools left out)."""
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    root = Path(out.stdout.strip())
    tooling = ("pip", "setuptools", "_distutils_hack", "distutils-precedence.pth")
    sizes = {}
    for entry in root.iterdir():
        if entry.name.split("-")[0] in tooling or entry.name in tooling:
            continue
        files = [entry] if entry.is_file() else [p for p in entry.rglob("*") if p.is_file()]
        sizes[entry.name] = sum(p.stat().st_size for p in files)
    dists = [p for p in root.glob("*.dist-info") if p.name.split("-")[0] not in tooling]
    onnx_installed = any(p.name.split("-")[0].lower() == "onnx" for p in dists)
    return root, sizes, len(dists), onnx_installed


def status_field(text: str, field: str) -> int:
    """A ``kB`` field of ``/proc/PID/status``, in bytes."""
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def infer(port: int, body: bytes, timeout: float = 5.0) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/v2/models/tiny/infer", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def request_body() -> bytes:
    data = np.random.default_rng(1).random(16).astype(np.float32).tolist()
    tensor = {"name": "x", "shape": [1, 16], "datatype": "FP32", "data": data}
    return json.dumps({"inputs": [tensor]}).encode()


def import_agent(python: Path) -> dict[str, float]:
    code = (
        "import time; t = time.perf_counter(); import edgefleet.agent.daemon; "
        "t = time.perf_counter() - t; "
        "print(t, open('/proc/self/status').read().split('VmHWM:')[1].split()[0])"
    )
    runs = []
    for _ in range(3):
        out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
        seconds, hwm_kb = out.stdout.split()
        runs.append((float(seconds), int(hwm_kb) * 1024 / _MiB))
    runs.sort()
    return {"median_s": runs[1][0], "peak_rss_mib": runs[1][1]}


def start_serving(python: Path, model: Path) -> tuple[subprocess.Popen[bytes], int, float]:
    """Launch ``edgefleet serve``; return it, its port and the seconds to a first answer."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEFLEET_")}
    body = request_body()
    started = time.perf_counter()
    command = [str(python.parent / "edgefleet"), "serve", str(model), "--name", "tiny"]
    proc = subprocess.Popen(
        [*command, "--threads", "1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = started + 60
    while True:
        try:
            if infer(port, body) == 200:
                return proc, port, time.perf_counter() - started
        except OSError:
            pass
        if proc.poll() is not None or time.perf_counter() > deadline:
            proc.kill()
            _, err = proc.communicate()
            raise RuntimeError(f"serve never answered: {err.decode()[-2000:]}")
        time.sleep(0.002)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.communicate(timeout=30)


def serve_and_measure(
    python: Path, model: Path, idle_seconds: float, starts: int
) -> dict[str, Any]:
    cold = []
    for _ in range(starts - 1):
        proc, _, seconds = start_serving(python, model)
        cold.append(seconds)
        stop(proc)
    proc, port, seconds = start_serving(python, model)
    cold.append(seconds)
    body = request_body()
    try:
        for _ in range(99):
            assert infer(port, body) == 200
        time.sleep(1.0)  # let the last response's buffers go
        rss = status_field(Path(f"/proc/{proc.pid}/status").read_text(), "VmRSS")
        cpu_before = cpu_seconds(proc.pid)
        time.sleep(idle_seconds)
        idle_cpu = cpu_seconds(proc.pid) - cpu_before
        rss_after_idle = status_field(Path(f"/proc/{proc.pid}/status").read_text(), "VmRSS")
    finally:
        stop(proc)
    return {
        "cold_start_s": float(np.median(cold)),
        "cold_starts_s": cold,
        "idle_rss_mib": rss / _MiB,
        "idle_rss_after_idle_mib": rss_after_idle / _MiB,
        "idle_cpu_seconds": idle_cpu,
        "idle_cpu_percent": 100 * idle_cpu / idle_seconds,
        "idle_seconds": idle_seconds,
    }


def baseline_rss(python: Path, model: Path) -> float:
    out = subprocess.run(
        [str(python), "-c", BASELINE, str(model)], capture_output=True, text=True, check=True
    )
    return status_field(out.stdout, "VmRSS") / _MiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-seconds", type=float, default=60.0, help="idle CPU window")
    parser.add_argument("--starts", type=int, default=5, help="cold starts (median reported)")
    parser.add_argument(
        "--venv", type=Path, help="reuse (or create) this virtual environment instead of a temp one"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgefleet-footprint-") as tmp:
        work = Path(tmp)
        venv = args.venv or work / "venv"
        print(f"installing {ROOT} (no extras) into {venv} ...", flush=True)
        python = make_venv(venv)
        root, sizes, packages, onnx_installed = site_packages(python)
        model = build_matmul_classifier(work)
        agent = import_agent(python)
        base = baseline_rss(python, model)
        served = serve_and_measure(python, model, args.idle_seconds, args.starts)
    result = {
        "site_packages": str(root),
        "site_packages_mib": sum(sizes.values()) / _MiB,
        "largest_mib": {
            name: size / _MiB for name, size in sorted(sizes.items(), key=lambda kv: -kv[1])[:8]
        },
        "packages": packages,
        "onnx_installed": onnx_installed,
        "import_agent": agent,
        **served,
        "baseline_rss_mib": base,
        "rss_beyond_model_mib": served["idle_rss_mib"] - base,
        "targets": {"cold_start_s": 1.0, "rss_beyond_model_mib": 60.0, "onnx_installed": False},
    }
    print(
        f"site-packages {result['site_packages_mib']:.1f} MiB, {packages} packages, "
        f"onnx installed: {onnx_installed}\n"
        f"import edgefleet.agent.daemon: {agent['median_s']:.3f} s, "
        f"peak RSS {agent['peak_rss_mib']:.1f} MiB\n"
        f"cold start to first served inference: median {served['cold_start_s']:.3f} s of "
        f"{args.starts} (min {min(served['cold_starts_s']):.3f} s; target < 1 s)\n"
        f"idle RSS {served['idle_rss_mib']:.1f} MiB; ONNX Runtime alone with the model "
        f"{base:.1f} MiB; beyond the model {result['rss_beyond_model_mib']:.1f} MiB "
        "(target < 60)\n"
        f"idle CPU {served['idle_cpu_percent']:.3f} % of a core over "
        f"{args.idle_seconds:g} s ({served['idle_cpu_seconds']:.2f} CPU s)"
    )
    print(f"saved {save('footprint', result)}")


if __name__ == "__main__":
    main()
