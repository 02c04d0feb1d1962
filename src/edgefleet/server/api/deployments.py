"""Operator API: the deployment history and each deployment's progress on its devices.

Deploying is ``POST /deployments`` in :mod:`edgefleet.server.api.operator`.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel

from edgefleet.errors import NotFoundError
from edgefleet.protocol.bounds import INT64_MAX
from edgefleet.server.api.auth import CurrentOperator, context
from edgefleet.server.api.params import DEFAULT_LIMIT, Limit, TextQuery
from edgefleet.server.context import ServerContext
from edgefleet.server.store.rows import DeploymentRow

__all__ = ["Deployment", "DeploymentProgress", "DeviceProgress", "router"]

router = APIRouter(prefix="/api/operator/v1", tags=["operator"])
Ctx = Annotated[ServerContext, Depends(context)]
DeploymentId = Annotated[int, Path(ge=1, le=INT64_MAX, description="The deployment's id.")]
Before = Annotated[
    int | None, Query(ge=1, le=INT64_MAX, description="Page on: only ids below this one.")
]


class Deployment(BaseModel):
    """A deployment as recorded: what, where, by whom, which devices it reached then."""

    id: int
    model: str
    version: str
    release: int
    selector: dict[str, str]
    devices: list[str]
    actor: str
    created_at: float

    @classmethod
    def of(cls, row: DeploymentRow) -> Deployment:
        """From a stored row."""
        return cls(
            id=row.id,
            model=row.model,
            version=row.version,
            release=row.release,
            selector=row.selector,
            devices=row.devices,
            actor=row.actor,
            created_at=row.created_at,
        )


class DeploymentPage(BaseModel):
    """One page of the history, newest first; ``next_before`` fetches the next (None: last)."""

    deployments: list[Deployment]
    next_before: int | None


class DeviceProgress(BaseModel):
    """What one targeted device reports it serves."""

    device_id: str
    online: bool
    serving: str | None
    done: bool
    decommissioned: bool


class DeploymentProgress(BaseModel):
    """How far a deployment got: ``done`` of ``total`` devices report its version."""

    deployment: Deployment
    devices: list[DeviceProgress]
    done: int
    total: int


@router.get("/deployments")
def list_deployments(
    ctx: Ctx,
    _: CurrentOperator,
    model: TextQuery = None,
    limit: Limit = DEFAULT_LIMIT,
    before: Before = None,
) -> DeploymentPage:
    """Deployments, newest first, ``limit`` per page."""
    rows = ctx.store.list_deployments(limit=limit, before_id=before, model=model)
    return DeploymentPage(
        deployments=[Deployment.of(r) for r in rows],
        next_before=rows[-1].id if len(rows) == limit else None,
    )


@router.get("/deployments/{deployment_id}")
def deployment_progress(
    ctx: Ctx, _: CurrentOperator, deployment_id: DeploymentId
) -> DeploymentProgress:
    """Which of the deployment's devices report serving its model version (from heartbeats).

    Decommissioned devices are shown but not counted.
    """
    row = ctx.store.get_deployment(deployment_id)
    if row is None:
        raise NotFoundError(f"no deployment {deployment_id}")
    ctx.heartbeats.flush()
    now = time.time()
    progress: list[DeviceProgress] = []
    for device_id in row.devices:
        device = ctx.store.get_device(device_id)
        active = (device.inventory.get("active_model") or {}) if device else {}
        serving = f"{active['name']}@{active['version']}" if active.get("name") else None
        retired = device is None or device.decommissioned_at is not None
        progress.append(
            DeviceProgress(
                device_id=device_id,
                online=device is not None
                and now - device.last_seen_at < ctx.settings.device_offline_after_s,
                serving=serving,
                done=serving == f"{row.model}@{row.version}",
                decommissioned=retired,
            )
        )
    counted = [p for p in progress if not p.decommissioned]
    return DeploymentProgress(
        deployment=Deployment.of(row),
        devices=progress,
        done=sum(p.done for p in counted),
        total=len(counted),
    )
