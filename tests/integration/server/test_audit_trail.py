"""What the audit trail records of operator requests, and what no request can make it record.

Only operators' actions are stored, each with the target the handler named (never read back
from a cut-off answer) and the outcome the client actually got. Text a request carries into an
entry (a path's id) is stored escaped and bounded, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from edgefleet.protocol.v1 import API_PREFIX
from edgefleet.server.api.audit import not_operators
from edgefleet.server.services.audit import MAX_TARGET

from .conftest import LiveServer, ServerFactory
from .test_http_edges import _read_response
from .test_registry_api import push


def entries(live: LiveServer, **params: Any) -> list[dict[str, Any]]:
    """The audit trail, newest first."""
    with live.operator() as op:
        response = op.get("/audit", params={"limit": 1000, **params})
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["entries"]
    return found


class Lines(logging.Handler):
    """The ``edgefleet.audit`` logger's lines, formatted as the text log writes them."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.extend(self.format(record).splitlines())


@pytest.fixture
def audit_lines() -> Iterator[Lines]:
    handler = Lines()
    logger = logging.getLogger("edgefleet.audit")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_a_target_with_a_newline_and_a_nul_is_stored_escaped_and_logged_as_one_line(
    live_on_each_backend: LiveServer, audit_lines: Lines
) -> None:
    live = live_on_each_backend
    forged = "dev-1\naudit\tactor=root\taction=devices.decommission\toutcome=ok\x00"
    with live.operator() as op:
        response = op.post(f"/devices/{quote(forged, safe='')}/decommission")
    assert 400 <= response.status_code < 500, response.text
    [entry] = entries(live, action="devices.decommission")
    assert entry["target"] == (
        "dev-1\\naudit\\tactor=root\\taction=devices.decommission\\toutcome=ok\\x00"
    )
    assert entry["outcome"].startswith(f"refused {response.status_code}")
    logged = [line for line in audit_lines.lines if "devices.decommission" in line]
    assert len(logged) == 1, audit_lines.lines  # no forged second line
    assert logged[0].startswith("INFO edgefleet.audit: audit audit_id=")
    assert "actor=init " in logged[0]


def test_a_target_of_any_length_is_stored_cut_to_its_bound(
    live_on_each_backend: LiveServer,
) -> None:
    live = live_on_each_backend
    with live.operator() as op:
        response = op.post(f"/devices/{'d' * 4000}/decommission")
    assert response.status_code == 404, response.text
    [entry] = entries(live, action="devices.decommission")
    assert len(entry["target"]) <= MAX_TARGET
    assert entry["target"].startswith("d" * 100)
    assert len(entry["detail"]["path"]) <= MAX_TARGET


def test_requests_without_an_operator_token_are_counted_never_stored(
    live_on_each_backend: LiveServer,
) -> None:
    live = live_on_each_backend
    device = live.enroll()
    before = not_operators.count
    with live.client("not-a-token", "/api/operator/v1") as stranger:
        for _ in range(3):
            assert stranger.post("/devices/dev-1/decommission").status_code == 401
    with live.client(device["credential"], "/api/operator/v1") as a_device:
        assert a_device.post("/devices/dev-1/decommission").status_code == 403
    assert entries(live, action="devices") == []
    assert not_operators.count - before == 4


def test_every_create_names_what_it_created_or_was_asked_to_create(
    live: LiveServer, digits_path: Path, echo_path: Path
) -> None:
    # enough devices that a rollout's answer (which lists them) is longer than 4 KiB
    with live.operator() as op:
        token = op.post("/enroll-tokens", json={"uses": 200}).json()
    with live.client(prefix=API_PREFIX) as c:
        for _ in range(200):
            assert c.post("/enroll", json={"token": token["token"]}).status_code == 200
    assert push(live, digits_path, version="1").status_code == 201
    assert push(live, echo_path, version="2").status_code == 201
    with live.operator() as op:
        assert op.post("/deployments", json={"model": "digits", "version": "1"}).is_success
        rollout = op.post("/rollouts", json={"model": "digits", "version": "2", "stages": "100%"})
        assert rollout.status_code == 201, rollout.text
        assert len(rollout.content) > 4096
        assert op.put("/policies", json={"selector": "site=lab", "windows": []}).is_success
        assert op.delete("/policies", params={"selector": "site=lab"}).is_success
        job = op.post(
            "/fl/jobs",
            json={"task": "digits", "model": "digits", "version": "9", "rounds": 1, "per_round": 1},
        )
        assert job.status_code == 404, job.text
    targets = [(e["action"], e["target"], e["outcome"][:11]) for e in reversed(entries(live))]
    assert targets == [
        ("enroll-tokens.create", str(token["id"]), "ok"),
        ("models.create", "digits@1", "ok"),
        ("models.create", "digits@2", "ok"),
        ("deployments.create", "digits@1 to (all)", "ok"),
        ("rollouts.create", rollout.json()["rollout_id"], "ok"),
        ("policies.set", "site=lab", "ok"),
        ("policies.delete", "site=lab", "ok"),
        ("fl.jobs.create", "digits@9 to (all)", "refused 404"),
    ]


def test_a_chunked_body_over_the_limit_is_recorded_as_the_413_the_client_got(
    server_factory: ServerFactory,
) -> None:
    limit = 4096
    live = server_factory(max_body_bytes=limit)
    parts = urlsplit(live.url)
    assert parts.hostname is not None
    assert parts.port is not None
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(
            (
                f"POST /api/operator/v1/deployments HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                f"Authorization: Bearer {live.operator_token}\r\n"
                "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            ).encode()
        )
        chunk = b" " * 1024
        for _ in range(limit // len(chunk) + 1):
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        status, _, body = _read_response(sock)
    assert status == 413
    assert json.loads(body)["code"] == "protocol.too_large"
    [entry] = entries(live, action="deployments")
    assert entry["actor"] == "init"
    assert entry["outcome"].startswith("refused 413 protocol.too_large"), entry
    assert entry["detail"]["status"] == 413
