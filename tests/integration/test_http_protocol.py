"""Raw HTTP against the server: error bodies, keep-alive after errors, limits, shutdown."""

from __future__ import annotations

import http.client
import json
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from edgefleet.runtime.oip import HTTPServer, InferenceService
from edgefleet.runtime.oip.http import Request, Response
from edgefleet.runtime.oip.status import error_body

_OPEN: list[http.client.HTTPConnection] = []


@pytest.fixture(autouse=True)
def _close_connections() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def connect(server: tuple[HTTPServer, InferenceService]) -> http.client.HTTPConnection:
    conn = http.client.HTTPConnection("127.0.0.1", server[0].port, timeout=10)
    _OPEN.append(conn)
    return conn


def call(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    return response.status, dict(response.getheaders()), response.read()


def digit_body(data: Any, shape: list[int] | None = None) -> bytes:
    shape = shape or [1, 1, 8, 8]
    tensor = {"name": "input", "datatype": "FP32", "shape": shape, "data": data}
    return json.dumps({"inputs": [tensor]}).encode()


BAD_BODIES = [
    (b"{not json", "not valid JSON"),
    (b"[]", "JSON object"),
    (b'{"inputs": []}', "non-empty 'inputs'"),
    (digit_body([0.0] * 63), "needs 64 elements, data has 63"),
    (digit_body([[0.0]] * 32 + [0.0] * 32), "ragged"),
    (digit_body(["a"] * 64), "not FP32"),
    (digit_body([0.0] * 64, shape=[1, 1, 8, -8]), "non-negative integers"),
    (
        json.dumps(
            {"inputs": [{"name": "input", "datatype": "FP99", "shape": [1], "data": [1]}]}
        ).encode(),
        "FP99",
    ),
]


@pytest.mark.parametrize(("body", "message"), BAD_BODIES)
def test_bad_json_bodies_get_400_and_the_connection_keeps_working(
    server: tuple[HTTPServer, InferenceService], body: bytes, message: str
) -> None:
    conn = connect(server)
    status, headers, payload = call(conn, "POST", "/v2/models/digits/infer", body)
    assert status == 400
    assert headers["Content-Type"] == "application/json"
    assert message in json.loads(payload)["error"]
    status, _, payload = call(conn, "POST", "/v2/models/digits/infer", digit_body([0.0] * 64))
    assert status == 200
    assert len(json.loads(payload)["outputs"][0]["data"]) == 10


def binary_request(declared: int, actual: int) -> tuple[bytes, dict[str, str]]:
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "datatype": "FP32",
                    "shape": [1, 1, 8, 8],
                    "parameters": {"binary_data_size": declared},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    body = header + np.zeros(actual // 4, np.float32).tobytes()
    return body, {"Inference-Header-Content-Length": str(len(header))}


def test_binary_request_and_response(server: tuple[HTTPServer, InferenceService]) -> None:
    body, headers = binary_request(256, 256)
    status, response_headers, payload = call(
        connect(server), "POST", "/v2/models/digits/infer", body, headers
    )
    assert status == 200
    json_length = int(response_headers["Inference-Header-Content-Length"])
    meta = json.loads(payload[:json_length])
    assert meta["outputs"][0]["parameters"]["binary_data_size"] == 40
    probs = np.frombuffer(payload[json_length:], dtype="<f4")
    assert probs.sum() == pytest.approx(1.0, rel=1e-5)


@pytest.mark.parametrize(
    ("declared", "actual", "message"),
    [(256, 128, "only 128 bytes follow"), (128, 128, "needs 256 bytes"), (256, 300, "not claimed")],
)
def test_short_or_long_binary_bodies_get_400(
    server: tuple[HTTPServer, InferenceService], declared: int, actual: int, message: str
) -> None:
    conn = connect(server)
    body, headers = binary_request(declared, actual)
    status, _, payload = call(conn, "POST", "/v2/models/digits/infer", body, headers)
    assert status == 400
    assert message in json.loads(payload)["error"]
    body, headers = binary_request(256, 256)
    assert call(conn, "POST", "/v2/models/digits/infer", body, headers)[0] == 200


def test_bytes_binary_element_cut_short(server: tuple[HTTPServer, InferenceService]) -> None:
    raw = struct.pack("<I", 10) + b"abc"
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x_BYTES",
                    "datatype": "BYTES",
                    "shape": [1],
                    "parameters": {"binary_data_size": len(raw)},
                }
            ]
        }
    ).encode()
    status, _, payload = call(
        connect(server),
        "POST",
        "/v2/models/echo/infer",
        header + raw,
        {"Inference-Header-Content-Length": str(len(header))},
    )
    assert status == 400
    assert "cut short" in json.loads(payload)["error"]


