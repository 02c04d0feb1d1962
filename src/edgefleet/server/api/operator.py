"""Operator API (``/api/operator/v1``): registry, devices, tokens, deployments, telemetry.

Every route needs an operator token; device credentials get 403.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from pydantic import BaseModel, ConfigDict, Field

from edgefleet.errors import NotFoundError
from edgefleet.protocol.bounds import Name, Positive32, Text
from edgefleet.protocol.labels import check_labels, parse_selector
from edgefleet.server.api.audit import set_target
from edgefleet.server.api.auth import CurrentOperator, context
from edgefleet.server.api.params import (
    DEFAULT_LIMIT,
    Limit,
    TextPath,
    TextQuery,
)
from edgefleet.server.context import ServerContext
from edgefleet.server.services import registry
from edgefleet.server.services.telemetry import StoredWindow, summarize
from edgefleet.server.store.rows import DeviceRow
from edgefleet.server.tokens import hash_token, new_token

__all__ = ["OPERATOR_PREFIX", "router"]

OPERATOR_PREFIX = "/api/operator/v1"
router = APIRouter(prefix=OPERATOR_PREFIX, tags=["operator"])
Ctx = Annotated[ServerContext, Depends(context)]


class EnrollTokenRequest(BaseModel):
    """A new enrolment token: labels given to devices enrolling with it, uses, lifetime."""

    model_config = ConfigDict(extra="forbid")
    labels: dict[str, str] = Field(default_factory=dict, max_length=64)
    uses: Positive32 | None = Field(default=None, description="How many enrolments (none: any).")
    ttl_s: float | None = Field(
        default=86400.0, gt=0, le=100 * 365 * 86400.0, description="Lifetime in seconds."
    )


class DeployRequest(BaseModel):
    """Assign ``model@version`` to every device matching ``selector`` (and future ones)."""

    model_config = ConfigDict(extra="forbid")
    model: Name
    version: Name
    selector: Text = Field(default="", description="Label selector, e.g. region=eu,hw=orin-nx.")
    allow_empty: bool = Field(
        default=False, description="Deploy even if no device matches now (only later enrolments)."
    )


def _row(row: Any) -> dict[str, Any]:
    data = dataclasses.asdict(row)
    data.pop("credential_hash", None)
    data.pop("token_hash", None)
    return data


def _device(ctx: ServerContext, row: DeviceRow, now: float) -> dict[str, Any]:
    data = _row(row)
    last = row.last_seen_at
    data["online"] = last is not None and now - last < ctx.settings.device_offline_after_s
    return data


@router.post("/models", status_code=201)
def push_model(
    ctx: Ctx,
    _: CurrentOperator,
    request: Request,
    file: Annotated[UploadFile, File(description="The ONNX model file.")],
    name: Annotated[Name, Form()],
    version: Annotated[Name | None, Form()] = None,
    golden: Annotated[int, Form(ge=0, le=64)] = 8,
    calibration: Annotated[UploadFile | None, File(description="npz with x and y.")] = None,
) -> dict[str, Any]:
    """Validate, store and register a model version; publishes its first release."""
    set_target(request, f"{name}@{version}" if version else name)
    with tempfile.TemporaryDirectory(dir=ctx.settings.data_dir) as tmp:
        upload = registry.upload_path(Path(tmp) / "model", file.filename, "model.onnx")
        with upload.open("wb") as out:
            shutil.copyfileobj(file.file, out)
        calib: Path | None = None
        if calibration is not None:
            calib = registry.upload_path(
                Path(tmp) / "calibration", calibration.filename, "calibration.npz"
            )
            with calib.open("wb") as out:
                shutil.copyfileobj(calibration.file, out)
        row, created = registry.push_model(
            ctx,
            upload,
            name=name,
            version=version,
            golden=golden,
            calibration=calib,
            now=time.time(),
        )
    set_target(request, f"{row.name}@{row.version}")
    return {"created": created, "model": _row(row)}


@router.get("/models")
def list_models(ctx: Ctx, _: CurrentOperator, name: TextQuery = None) -> list[dict[str, Any]]:
    """Every model version (of ``name``), oldest first."""
    return [_row(r) for r in ctx.store.list_model_versions(name)]


@router.get("/models/{name}")
def show_model(ctx: Ctx, _: CurrentOperator, name: TextPath) -> dict[str, Any]:
    """A model's versions and releases."""
    versions = ctx.store.list_model_versions(name)
    if not versions:
        raise NotFoundError(f"no model named {name!r}")
    return {
        "name": name,
        "versions": [_row(r) for r in versions],
        "releases": [_row(r) for r in ctx.store.list_releases(name)],
    }


