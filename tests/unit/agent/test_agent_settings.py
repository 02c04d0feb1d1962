from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from edgefleet.agent.settings import AgentSettings, parse_address, parse_labels
from edgefleet.errors import ConfigurationError


def test_labels_parse_with_spaces_and_empty_items() -> None:
    assert parse_labels(" site=berlin , line=3,,hw=orin-nx ") == {
        "site": "berlin",
        "line": "3",
        "hw": "orin-nx",
    }
    assert parse_labels("") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("site", "'site' is not key=value"),
        ("site=a,site=b", "'site' is given twice"),
        ("bad key=x", "label key 'bad key'"),
        ("k=v v", "value must be"),
        (",".join(f"k{i}=v" for i in range(65)), "at most 64"),
    ],
)
def test_bad_labels_are_named(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_labels(text)


def test_addresses() -> None:
    assert parse_address("127.0.0.1:8500") == ("127.0.0.1", 8500)
    assert parse_address("[::1]:0") == ("::1", 0)
    for bad in ("8500", ":8500", "host:", "host:http", "host:70000"):
        with pytest.raises(ConfigurationError, match="address"):
            parse_address(bad)


def test_defaults_and_derived_paths(tmp_path: Path) -> None:
    settings = AgentSettings(data_dir=tmp_path)
    assert (settings.serve_host, settings.serve_port) == ("127.0.0.1", 8500)
    assert settings.heartbeat_interval_s == 10.0
    assert settings.telemetry_window_s == 60.0
    assert settings.health_watch_s == 60.0
    assert settings.credential_path == tmp_path / "credential.json"
    assert settings.models_dir == tmp_path / "models"
    assert settings.load_options()["providers"] == "auto"


def test_every_field_has_a_description() -> None:
    missing = [n for n, f in AgentSettings.model_fields.items() if not f.description]
    assert missing == []


def test_environment_is_read_and_labels_come_as_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGEFLEET_LABELS", "site=berlin,line=3")
    monkeypatch.setenv("EDGEFLEET_HEARTBEAT_INTERVAL_S", "2.5")
    monkeypatch.setenv("EDGEFLEET_ENROLL_TOKEN", "t" * 20)
    settings = AgentSettings.model_validate({"data_dir": tmp_path, "serve": "0.0.0.0:0"})
    assert settings.labels == {"site": "berlin", "line": "3"}
    assert settings.heartbeat_interval_s == 2.5
    assert settings.serve_port == 0
    assert settings.enroll_token is not None
    assert "t" * 20 not in repr(settings)


def test_server_url_is_normalised(tmp_path: Path) -> None:
    settings = AgentSettings(data_dir=tmp_path, server_url="https://cp.example:8443/api/device/v1/")
    assert settings.server_url == "https://cp.example:8443"


def test_every_bad_field_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as info:
        AgentSettings.model_validate(
            {
                "data_dir": tmp_path,
                "server_url": "ftp://x",
                "labels": "oops",
                "serve": "nowhere",
                "heartbeat_interval_s": 0,
            }
        )
    fields = {str(e["loc"][0]) for e in info.value.errors()}
    assert fields == {"server_url", "labels", "serve", "heartbeat_interval_s"}
    assert "is not key=value" in str(info.value)


def test_unknown_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="heartbeat_intervall"):
        AgentSettings.model_validate({"data_dir": tmp_path, "heartbeat_intervall": 3})
