from __future__ import annotations

import datetime
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edgefleet.agent.uplink import (
    CredentialRejectedError,
    RefusedError,
    RequestTooLargeError,
    Uplink,
)
from edgefleet.errors import ConfigurationError, UplinkError
from edgefleet.protocol.v1 import EnrollRequest, EventBatch, Heartbeat
from tests.unit.agent.loopback import ENROLL_TOKEN, LoopbackControlPlane

# Built from plain data: protocol fields with positional Field defaults look required to mypy.
HEARTBEAT = Heartbeat.model_validate({"inventory": {}})


def _enrolled(plane: LoopbackControlPlane) -> tuple[Uplink, str]:
    with Uplink(plane.url) as anonymous:
        reply = anonymous.enroll(EnrollRequest(token=ENROLL_TOKEN, labels={"site": "lab"}))
    return Uplink(plane.url, credential=reply.credential, timeout_s=5), reply.device_id


def test_enrol_then_heartbeat_with_the_credential(control_plane: LoopbackControlPlane) -> None:
    uplink, device_id = _enrolled(control_plane)
    with uplink:
        ack = uplink.heartbeat(Heartbeat.model_validate({"inventory": {"arch": "x86_64"}}))
    assert ack.desired_version == 1
    assert device_id.startswith("dev-")
    assert control_plane.enrolments[0].labels == {"site": "lab"}
    assert control_plane.heartbeats[0].inventory.arch == "x86_64"


def test_a_used_token_is_refused_with_the_servers_message(
    control_plane: LoopbackControlPlane,
) -> None:
    _enrolled(control_plane)[0].close()
    with Uplink(control_plane.url) as uplink, pytest.raises(CredentialRejectedError) as info:
        uplink.enroll(EnrollRequest(token=ENROLL_TOKEN))
    assert info.value.status == 401
    assert info.value.message == "enrolment token is unknown, expired or used up"
    assert not info.value.retryable
    assert "HTTP 401" in str(info.value)


def test_a_revoked_credential_is_told_apart(control_plane: LoopbackControlPlane) -> None:
    uplink, device_id = _enrolled(control_plane)
    control_plane.revoke(device_id)
    with uplink, pytest.raises(CredentialRejectedError, match="revoked"):
        uplink.heartbeat(HEARTBEAT)


def test_desired_state_etag_and_long_poll(control_plane: LoopbackControlPlane) -> None:
    uplink, device_id = _enrolled(control_plane)
    with uplink:
        first = uplink.desired_state()
        assert first is not None
        assert first.signed.version == 1
        assert uplink.desired_state(known_version=1) is None  # 304
        threading.Timer(0.3, control_plane.set_desired, (device_id, None)).start()
        changed = uplink.desired_state(known_version=1, wait_s=4)
        assert changed is not None  # the long poll returned the change
        assert changed.signed.version == 2
    assert ("GET", "/api/device/v1/desired-state", 304) in control_plane.requests


def test_server_errors_are_retryable_refusals(control_plane: LoopbackControlPlane) -> None:
    uplink, _ = _enrolled(control_plane)
    control_plane.fail_status = 503
    with uplink, pytest.raises(RefusedError) as info:
        uplink.send_events(EventBatch(events=[]))
    assert info.value.status == 503
    assert info.value.retryable
    assert info.value.message == "the test says no"
    assert info.value.server_code == "test"
    assert info.value.code == "agent.uplink"


def test_unreachable_server_is_a_plain_uplink_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with (
        Uplink(f"http://127.0.0.1:{port}", timeout_s=2) as uplink,
        pytest.raises(UplinkError, match="cannot reach") as info,
    ):
        uplink.heartbeat(HEARTBEAT)
    assert not isinstance(info.value, RefusedError)


def test_oversized_bodies_are_not_sent(control_plane: LoopbackControlPlane) -> None:
    with (
        Uplink(control_plane.url, max_request_bytes=100) as uplink,
        pytest.raises(RequestTooLargeError, match="over the agent's limit"),
    ):
        uplink.enroll(EnrollRequest(token=ENROLL_TOKEN, labels={"k": "v" * 60}))
    assert control_plane.requests == []


def test_invalid_answers_and_non_json_errors(control_plane: LoopbackControlPlane) -> None:
    uplink, _ = _enrolled(control_plane)
    with uplink:
        control_plane.overrides["/heartbeat"] = (200, b'{"unexpected": true}')
        with pytest.raises(UplinkError, match="heartbeat: the control plane sent an invalid"):
            uplink.heartbeat(HEARTBEAT)
        control_plane.overrides["/heartbeat"] = (502, b"<html>bad gateway</html>")
        with pytest.raises(RefusedError, match="HTTP 502: <html>bad gateway</html>"):
            uplink.heartbeat(HEARTBEAT)


# -- TLS ---------------------------------------------------------------------------------------


def _certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edgefleet test CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _Ack(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = b'{"server_time": 1.0, "desired_version": 4}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    cert, key = _certificate(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = HTTPServer(("127.0.0.1", 0), _Ack)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield f"https://localhost:{server.server_address[1]}", cert
    server.shutdown()
    server.server_close()
    thread.join()


def test_tls_with_the_given_ca_file(tls_server: tuple[str, Path]) -> None:
    url, ca_file = tls_server
    with Uplink(url, ca_file=ca_file, timeout_s=5) as uplink:
        assert uplink.heartbeat(HEARTBEAT).desired_version == 4
    with (
        Uplink(url, timeout_s=5) as untrusting,  # the system CAs do not know the test CA
        pytest.raises(UplinkError, match="cannot reach"),
    ):
        untrusting.heartbeat(HEARTBEAT)


def test_a_missing_ca_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot use CA file"):
        Uplink("https://localhost", ca_file=tmp_path / "absent.pem")