@router.get("/devices")
def list_devices(
    ctx: Ctx,
    _: CurrentOperator,
    selector: TextQuery = None,
    decommissioned: Annotated[
        bool, Query(description="List the decommissioned devices instead of the enrolled ones.")
    ] = False,
) -> list[dict[str, Any]]:
    """Devices matching a label selector, with their online state.

    Decommissioned devices are listed only with ``decommissioned=true`` (and then only they).
    """
    ctx.heartbeats.flush()
    now = time.time()
    devices = ctx.store.list_devices(
        parse_selector(selector or ""), include_decommissioned=decommissioned
    )
    if decommissioned:
        devices = [d for d in devices if d.decommissioned_at is not None]
    return [_device(ctx, d, now) for d in devices]


@router.get("/devices/{device_id}")
def show_device(ctx: Ctx, _: CurrentOperator, device_id: TextPath) -> dict[str, Any]:
    """A device: inventory, desired state, merged telemetry per model version, recent events."""
    ctx.heartbeats.flush()
    row = ctx.store.get_device(device_id)
    if row is None:
        raise NotFoundError(f"no device {device_id!r}")
    desired = ctx.store.get_desired_state(device_id)
    return {
        "device": _device(ctx, row, time.time()),
        "desired": _row(desired) if desired else None,
        "telemetry": _telemetry(ctx, device_id=device_id, per_device=False),
        "events": [_row(e) for e in ctx.store.list_events(device_id, limit=50)],
    }


@router.post("/enroll-tokens", status_code=201)
def create_enroll_token(
    ctx: Ctx, _: CurrentOperator, body: EnrollTokenRequest, request: Request
) -> dict[str, Any]:
    """A new enrolment token; the secret is returned only here (its id is the audit target)."""
    token = new_token("enroll")
    now = time.time()
    row = ctx.store.create_enroll_token(
        hash_token(token),
        labels=check_labels(body.labels),
        uses=body.uses,
        expires_at=now + body.ttl_s if body.ttl_s else None,
        now=now,
    )
    set_target(request, str(row.id))
    return {"token": token, **_row(row)}


@router.post("/deployments", status_code=201)
def deploy(
    ctx: Ctx, operator: CurrentOperator, body: DeployRequest, request: Request
) -> dict[str, Any]:
    """Point matching devices at ``model@version`` through a signed desired state.

    Refused (409) when no device matches (unless ``allow_empty``) or when an active rollout or
    federated job holds one of the devices.
    """
    set_target(request, f"{body.model}@{body.version} to {body.selector or '(all)'}")
    result = registry.deploy(
        ctx,
        body.model,
        body.version,
        parse_selector(body.selector),
        time.time(),
        actor=operator.name,
        allow_empty=body.allow_empty,
    )
    return dataclasses.asdict(result)


def _telemetry(
    ctx: ServerContext,
    *,
    device_id: str | None = None,
    model: str | None = None,
    version: str | None = None,
    since: float | None = None,
    per_device: bool,
) -> list[dict[str, Any]]:
    rows = ctx.store.list_telemetry(device_id=device_id, model=model, version=version, since=since)
    windows = (
        StoredWindow(r.device_id, r.model, r.version, r.snapshot, r.swaps, r.rollbacks)
        for r in rows
        if r.role == "active"  # shadow windows describe a candidate beside the served model
    )
    merged = summarize(windows, per_device=per_device)
    out = []
    for (dev, _, _), summary in sorted(merged.items()):
        item = summary.to_dict()
        if per_device:
            item["device_id"] = dev
        out.append(item)
    return out


@router.get("/telemetry")
def telemetry(
    ctx: Ctx,
    _: CurrentOperator,
    model: TextQuery = None,
    version: TextQuery = None,
    device_id: TextQuery = None,
    since: Annotated[
        float | None, Query(allow_inf_nan=False, description="Unix time: windows ending after.")
    ] = None,
    per_device: bool = False,
) -> dict[str, Any]:
    """Merged telemetry per model version, fleet-wide (and per device with ``per_device``)."""
    fleet = _telemetry(
        ctx, device_id=device_id, model=model, version=version, since=since, per_device=False
    )
    result: dict[str, Any] = {"fleet": fleet}
    if per_device:
        result["devices"] = _telemetry(
            ctx, device_id=device_id, model=model, version=version, since=since, per_device=True
        )
    # a fleet-wide counter: a decommissioned device's drops still happened
    everyone = ctx.store.list_devices(None, include_decommissioned=True)
    result["dropped_windows"] = sum(d.telemetry_dropped for d in everyone)
    return result


@router.get("/events")
def events(
    ctx: Ctx, _: CurrentOperator, device_id: TextQuery = None, limit: Limit = DEFAULT_LIMIT
) -> list[dict[str, Any]]:
    """Recent agent events, newest first."""
    return [_row(e) for e in ctx.store.list_events(device_id, limit=limit)]
