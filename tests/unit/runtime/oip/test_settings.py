"""`edgefleet serve` settings: defaults, EDGEFLEET_* environment variables, bad values."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from edgefleet.runtime.oip.settings import ServeSettings


def test_defaults_suit_a_server_handling_concurrent_requests() -> None:
    options = ServeSettings(model_path=Path("m.onnx")).load_options()
    assert options["spin_wait"] is False
    assert options["nan_policy"] == "reject"
    assert options["providers"] == "auto"
    assert "name" not in options  # the file name is used


def test_environment_variables_override_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEFLEET_SPIN_WAIT", "true")
    monkeypatch.setenv("EDGEFLEET_PORT", "9100")
    monkeypatch.setenv("EDGEFLEET_PROVIDERS", "CUDAExecutionProvider, CPUExecutionProvider")
    settings = ServeSettings(model_path=Path("m.onnx"))
    assert settings.port == 9100
    options = settings.load_options()
    assert options["spin_wait"] is True
    assert options["providers"] == ("CUDAExecutionProvider", "CPUExecutionProvider")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("port", 70000),
        ("port", -1),
        ("intra_op_threads", -2),
        ("nan_policy", "ignore"),
        ("spin_wait", "sometimes"),
        ("shutdown_grace_seconds", -1),
    ],
)
def test_bad_values_are_refused_and_named(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        ServeSettings.model_validate({"model_path": "m.onnx", field: value})
