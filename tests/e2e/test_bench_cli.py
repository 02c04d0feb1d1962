"""`edgefleet bench` as a user runs it: every scenario, cloud targets, reports, bad input."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgefleet.testing.models import DigitsData
from edgefleet.testing.sysfs import FakeSysfs

CLI = [sys.executable, "-m", "edgefleet"]
QUICK = [
    "--duration",
    "0.6",
    "--warmup",
    "0.2",
    "--min-queries",
    "20",
    "--window",
    "0.2",
    "--idle",
    "0",
]


def bench(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "bench", *args], capture_output=True, text=True, timeout=timeout)


def report_of(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "report.json").read_text())
    return data


@contextmanager
def served(model: Path, name: str) -> Iterator[str]:
    """`edgefleet serve MODEL --name NAME` on a free port; yields ``127.0.0.1:PORT``."""
    server = subprocess.Popen(
        [*CLI, "serve", str(model), "--name", name, "--port", "0"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stderr is not None
        port = re.search(r":(\d+)/", server.stderr.readline())
        assert port
        yield f"127.0.0.1:{port.group(1)}"
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)


@pytest.mark.parametrize(
    ("scenario", "extra"),
    [
        ("single-stream", []),
        ("multi-stream", ["--samples-per-query", "4"]),
        ("server", ["--qps", "200"]),
        ("offline", ["--concurrency", "2"]),
    ],
)
def test_every_scenario_writes_a_versioned_report(
    digits_path: Path, tmp_path: Path, scenario: str, extra: list[str]
) -> None:
    out = tmp_path / "r"
    result = bench(str(digits_path), "--scenario", scenario, *QUICK, *extra, "--out", str(out))
    assert result.returncode == 0, result.stderr
    report = report_of(out)
    assert report["schema_version"] == 1
    assert report["partial"] is False
    assert report["environment"]["onnxruntime"]
    assert report["environment"]["execution_providers"]
    (edge,) = report["targets"]
    assert edge["name"] == "edge"
    assert edge["scenario"] == scenario
    assert set(edge["latency_ms"]) >= {"p50", "p90", "p99", "p999"}
    assert edge["latency_ms"]["p50"] <= edge["latency_ms"]["p99"] <= edge["latency_ms"]["p999"]
    assert edge["throughput_qps"] > 0
    assert edge["errors"] == 0
    energy = edge["energy"]
    assert set(energy) >= {"meter", "estimated", "mean_watts", "idle_watts", "mj_per_inference"}
    assert energy["meter"] == "estimate"
    assert energy["estimated"] is True
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert "p99" in result.stdout
    assert "report.json" in result.stdout


def test_cloud_emulate_measures_edge_and_an_emulated_cloud(
    digits_path: Path, tmp_path: Path, digits: DigitsData
) -> None:
    labels = tmp_path / "holdout.npz"
    np.savez(labels, x=digits.x_holdout[:64], y=digits.y_holdout[:64])
    out = tmp_path / "r"
    result = bench(
        str(digits_path),
        *QUICK,
        "--cloud-emulate",
        "rtt=30ms,jitter=2ms",
        "--labels",
        str(labels),
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    edge, cloud = report_of(out)["targets"]
    assert (edge["name"], cloud["name"]) == ("edge", "cloud")
    assert cloud["kind"] == "emulated"
    assert cloud["emulation"]["rtt_ms"] == 30
    assert cloud["latency_ms"]["p50"] > 25 > edge["latency_ms"]["p99"]
    assert edge["accuracy"]["top1"] == cloud["accuracy"]["top1"] > 0.9


def test_a_remote_endpoint_in_json_and_loopback_serve(digits_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    with served(digits_path, "digits") as address:
        result = bench(
            str(digits_path),
            *QUICK,
            "--no-edge",
            "--loopback",
            "--format",
            "json",
            "--cloud",
            address,
            "--cloud-model",
            "digits",
            "--out",
            str(out),
        )
    assert result.returncode == 0, result.stderr
    loopback, cloud = report_of(out)["targets"]
    assert loopback["name"] == "loopback"
    assert loopback["format"] == "json"
    assert cloud["name"] == "cloud"
    assert cloud["kind"] == "remote"
    assert cloud["errors"] == 0


def test_ctrl_c_writes_a_partial_report(digits_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    proc = subprocess.Popen(
        [*CLI, "bench", str(digits_path), "--duration", "60", "--idle", "0", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    seen: list[str] = []
    while True:  # wait until queries have been measured (a progress line every few seconds)
        seen.append(proc.stderr.readline())
        assert seen[-1], "bench ended before measuring:\n" + "".join(seen)
        counted = re.search(r" measure .* (\d+) queries", seen[-1])
        if counted and int(counted.group(1)) > 0:
            break
    proc.send_signal(signal.SIGINT)
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "PARTIAL" in stdout
    report = report_of(out)
    assert report["partial"] is True
    assert report["targets"][0]["interrupted"] is True
    assert report["targets"][0]["queries"] > 0


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--cloud", "127.0.0.1:9"], 5, "cannot reach"),
        (["--slo", "p99=fast", "--scenario", "server", "--find-max-qps"], 2, "p99=fast"),
        (["--cloud-emulate", "rtt=45"], 2, "rtt"),
        (["--labels", "/nonexistent/labels.npz"], 2, "does not exist"),
        (["--scenario", "burst"], 2, "unknown scenario"),
        (["--energy", "rapl"], 1, "RAPL"),
        (["--duration", "soon"], 2, "not a duration"),
        (["--scenario", "server", "--qps", "inf"], 2, "--qps must be a positive number"),
        (["--out", "/dev/null/report"], 2, "cannot write the report"),
    ],
)
def test_bad_input_is_one_line_and_a_nonzero_exit(
    digits_path: Path, args: list[str], code: int, message: str
) -> None:
    out = [] if "--out" in args else ["--out", "/tmp/edgefleet-bad-input"]
    result = bench(str(digits_path), *QUICK, *args, *out)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert message.lower() in errors[0].lower(), result.stderr


def test_an_endpoint_serving_another_model_is_refused(
    digits_path: Path, echo_path: Path, tmp_path: Path
) -> None:
    with served(echo_path, "digits") as address:
        result = bench(
            str(digits_path),
            *QUICK,
            "--cloud",
            address,
            "--cloud-model",
            "digits",
            "--out",
            str(tmp_path / "r"),
        )
    assert result.returncode == 5
    assert "has no input 'input'" in result.stderr


def test_compare_ranks_reports_and_explains(digits_path: Path, tmp_path: Path) -> None:
    paths = []
    for label in ("alpha", "beta"):
        out = tmp_path / label
        assert bench(str(digits_path), *QUICK, "--label", label, "--out", str(out)).returncode == 0
        paths.append(str(out / "report.json"))
    html = tmp_path / "decision.html"
    result = subprocess.run(
        [
            *CLI,
            "bench",
            "compare",
            *paths,
            "--slo",
            "p99=50ms",
            "--battery-wh",
            "20",
            "--price",
            "alpha=499,beta=899",
            "--out",
            str(html),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "alpha" in result.stdout
    assert "beta" in result.stdout
    assert "recommended" in result.stdout
    assert html.read_text().startswith("<!DOCTYPE html>")


def test_sustained_run_reads_sensors_under_the_sysfs_root(
    digits_path: Path, tmp_path: Path
) -> None:
    root = tmp_path / "sysroot"
    fake = FakeSysfs(root)
    fake.add_thermal_zone(0, "cpu-thermal", 61_500)
    fake.add_cpu(0, cur_khz=1_500_000, max_khz=1_500_000)
    out = tmp_path / "r"
    result = subprocess.run(
        [
            *CLI,
            "bench",
            str(digits_path),
            "--sustained",
            "2.4s",
            "--window",
            "0.3s",
            "--warmup",
            "0.2",
            "--idle",
            "0",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "EDGEFLEET_SYSFS_ROOT": str(root)},
    )
    assert result.returncode == 0, result.stderr
    (edge,) = report_of(out)["targets"]
    sustained = edge["sustained"]
    assert sustained["window_s"] == 0.3
    assert len(sustained["windows"]) >= 6
    assert sustained["verdict"] in ("stable", "degraded without sensor evidence")
    assert {w["temp_c"] for w in edge["timeline"]} == {61.5}
    assert {w["cpu_mhz"] for w in edge["timeline"]} == {1500.0}


def test_an_external_meter_command_gives_measured_not_estimated_energy(
    digits_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "r"
    result = bench(str(digits_path), *QUICK, "--energy", "cmd:echo 7.5", "--out", str(out))
    assert result.returncode == 0, result.stderr
    energy = report_of(out)["targets"][0]["energy"]
    assert energy["meter"] == "cmd"
    assert energy["estimated"] is False
    assert 6.0 < energy["mean_watts"] < 9.0


def test_find_max_qps_reports_the_search_and_the_rate_it_found(
    digits_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "r"
    result = bench(
        str(digits_path),
        "--scenario",
        "server",
        "--find-max-qps",
        "--slo",
        "p99=20ms",
        *QUICK,
        "--no-spin-wait",
        "--threads",
        "1",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    (edge,) = report_of(out)["targets"]
    server = edge["server"]
    assert len(server["search"]) == 6
    assert server["max_qps_at_slo"] == server["target_qps"] > 0
    assert any(point["met"] for point in server["search"])
    assert report_of(out)["settings"]["load_options"] == {
        "intra_op_threads": "1",
        "spin_wait": "False",
    }
