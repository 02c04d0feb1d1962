"""`GET /metrics` follows Prometheus semantics across telemetry windows.

The agent closes a telemetry window (``snapshot(reset=True)``) every few seconds; scrapes must
not see that. Counters only grow, latency is a histogram with fixed buckets whose counts and sum
only grow, and the exposition passes ``promtool check metrics``.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgefleet.runtime import ModelRepository, load
from edgefleet.runtime.oip import HTTPServer, InferenceService, make_server
from edgefleet.runtime.pipeline import load_pipeline
from edgefleet.telemetry.totals import LATENCY_BUCKETS_SECONDS

LATENCY = "edgefleet_inference_latency_seconds"
SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?P<labels>\{[^}]*\})? (?P<value>\S+)$")
Series = dict[tuple[str, str], float]


@pytest.fixture
def served(digits_path: Path, demo_dir: Path) -> Iterator[tuple[HTTPServer, InferenceService]]:
    repository = ModelRepository()
    repository.add(load(digits_path, name="digits", version="2"))
    repository.add(load_pipeline(demo_dir / "digit-reader.yaml"))
    server, service = make_server(repository, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, service
    server.shutdown(5)
    thread.join(5)
    repository.close()


def request(server: HTTPServer, method: str, path: str, body: bytes | None = None) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(method, path, body=body)
        response = conn.getresponse()
        payload = response.read()
        assert response.status == 200, payload
        return payload
    finally:
        conn.close()


def infer_digits(server: HTTPServer, calls: int) -> None:
    tensor = {"name": "input", "datatype": "FP32", "shape": [1, 1, 8, 8], "data": [0.5] * 64}
    body = json.dumps({"inputs": [tensor]}).encode()
    for _ in range(calls):
        request(server, "POST", "/v2/models/digits/infer", body)


def scrape(server: HTTPServer) -> tuple[str, Series]:
    text = request(server, "GET", "/metrics").decode()
    series: Series = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            match = SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            series[(match["name"], match["labels"] or "")] = float(match["value"])
    return text, series


def digits_series(series: Series, name: str) -> dict[str, float]:
    return {labels: v for (n, labels), v in series.items() if n == name and '"digits"' in labels}


def close_window(service: InferenceService) -> None:
    """What the agent's reporter does at the end of each telemetry window."""
    for name in service.repository.names():
        service.repository.get(name).telemetry.snapshot(reset=True)


def test_counts_buckets_and_sum_never_decrease_across_telemetry_windows(
    served: tuple[HTTPServer, InferenceService],
) -> None:
    server, service = served
    infer_digits(server, 5)
    _, first = scrape(server)
    close_window(service)
    infer_digits(server, 3)
    close_window(service)
    _, second = scrape(server)

    count = digits_series(first, f"{LATENCY}_count")
    assert list(count.values()) == [5.0]  # warm-up calls are not counted
    assert list(digits_series(second, f"{LATENCY}_count").values()) == [8.0]
    [sum_before] = digits_series(first, f"{LATENCY}_sum").values()
    [sum_after] = digits_series(second, f"{LATENCY}_sum").values()
    assert 0 < sum_before < sum_after
    for key, before in first.items():
        name = key[0]
        if name.endswith(("_total", "_bucket", "_count")):
            assert second[key] >= before, f"{name}{key[1]} went from {before} to {second[key]}"
    ok = ("edgefleet_requests_total", '{model="digits",version="2",outcome="success"}')
    assert second[ok] == 8.0


def test_latency_is_a_cumulative_histogram_with_the_documented_buckets(
    served: tuple[HTTPServer, InferenceService],
) -> None:
    server, _ = served
    infer_digits(server, 4)
    text, series = scrape(server)
    assert f"# TYPE {LATENCY} histogram" in text
    assert "summary" not in text
    assert "quantile=" not in text
    buckets = digits_series(series, f"{LATENCY}_bucket")
    bounds = [float(re.search(r'le="([^"]+)"', k)[1]) for k in buckets]  # type: ignore[index]
    assert bounds == [*LATENCY_BUCKETS_SECONDS, math.inf]
    counts = list(buckets.values())
    assert counts == sorted(counts)  # cumulative
    assert counts[-1] == 4.0 == next(iter(digits_series(series, f"{LATENCY}_count").values()))
    # A pipeline is served with its own histogram too.
    assert any(n == f"{LATENCY}_count" and "digit-reader" in lab for n, lab in series)


def test_the_exposition_passes_promtool(served: tuple[HTTPServer, InferenceService]) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is required in CI (Debian/Ubuntu: apt-get install prometheus)")
        pytest.skip("promtool not installed (Debian/Ubuntu: apt-get install prometheus)")
    server, service = served
    infer_digits(server, 3)
    close_window(service)
    text, _ = scrape(server)
    done = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout + done.stderr == ""  # no lint warnings either
