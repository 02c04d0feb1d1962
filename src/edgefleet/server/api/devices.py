"""Operator API for a device's lifecycle: decommission it, change its labels.

Listing and showing devices live in :mod:`edgefleet.server.api.operator`.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from edgefleet.errors import ConfigurationError
from edgefleet.protocol.labels import check_labels
from edgefleet.server.api.auth import CurrentOperator, context
from edgefleet.server.api.params import TextPath
from edgefleet.server.context import ServerContext
from edgefleet.server.services import devices
from edgefleet.server.store.rows import DeviceRow

__all__ = ["DeviceSummary", "LabelsRequest", "router"]

router = APIRouter(prefix="/api/operator/v1", tags=["operator"])
Ctx = Annotated[ServerContext, Depends(context)]


def _labels(value: dict[str, str]) -> dict[str, str]:
    try:
        return check_labels(value)
    except ConfigurationError as exc:  # a 422 naming the label, like other fields
        raise ValueError(str(exc)) from exc


def _keys(value: list[str]) -> list[str]:
    for key in value:
        _labels({key: ""})
    return value


class LabelsRequest(BaseModel):
    """Labels to set (added or replaced) and label keys to remove."""

    model_config = ConfigDict(extra="forbid")
    set: Annotated[dict[str, str], AfterValidator(_labels)] = Field(
        default_factory=dict, max_length=64, description="key -> value to add or replace."
    )
    remove: Annotated[list[str], AfterValidator(_keys)] = Field(
        default_factory=list, max_length=64, description="Keys to remove."
    )


class DeviceSummary(BaseModel):
    """A device's identity, labels and lifecycle times."""

    device_id: str
    labels: dict[str, str]
    state: str
    enrolled_at: float
    last_seen_at: float
    decommissioned_at: float | None

    @classmethod
    def of(cls, row: DeviceRow) -> DeviceSummary:
        """The summary of a stored device."""
        return cls(
            device_id=row.device_id,
            labels=row.labels,
            state=row.state,
            enrolled_at=row.enrolled_at,
            last_seen_at=row.last_seen_at,
            decommissioned_at=row.decommissioned_at,
        )


@router.post("/devices/{device_id}/decommission")
def decommission(ctx: Ctx, _: CurrentOperator, device_id: TextPath) -> DeviceSummary:
    """Revoke the device's credential and take it out of every selection; keep its history."""
    return DeviceSummary.of(devices.decommission(ctx, device_id, time.time()))


@router.patch("/devices/{device_id}/labels")
def relabel(
    ctx: Ctx, _: CurrentOperator, device_id: TextPath, body: LabelsRequest
) -> DeviceSummary:
    """Set and remove labels of a device (selectors see the new labels at once)."""
    return DeviceSummary.of(devices.relabel(ctx, device_id, body.set, body.remove))
