"""Device API v1 (``/api/device/v1``): enrol, heartbeat, desired state, events, telemetry, TUF.

Every body is a model of :mod:`edgefleet.protocol.v1`; every route but ``/enroll`` needs the
device's own credential and acts only on that device.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from edgefleet.errors import ProtocolError
from edgefleet.protocol.v1 import (
    API_PREFIX,
    BatchAck,
    EnrollRequest,
    EnrollResponse,
    EventBatch,
    Heartbeat,
    HeartbeatAck,
    SignedDesiredState,
    TelemetryBatch,
)
from edgefleet.server.api.auth import CurrentDevice, context
from edgefleet.server.context import ServerContext
from edgefleet.server.registry.tuf_repo import TufRepository
from edgefleet.server.services import devices
from edgefleet.server.store import TelemetryBatchRow
from edgefleet.telemetry import TelemetrySnapshot

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["device v1"])
Ctx = Annotated[ServerContext, Depends(context)]


@router.post("/enroll", response_model=EnrollResponse)
def enroll(body: EnrollRequest, ctx: Ctx) -> EnrollResponse:
    """Trade an enrolment token for a device credential (returned once) and trust anchors."""
    return devices.enroll(ctx, body, time.time())


async def _desired(ctx: ServerContext, device_id: str) -> tuple[int, float]:
    """The device's newest ``(version, expires_at)``: from memory, else from the database."""
    known = ctx.versions.get(device_id)
    if known is None:
        known = await run_in_threadpool(devices.load_desired_version, ctx, device_id)
    return known


@router.post("/heartbeat", response_model=HeartbeatAck)
async def heartbeat(body: Heartbeat, device: CurrentDevice, ctx: Ctx) -> HeartbeatAck:
    """Record liveness and inventory; answers with the newest desired-state version."""
    devices.heartbeat(ctx, device.device_id, body, time.time())
    version, _ = await _desired(ctx, device.device_id)
    return HeartbeatAck(server_time=time.time(), desired_version=version)


def _etag(version: int) -> str:
    return f'"{version}"'


@router.get("/desired-state", response_model=SignedDesiredState)
async def desired_state(
    request: Request,
    device: CurrentDevice,
    ctx: Ctx,
    wait: Annotated[
        float, Query(ge=0, allow_inf_nan=False, description="Long-poll seconds.")
    ] = 0.0,
) -> Response:
    """The device's signed desired state; ``If-None-Match`` with the current version gets 304.

    With ``wait``, an unchanged state holds the request open until it changes or ``wait``
    seconds (capped by the server) pass. A state past half of its lifetime is re-issued (signed
    again with a new version) instead of answered 304, so a device never holds one that expires.
    An unchanged state is answered from the process's memory, without the database. When the
    server begins to stop, a held poll is answered 304 at once (the device polls again later).
    """
    known = request.headers.get("if-none-match")
    deadline = time.monotonic() + min(wait, ctx.settings.long_poll_max_s)
    while True:
        version, expires_at = await _desired(ctx, device.device_id)
        if (
            known != _etag(version)
            or version == 0
            or devices.needs_reissue(ctx, expires_at, time.time())
        ):
            break
        left = deadline - time.monotonic()
        if left <= 0 or request.app.state.stopping:
            return Response(status_code=304, headers={"ETag": known})
        await ctx.changes.wait(left)
    signed = await run_in_threadpool(
        devices.signed_desired_state, ctx, device.device_id, time.time()
    )
    return Response(
        content=signed.model_dump_json(),
        media_type="application/json",
        headers={"ETag": _etag(signed.signed.version)},
    )


@router.post("/events", response_model=BatchAck)
def events(body: EventBatch, device: CurrentDevice, ctx: Ctx) -> BatchAck:
    """Store events; an event id seen before is counted as a duplicate, not stored twice."""
    rows = [e.model_dump(mode="json") for e in body.events]
    accepted, duplicates = ctx.store.add_events(device.device_id, rows)
    return BatchAck(accepted=accepted, duplicates=duplicates)


@router.post("/telemetry", response_model=BatchAck)
async def telemetry(body: TelemetryBatch, device: CurrentDevice, ctx: Ctx) -> BatchAck:
    """Store telemetry windows; a window id seen before is never counted twice.

    Answered once the windows are committed (uploads arriving together share a transaction).
    """
    for window in body.windows:
        try:
            TelemetrySnapshot.from_dict(window.snapshot)
        except ValueError as exc:
            raise ProtocolError(f"window {window.window_id}: {exc}") from exc
    rows = [w.model_dump(mode="json") for w in body.windows]
    batch = TelemetryBatchRow(device.device_id, rows, body.dropped_total, time.time())
    accepted, duplicates = await ctx.telemetry.add(batch)
    return BatchAck(accepted=accepted, duplicates=duplicates)


@router.get("/tuf/metadata/{filename}")
def tuf_metadata(filename: str, device: CurrentDevice, ctx: Ctx) -> Response:
    """TUF metadata (``root.json``, ``<v>.root.json``, ``timestamp.json``, ...)."""
    body = ctx.repository.metadata(filename)
    return Response(content=body, media_type="application/json")


@router.get("/tuf/targets/{path:path}")
def tuf_target(path: str, device: CurrentDevice, ctx: Ctx) -> FileResponse:
    """A target file by its consistent-snapshot name ``<dir>/<sha256>.<name>`` (Range honoured)."""
    _, sha256 = TufRepository.split_target_file_name(path)
    return FileResponse(ctx.artifacts.path(sha256), media_type="application/octet-stream")
