"""What a model file must pass on this device before it serves: checks, loading, smoke test.

A verified file is checked for compatibility (opset, execution providers, memory) before
ONNX Runtime loads it, then its golden inputs must give the published outputs. Files are only
ever loaded from the models directory, and a stored file must still hash to what was verified.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import onnxruntime as ort

from edgefleet.agent.compat import check_compatibility, max_supported_opset
from edgefleet.agent.inventory import memory_info
from edgefleet.agent.smoke import run_smoke_test
from edgefleet.agent.state import ModelRecord
from edgefleet.agent.trust import VerifiedModel
from edgefleet.errors import ConfigurationError, ModelLoadError
from edgefleet.protocol.v1 import DesiredModel
from edgefleet.runtime import Servable, load
from edgefleet.runtime.calibrated import check_temperature
from edgefleet.runtime.onnx_file import read_onnx_file

__all__ = [
    "file_opset",
    "load_record",
    "prepare_model",
    "release_temperature",
    "verified_problem",
]

log = logging.getLogger(__name__)


def verified_problem(verified: VerifiedModel, desired: DesiredModel, models_dir: Path) -> str:
    """Why ``verified`` cannot be what ``desired`` names (empty when it can)."""
    if verified.sha256 != desired.sha256:
        return f"verified file has sha256 {verified.sha256}, desired {desired.sha256}"
    if verified.path.resolve().parent != models_dir.resolve():
        return f"{verified.path} is not under {models_dir}; refusing to load it"
    if not verified.path.is_file():
        return f"verified file {verified.path} is missing"
    return ""


def release_temperature(custom: dict[str, Any]) -> float | None:
    """The calibration temperature a release's signed custom fields carry, if any.

    >>> release_temperature({"calibration": {"temperature": "1.7"}})
    1.7
    >>> release_temperature({}) is None
    True

    Raises
    ------
    ConfigurationError
        ``calibration`` is there but is not ``{"temperature": T}`` with a finite ``T > 0``
        (a number, or a decimal string as TUF's canonical JSON signs it).
    """
    calibration = custom.get("calibration")
    if calibration is None:
        return None
    if not isinstance(calibration, dict) or "temperature" not in calibration:
        raise ConfigurationError(
            f"release field calibration must be {{'temperature': T}}, got {calibration!r}"
        )
    value = calibration["temperature"]
    if isinstance(value, str):  # TUF's canonical JSON has no floats: signed as a decimal string
        try:
            value = float(value)
        except ValueError:
            raise ConfigurationError(
                f"release field calibration.temperature {value!r} is not a number"
            ) from None
    return check_temperature(value)


def prepare_model(
    verified: VerifiedModel, desired: DesiredModel, load_options: dict[str, Any]
) -> tuple[Servable, int | None]:
    """Check, load and smoke-test a verified model; return it and the golden cases checked.

    The smoke test's calls are removed from the model's telemetry. ``None`` cases: the release
    has no golden inputs. A release with ``calibration.temperature`` records calibrated
    confidence.

    Raises
    ------
    CompatibilityError
        The device cannot run the model (opset, execution providers, memory).
    ModelLoadError, ConfigurationError
        ONNX Runtime cannot load it with these options, or its calibration field is malformed.
    SmokeTestError
        Its outputs on the golden inputs differ, or it fails on them.
    """
    custom = verified.custom
    temperature = release_temperature(custom)
    check_compatibility(
        dict(custom.get("requirements") or {}),
        opset=int(custom.get("opset") or file_opset(verified.path)),
        max_supported_opset=max_supported_opset(),
        available_providers=list(ort.get_available_providers()),
        memory_available_bytes=memory_info().available_bytes,
    )
    model = load(
        verified.path,
        name=desired.name,
        version=desired.version,
        **{**load_options, "calibration_temperature": temperature},
    )
    if verified.golden_path is None:
        log.info("%s has no golden inputs; no smoke test", verified.target)
        return model, None
    try:
        cases = run_smoke_test(model, verified.golden_path)
    except BaseException:
        model.close()
        raise
    model.telemetry.discard()  # smoke-test calls are not the users'
    return model, cases


def load_record(record: ModelRecord, models_dir: Path, load_options: dict[str, Any]) -> Servable:
    """Load a model ``state.json`` names, refusing a file outside ``models_dir`` or changed.

    Raises
    ------
    ModelLoadError
        The file is elsewhere, missing, no longer hashes to ``record.sha256``, or cannot load.
    """
    path = Path(record.path)
    if path.resolve().parent != models_dir.resolve():
        raise ModelLoadError(f"{path} is not under {models_dir}; refusing to load it")
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}") from exc
    if digest != record.sha256:
        raise ModelLoadError(f"{path} changed on disk (sha256 {digest}, not {record.sha256})")
    return load(
        path,
        name=record.name,
        version=record.version,
        **{**load_options, "calibration_temperature": record.temperature},
    )


def file_opset(path: Path) -> int:
    """The default-domain opset an ONNX file imports."""
    try:
        return read_onnx_file(path).opset
    except (ValueError, OSError) as exc:
        raise ModelLoadError(f"{path} is not a valid ONNX model: {exc}") from exc
