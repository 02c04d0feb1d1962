"""What the server answers at the edges of HTTP: bodies over the limit, unknown routes, methods.

Every such answer has the project's error shape ``{"error": ..., "code": ...}``.
"""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import pytest

from edgefleet.protocol.v1 import API_PREFIX
from tests.integration.server.conftest import LiveServer, ServerFactory

LIMIT = 4096


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one HTTP/1.1 response (body by Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside the response body"
        body += chunk
    return status, headers, body[:length]


@pytest.mark.parametrize(
    "path",
    [
        f"{API_PREFIX}/events",  # a JSON body FastAPI parses
        f"{API_PREFIX}/fl/job-1/1/update",  # a body the route reads itself
    ],
)
def test_a_chunked_body_over_the_limit_gets_413_in_the_error_shape_without_being_read_whole(
    server_factory: ServerFactory, path: str
) -> None:
    live = server_factory(max_body_bytes=LIMIT, max_fl_update_bytes=LIMIT)
    device = live.enroll()
    parts = urlsplit(live.url)
    assert parts.hostname is not None
    assert parts.port is not None
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(
            (
                f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                f"Authorization: Bearer {device['credential']}\r\n"
                "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            ).encode()
        )
        chunk = b"x" * 1024
        for _ in range(LIMIT // len(chunk) + 1):  # just past the limit, and no last chunk:
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))  # a server reading on hangs
        status, headers, body = _read_response(sock)
    assert status == 413
    assert headers["content-type"] == "application/json"
    answer = json.loads(body)
    assert answer["code"] == "protocol.too_large"
    assert str(LIMIT) in answer["error"]


def test_a_declared_length_over_the_limit_gets_413_in_the_error_shape(
    server_factory: ServerFactory,
) -> None:
    live = server_factory(max_body_bytes=LIMIT)
    with live.client(prefix=API_PREFIX) as c:
        response = c.post("/enroll", content=b"{" + b" " * LIMIT + b"}")
    assert response.status_code == 413
    assert response.json()["code"] == "protocol.too_large"


def test_unknown_routes_answer_404_in_the_error_shape(live: LiveServer) -> None:
    with live.operator() as op:
        response = op.get("/no-such-thing")
    assert response.status_code == 404
    assert response.json() == {
        "error": "no route /api/operator/v1/no-such-thing",
        "code": "resource.not_found",
    }


def test_a_method_the_route_lacks_answers_405_in_the_error_shape(live: LiveServer) -> None:
    with live.operator() as op:
        response = op.delete("/devices")
    assert response.status_code == 405
    assert response.json() == {
        "error": "DELETE is not allowed on /api/operator/v1/devices",
        "code": "protocol.unsupported",
    }
    assert "GET" in response.headers["allow"]


def test_a_body_that_is_not_json_answers_in_the_error_shape(live: LiveServer) -> None:
    device = live.enroll()
    with live.device(device["credential"]) as c:
        response = c.post(
            "/events", content=b"{not json", headers={"Content-Type": "application/json"}
        )
    assert 400 <= response.status_code < 500
    assert set(response.json()) == {"error", "code"}