def test_body_over_the_limit_gets_413_and_the_connection_closes(
    server: tuple[HTTPServer, InferenceService],
) -> None:
    conn = connect(server)
    status, headers, payload = call(conn, "POST", "/v2/models/digits/infer", b"x" * 2_000_000)
    assert status == 413
    assert headers.get("Connection") == "close"
    assert "over the limit" in json.loads(payload)["error"]
    # A client that asks first (Expect: 100-continue) is refused before it sends the body.
    with socket.create_connection(("127.0.0.1", server[0].port), timeout=10) as sock:
        sock.sendall(
            b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            b"Content-Length: 50000000\r\n\r\n"
        )
        assert sock.recv(1000).startswith(b"HTTP/1.1 413")
    # The server itself is fine.
    assert call(connect(server), "GET", "/v2/health/live")[0] == 200


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v2/models/nope", 404),
        ("GET", "/v2/models/digits/versions/3", 404),
        ("GET", "/v3", 404),
        ("GET", "/v2/models/digits/infer", 405),
        ("POST", "/v2/health/live", 405),
        ("GET", "/v2/models/digits/versions/2/ready", 200),
        ("GET", "/v2/models/digits/versions/2/stats", 200),
        ("GET", "/v2/models/stats", 200),
    ],
)
def test_routes(
    server: tuple[HTTPServer, InferenceService], method: str, path: str, status: int
) -> None:
    got, _, payload = call(connect(server), method, path)
    assert got == status
    if status >= 400:
        assert "error" in json.loads(payload)


def test_expect_100_continue(server: tuple[HTTPServer, InferenceService]) -> None:
    body = digit_body([0.5] * 64)
    with socket.create_connection(("127.0.0.1", server[0].port), timeout=10) as sock:
        sock.sendall(
            b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
        )
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(body)
        assert sock.recv(100).startswith(b"HTTP/1.1 200 OK")


def test_malformed_request_line(server: tuple[HTTPServer, InferenceService]) -> None:
    with socket.create_connection(("127.0.0.1", server[0].port), timeout=10) as sock:
        sock.sendall(b"NONSENSE\r\n\r\n")
        reply = sock.recv(1000)
    assert reply.startswith(b"HTTP/1.1 400")
    assert b"malformed" in reply


def test_metrics(server: tuple[HTTPServer, InferenceService]) -> None:
    conn = connect(server)
    call(conn, "POST", "/v2/models/digits/infer", digit_body([0.5] * 64))
    status, headers, payload = call(conn, "GET", "/metrics")
    text = payload.decode()
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    assert 'edgefleet_requests_total{model="digits",version="2",outcome="success"}' in text
    assert (
        'edgefleet_inference_latency_seconds_bucket{model="digits",version="2",le="+Inf"}' in text
    )
    assert 'edgefleet_confidence_mean{model="digits",version="2"}' in text


def test_graceful_shutdown_finishes_in_flight_requests() -> None:
    """SIGTERM's path: stop accepting, let the running request finish, close idle connections.

    The running request is held on an event, so every step is observed, not timed: shutdown
    has a grace of 300 s and must return as soon as the request is done, not at the grace.
    """
    running, release = threading.Event(), threading.Event()

    def handler(request: Request) -> Response:
        if request.path == "/slow":
            running.set()
            assert release.wait(120)
        return Response(200, b'{"ok":true}')

    server = HTTPServer(handler, "127.0.0.1", 0, error_body=error_body)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    idle = connect((server, None))  # type: ignore[arg-type]
    assert call(idle, "GET", "/")[0] == 200
    result: list[int] = []
    busy = threading.Thread(
        target=lambda: result.append(call(connect((server, None)), "GET", "/slow")[0])  # type: ignore[arg-type]
    )
    busy.start()
    assert running.wait(60)
    stopper = threading.Thread(target=server.shutdown, kwargs={"grace": 300})
    stopper.start()
    assert idle.sock is not None
    idle.sock.settimeout(60)
    assert idle.sock.recv(1) == b""  # the idle connection is closed while the request runs
    assert busy.is_alive()
    release.set()
    for waited in (busy, stopper, thread):
        waited.join(60)
        assert not waited.is_alive(), f"{waited.name} did not finish"
    assert result == [200]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1)
