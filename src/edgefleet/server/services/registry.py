"""Registry services: push a model version, publish releases as TUF targets, deploy.

A release counter per model name only grows. Pushing a version publishes release n+1 for it;
deploying a version that is not the newest release of its name (a deliberate "go back")
publishes yet another release pointing at the old file, so a device's downgrade protection
(never accept a lower release) stays intact.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgefleet.errors import ConfigurationError, ConflictError, NotFoundError, StoreError
from edgefleet.protocol.labels import matches
from edgefleet.protocol.v1 import DesiredModel
from edgefleet.runtime.npz import read_npz
from edgefleet.server.context import ServerContext
from edgefleet.server.registry.artifacts import inspect_model
from edgefleet.server.registry.calibrate import fit_calibration
from edgefleet.server.registry.golden import make_golden
from edgefleet.server.registry.tuf_repo import TargetSpec
from edgefleet.server.store.fl_jobs import ACTIVE_FL_STATES
from edgefleet.server.store.rollouts import ACTIVE_STATES
from edgefleet.server.store.rows import ModelVersionRow, ReleaseRow

__all__ = [
    "DeployResult",
    "deploy",
    "deployment_for",
    "desired_model",
    "ensure_release",
    "push_model",
    "remember_deployment",
    "upload_path",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_DEPLOYMENTS = "deployments"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\- ]")


@dataclass(frozen=True)
class DeployResult:
    """What a deployment changed."""

    model: str
    version: str
    release: int
    selector: dict[str, str]
    devices: list[str]
    deployment_id: int


def check_name(kind: str, value: str) -> str:
    """Validate a model name or version (letters, digits, ``_.-``; 1-64)."""
    if not _NAME.match(value):
        raise ConfigurationError(
            f"{kind} {value!r} must be 1-64 letters, digits, '_', '.' or '-' "
            "and start with a letter or digit"
        )
    return value


def upload_path(folder: Path, filename: str | None, default: str) -> Path:
    """Where to keep an uploaded file in ``folder`` (created): under the client's file name.

    Every message about the file then names the file the user pushed. Only the base name is
    kept, reduced to letters, digits and ``_.- `` (at most 128); ``default`` when nothing is left.

    Examples
    --------
    >>> import tempfile
    >>> tmp = Path(tempfile.mkdtemp())
    >>> upload_path(tmp / "model", "../../etc/passwd", "model.onnx").name
    'passwd'
    >>> upload_path(tmp / "calibration", "..", "calibration.npz").name
    'calibration.npz'
    """
    base = Path((filename or "").replace("\\", "/")).name
    base = _UNSAFE.sub("_", base)[:128].strip(". ")
    folder.mkdir(parents=True, exist_ok=True)
    return folder / (base or default)


def _next_version(ctx: ServerContext, name: str) -> str:
    numbers = [
        int(row.version) for row in ctx.store.list_model_versions(name) if row.version.isdigit()
    ]
    return str(max(numbers, default=0) + 1)


def push_model(
    ctx: ServerContext,
    upload: Path,
    *,
    name: str,
    version: str | None,
    golden: int,
    calibration: Path | None,
    now: float,
) -> tuple[ModelVersionRow, bool]:
    """Validate ``upload``, store it by SHA-256, record its metadata, publish a release.

    Returns the version row and whether it was new (pushing identical bytes again is a no-op).
    """
    check_name("model name", name)
    info = inspect_model(upload, max_bytes=ctx.settings.max_model_bytes)
    if version is None:
        existing = [r for r in ctx.store.list_model_versions(name) if r.sha256 == info.sha256]
        version = existing[0].version if existing else _next_version(ctx, name)
    check_name("version", version)
    calib: dict[str, Any] | None = None
    golden_inputs: dict[str, np.ndarray[Any, Any]] | None = None
    if calibration is not None:
        calib = fit_calibration(upload, calibration)
        golden_inputs = _calibration_inputs(calibration, info.inputs)
    sha256, _ = ctx.artifacts.put(upload)
    golden_sha: str | None = None
    if golden > 0:
        golden_sha, _ = ctx.artifacts.put_bytes(make_golden(upload, golden, inputs=golden_inputs))
    row, created = ctx.store.add_model_version(
        name=name,
        version=version,
        sha256=sha256,
        size_bytes=info.size_bytes,
        opset=info.opset,
        inputs=info.inputs,
        outputs=info.outputs,
        memory_estimate_bytes=info.memory_estimate_bytes,
        golden_sha256=golden_sha,
        calibration=calib,
        metadata={"producer": info.producer, "golden_cases": golden},
        created_at=now,
    )
    if created:
        ensure_release(ctx, row, now, force_new=True)
    return row, created


def _calibration_inputs(
    path: Path, inputs: list[dict[str, Any]]
) -> dict[str, np.ndarray[Any, Any]] | None:
    if len(inputs) != 1:
        return None
    x = read_npz(path, what="calibration data", keys=("x",), shown=path.name)["x"]
    return {inputs[0]["name"]: x}


def ensure_release(
    ctx: ServerContext, row: ModelVersionRow, now: float, *, force_new: bool = False
) -> ReleaseRow:
    """The newest release of ``row``'s name if it points at ``row``, else a new one."""
    with ctx.registry_lock:
        latest = ctx.store.latest_release(row.name)
        if latest is not None and latest.version == row.version and not force_new:
            return latest
        number = (latest.release if latest else 0) + 1
        target = f"models/{row.name}/r{number}.onnx"
        golden_target = f"golden/{row.name}/r{number}.npz" if row.golden_sha256 else None
        specs = []
        if row.golden_sha256 and golden_target:
            specs.append(
                TargetSpec(
                    golden_target,
                    ctx.artifacts.path(row.golden_sha256).stat().st_size,
                    row.golden_sha256,
                    {"model": row.name, "version": row.version, "release": number},
                )
            )
        custom = {
            "release": number,
            "model": row.name,
            "version": row.version,
            "opset": row.opset,
            "inputs": row.inputs,
            "requirements": {
                "execution_providers": list(row.metadata.get("execution_providers", [])),
                "memory_bytes": row.memory_estimate_bytes,
            },
            "golden": golden_target,
        }
        if row.calibration and "temperature" in row.calibration:
            # signed with the target (canonical JSON has no floats, so it travels as text):
            # the agent calibrates its confidence telemetry with it
            custom["calibration"] = {"temperature": repr(float(row.calibration["temperature"]))}
        specs.append(TargetSpec(target, row.size_bytes, row.sha256, custom))
        ctx.repository.add_targets(specs, now)  # model and golden inputs in one version
        release = ctx.store.add_release(
            row.name, row.version, target, row.sha256, row.size_bytes, custom, now
        )
        if release.release != number:
            raise StoreError(
                f"release counter of {row.name} moved under the registry lock "
                f"({release.release} != {number})"
            )
        return release


