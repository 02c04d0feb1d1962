"""Who may call what: tokens, credentials, body limits, TLS."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import httpx
import pytest

from edgefleet.server.init import initialize
from tests.integration.server.conftest import LiveServer, ServerFactory


def test_operator_api_refuses_missing_unknown_and_device_credentials(live: LiveServer) -> None:
    device = live.enroll()
    with live.client(prefix="/api/operator/v1") as anonymous:
        assert anonymous.get("/devices").status_code == 401
    with live.client("efo_not-a-real-token", "/api/operator/v1") as unknown:
        response = unknown.get("/devices")
        assert response.status_code == 401
        assert response.json()["code"] == "auth.denied"
    with live.client(device["credential"], "/api/operator/v1") as as_device:
        response = as_device.get("/devices")
        assert response.status_code == 403
        assert response.json()["code"] == "auth.forbidden"


def test_device_api_refuses_operator_tokens_and_unknown_credentials(live: LiveServer) -> None:
    with live.device(live.operator_token) as c:
        assert c.get("/desired-state").status_code == 403
    with live.device("efd_forged") as c:
        assert c.post("/heartbeat", json={"inventory": {}}).status_code == 401


def test_a_device_credential_only_ever_sees_its_own_desired_state(live: LiveServer) -> None:
    first, second = live.enroll(), live.enroll()
    with live.device(first["credential"]) as c:
        state = c.get("/desired-state").json()
    assert state["signed"]["device_id"] == first["device_id"]
    with live.device(second["credential"]) as c:
        assert c.get("/desired-state").json()["signed"]["device_id"] == second["device_id"]


def test_tokens_are_stored_hashed_never_in_clear(live: LiveServer) -> None:
    device = live.enroll()
    database = (live.data_dir / "edgefleet.db").read_bytes()
    assert live.operator_token.encode() not in database
    assert device["credential"].encode() not in database


def test_one_use_enrolment_token_enrols_exactly_once(live: LiveServer) -> None:
    with live.operator() as op:
        token = op.post("/enroll-tokens", json={"uses": 1}).json()["token"]
    with live.client(prefix="/api/device/v1") as c:
        assert c.post("/enroll", json={"token": token}).status_code == 200
        again = c.post("/enroll", json={"token": token})
    assert again.status_code == 401
    assert "used up" in again.json()["error"]


def test_expired_enrolment_token_is_refused(live: LiveServer) -> None:
    with live.operator() as op:
        token = op.post("/enroll-tokens", json={"ttl_s": 0.001}).json()["token"]
    with live.client(prefix="/api/device/v1") as c:
        assert c.post("/enroll", json={"token": token}).status_code == 401


def test_bodies_over_the_limit_get_413_on_every_endpoint(server_factory: ServerFactory) -> None:
    live = server_factory(max_body_bytes=2048)
    big = {"token": "x" * 4096}
    with live.client(prefix="/api/device/v1") as c:
        response = c.post("/enroll", json=big)
    assert response.status_code == 413
    assert response.json()["code"] == "protocol.too_large"
    with live.operator() as op:
        assert (
            op.post(
                "/enroll-tokens", json={"labels": {"k": "v" * 10}, "pad": "x" * 4096}
            ).status_code
            == 413
        )


def test_malformed_bodies_get_a_clear_422(live: LiveServer) -> None:
    with live.client(prefix="/api/device/v1") as c:
        response = c.post(
            "/enroll", content=b"{not json", headers={"content-type": "application/json"}
        )
    assert response.status_code == 422
    assert "invalid request" in response.json()["error"]


def test_init_writes_secrets_with_mode_0600_and_refuses_to_run_twice(tmp_path: Path) -> None:
    result = initialize(tmp_path / "d")
    for secret in ("operator-token", "server.yaml", "keys/director.key", "keys/timestamp.key"):
        mode = stat.S_IMODE((tmp_path / "d" / secret).stat().st_mode)
        assert mode == 0o600, secret
    assert result.root_key_online
    from edgefleet.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="already initialised"):
        initialize(tmp_path / "d")


def test_root_key_can_live_outside_the_data_dir(tmp_path: Path) -> None:
    offline = tmp_path / "usb" / "root.key"
    offline.parent.mkdir()
    result = initialize(tmp_path / "d", root_key=offline)
    assert offline.exists()
    assert not result.root_key_online
    assert not (tmp_path / "d" / "keys" / "root.key").exists()


def _self_signed(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it (PEM files)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edgefleet test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_file, cert_file, key_file


def test_tls_with_a_self_signed_ca(tmp_path: Path, server_factory: ServerFactory) -> None:
    ca_file, cert, key = _self_signed(tmp_path)
    live = server_factory(ssl=(cert, key))
    assert live.url.startswith("https://")
    live.ca_file = ca_file
    with live.operator() as op:
        assert op.get("/devices").status_code == 200
    with httpx.Client(base_url=live.url) as untrusting, pytest.raises(httpx.ConnectError):
        untrusting.get("/healthz")
