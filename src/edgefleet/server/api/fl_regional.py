"""Regional relays over HTTP: a relay's aggregate upload, and who a device credential is.

``POST /api/operator/v1/fl/jobs/{job}/rounds/{round}/regional`` (operator token): the body is
the region's aggregate, dense float32 as ``DenseCodec`` encodes it; the headers name the
region (:data:`REGION_HEADER`), the devices it covers (:data:`DEVICES_HEADER`, comma
separated), their example count (``X-Edgefleet-Examples``) and, when the relay added noise,
the privacy spec (:data:`PRIVACY_HEADER`).

``GET /api/device/v1/identity`` (device credential): ``{"device_id", "labels"}`` of the
credential's device, which a relay asks with the device's own header to learn whose update it
holds, without keeping the credential.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from edgefleet.errors import NotFoundError, ProtocolError
from edgefleet.protocol.v1 import API_PREFIX, FL_EXAMPLES_HEADER
from edgefleet.server.api.auth import CurrentDevice, CurrentOperator, context
from edgefleet.server.api.params import RoundPath, TextPath
from edgefleet.server.context import ServerContext
from edgefleet.server.services import fl_regional

__all__ = [
    "DEVICES_HEADER",
    "PRIVACY_HEADER",
    "REGION_HEADER",
    "device_router",
    "operator_router",
]

REGION_HEADER = "X-Edgefleet-Region"
DEVICES_HEADER = "X-Edgefleet-Devices"
PRIVACY_HEADER = "X-Edgefleet-Privacy"

operator_router = APIRouter(prefix="/api/operator/v1/fl", tags=["federated"])
device_router = APIRouter(prefix=API_PREFIX, tags=["device v1"])
Ctx = Annotated[ServerContext, Depends(context)]


@operator_router.post("/jobs/{job_id}/rounds/{round_}/regional")
async def upload_regional(
    job_id: TextPath, round_: RoundPath, request: Request, ctx: Ctx, _: CurrentOperator
) -> dict[str, Any]:
    """Take a regional relay's aggregate into an open round (its devices become in_region)."""
    region = request.headers.get(REGION_HEADER)
    if not region:
        raise ProtocolError(f"a regional aggregate names its region ({REGION_HEADER} header)")
    devices = [d.strip() for d in request.headers.get(DEVICES_HEADER, "").split(",") if d.strip()]
    examples_header = request.headers.get(FL_EXAMPLES_HEADER, "")
    try:
        examples = int(examples_header)
    except ValueError:
        raise ProtocolError(
            f"example count {examples_header[:40]!r} is not an integer ({FL_EXAMPLES_HEADER})"
        ) from None
    privacy = request.headers.get(PRIVACY_HEADER) or None
    payload = await request.body()
    return await run_in_threadpool(
        lambda: fl_regional.receive_regional(
            ctx,
            job_id,
            round_,
            region,
            devices,
            payload,
            examples,
            time.time(),
            privacy=privacy,
        )
    )


@device_router.get("/identity")
def identity(device: CurrentDevice, ctx: Ctx) -> dict[str, Any]:
    """The credential's device and its labels."""
    row = ctx.store.get_device(device.device_id)
    if row is None:  # revoked between the credential check and now
        raise NotFoundError(f"no device {device.device_id!r}")
    return {"device_id": row.device_id, "labels": dict(row.labels)}