def desired_model(release: ReleaseRow) -> dict[str, Any]:
    """The desired-state payload for ``release``."""
    return DesiredModel(
        name=release.name,
        version=release.version,
        target=release.target,
        release=release.release,
        sha256=release.sha256,
        length=release.length,
    ).model_dump(mode="json")


def _overlaps(ctx: ServerContext, devices: list[str]) -> list[str]:
    """What is active on any of ``devices``: rollouts and federated jobs, described."""
    wanted = set(devices)
    found: list[str] = []
    for rollout in ctx.store.list_rollouts(states=ACTIVE_STATES):
        on = sorted(
            wanted.intersection(d.device_id for d in ctx.store.list_devices(rollout.selector))
        )
        if on:
            candidate = f"{rollout.model}@{rollout.candidate.get('version')}"
            found.append(
                f"rollout {rollout.rollout_id} ({candidate}, {rollout.state}) on {_some(on)}"
            )
    for job in ctx.store.list_fl_jobs(states=ACTIVE_FL_STATES):
        on = sorted(wanted.intersection(d.device_id for d in ctx.store.list_devices(job.selector)))
        if on:
            found.append(f"federated job {job.job_id} ({job.model}, {job.state}) on {_some(on)}")
    return found


def _some(ids: list[str], shown: int = 5) -> str:
    more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
    return ", ".join(ids[:shown]) + more


def deploy(
    ctx: ServerContext,
    name: str,
    version: str,
    selector: dict[str, str],
    now: float,
    *,
    actor: str = "operator",
    allow_empty: bool = False,
) -> DeployResult:
    """Make every device matching ``selector`` (and later enrolments) run ``name@version``.

    Checked before anything is written (a refused deployment publishes no release):

    Raises
    ------
    NotFoundError
        ``name@version`` is not in the registry.
    ConflictError
        ``selector`` matches no (active) device and ``allow_empty`` is false, or an active
        rollout or federated job holds one of the devices (it decides their model until it
        ends; the message names it).
    """
    row = ctx.store.get_model_version(name, version)
    if row is None:
        known = ", ".join(r.version for r in ctx.store.list_model_versions(name)) or "none"
        raise NotFoundError(f"model {name}@{version} is not in the registry (versions: {known})")
    shown = ",".join(f"{k}={v}" for k, v in selector.items()) or "(every device)"
    with ctx.registry_lock:
        devices = [d.device_id for d in ctx.store.list_devices(selector)]
        if not devices and not allow_empty:
            raise ConflictError(
                f"selector {shown} matches no device; nothing was deployed (allow an empty "
                "deployment to reach only devices that enrol later)"
            )
        busy = _overlaps(ctx, devices)
        if busy:
            raise ConflictError(
                f"cannot deploy {name}@{version} to {shown}: "
                + "; ".join(busy)
                + " is active (wait for it to end, or abort it)"
            )
        release = ensure_release(ctx, row, now)
        model = desired_model(release)
        expires_at = now + ctx.settings.desired_state_expiry_s
        versions = ctx.store.set_desired_states(devices, model, now, expires_at)
        for device_id, issued in versions.items():
            ctx.versions.record(device_id, issued, expires_at)
        remember_deployment(ctx, selector, model, now)
        stored = ctx.store.add_deployment(
            model=name,
            version=version,
            release=release.release,
            selector=selector,
            devices=devices,
            actor=actor,
            now=now,
        )
    ctx.changes.changed()
    return DeployResult(name, version, release.release, selector, devices, stored.id)


def remember_deployment(
    ctx: ServerContext, selector: dict[str, str], model: dict[str, Any], now: float
) -> None:
    """Make ``model`` the first desired model of devices that enrol later under ``selector``."""
    with ctx.registry_lock:
        deployments = [d for d in _deployments(ctx) if d["selector"] != selector]
        deployments.append({"selector": selector, "model": model, "at": now})
        ctx.store.set_setting(_DEPLOYMENTS, json.dumps(deployments))


def _deployments(ctx: ServerContext) -> list[dict[str, Any]]:
    raw = ctx.store.get_setting(_DEPLOYMENTS)
    return list(json.loads(raw)) if raw else []


def deployment_for(ctx: ServerContext, labels: dict[str, str]) -> dict[str, Any] | None:
    """The model of the newest deployment whose selector matches ``labels``."""
    found = [d for d in _deployments(ctx) if matches(d["selector"], labels)]
    return max(found, key=lambda d: d["at"])["model"] if found else None
