"""Federated learning over HTTP: the operator's jobs and the devices' rounds.

Operators: ``POST /api/operator/v1/fl/jobs`` starts a job, ``GET .../fl/jobs`` lists them,
``GET .../fl/jobs/{id}`` shows one round by round, ``POST .../fl/jobs/{id}/cancel`` stops it.

Devices (with their own credential, under ``/api/device/v1``): ``GET /fl/{job}/{round}/model``
fetches the round's global model (float32 little-endian; its hash in ``X-Edgefleet-Model-Hash``),
``POST /fl/{job}/{round}/update`` uploads the encoded update, ``POST .../decline`` declines.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from edgefleet.protocol.bounds import Count32, Count64, Finite, Name, Positive32, Text
from edgefleet.protocol.labels import parse_selector
from edgefleet.protocol.v1 import (
    API_PREFIX,
    FL_EXAMPLES_HEADER,
    FL_METRICS_HEADER,
    FLDecline,
    FLUpdateAck,
)
from edgefleet.server.api.audit import set_target
from edgefleet.server.api.auth import CurrentDevice, CurrentOperator, context
from edgefleet.server.api.params import RoundPath, TextPath
from edgefleet.server.context import ServerContext
from edgefleet.server.fl import JobConfig
from edgefleet.server.rollout.plan import parse_duration
from edgefleet.server.services import fl, fl_status

__all__ = ["MODEL_HASH_HEADER", "device_router", "operator_router"]

MODEL_HASH_HEADER = "X-Edgefleet-Model-Hash"

operator_router = APIRouter(prefix="/api/operator/v1/fl", tags=["federated"])
device_router = APIRouter(prefix=API_PREFIX + "/fl", tags=["device v1"])
Ctx = Annotated[ServerContext, Depends(context)]


class JobRequest(BaseModel):
    """Start a federated job from registered model ``model@version``."""

    model_config = ConfigDict(extra="forbid")
    task: Name = Field(min_length=1, description="Task spec, e.g. digits.")
    model: Name
    version: Name
    selector: Text = Field(default="", description="Label selector, e.g. site=plant-3.")
    rounds: int = Field(ge=1, le=10_000)
    per_round: int = Field(ge=1, le=100_000)
    min_results: Count32 = Field(default=0, description="0: every selected device.")
    strategy: Text = Field(default="fedavg", max_length=200)
    compression: Text = Field(default="dense", max_length=200)
    deadline: Text = Field(default="5m", max_length=64, description="Round deadline, e.g. 5m.")
    local_epochs: int = Field(default=1, ge=1, le=1000)
    learning_rate: Finite | None = Field(default=None, gt=0)
    batch_size: Positive32 | None = None
    seed: Count64 = 0
    privacy: Text | None = Field(default=None, max_length=200)


@operator_router.post("/jobs", status_code=201)
def start_job(ctx: Ctx, _: CurrentOperator, body: JobRequest, request: Request) -> dict[str, Any]:
    """Start a job; its first round opens within the server's ``fl_eval_s`` (its id is audited)."""
    set_target(request, f"{body.model}@{body.version} to {body.selector or '(all)'}")
    now = time.time()
    config = JobConfig(
        rounds=body.rounds,
        per_round=body.per_round,
        min_results=body.min_results,
        strategy=body.strategy,
        compression=body.compression,
        deadline_s=parse_duration(body.deadline),
        local_epochs=body.local_epochs,
        learning_rate=body.learning_rate,
        batch_size=body.batch_size,
        seed=body.seed,
        privacy=body.privacy,
    )
    row = fl.start(
        ctx,
        task=body.task,
        model=body.model,
        version=body.version,
        selector=parse_selector(body.selector),
        config=config,
        now=now,
    )
    set_target(request, row.job_id)
    return fl_status.status(ctx, row.job_id, now)


@operator_router.get("/jobs")
def list_jobs(ctx: Ctx, _: CurrentOperator) -> list[dict[str, Any]]:
    """Every job, newest first (summary)."""
    return [
        {
            "job_id": j.job_id,
            "model": j.model,
            "base_version": j.base_version,
            "task": j.task,
            "state": j.state,
            "round": j.round,
            "rounds": j.config.get("rounds"),
            "result_version": j.result_version,
            "reason": j.reason,
            "created_at": j.created_at,
        }
        for j in ctx.store.list_fl_jobs()
    ]


@operator_router.get("/jobs/{job_id}")
def job_status(ctx: Ctx, _: CurrentOperator, job_id: TextPath) -> dict[str, Any]:
    """The job round by round: participants, dropouts, bytes up and down, metrics."""
    return fl_status.status(ctx, job_id, time.time())


@operator_router.post("/jobs/{job_id}/cancel")
def cancel_job(ctx: Ctx, _: CurrentOperator, job_id: TextPath) -> dict[str, Any]:
    """Stop a running job (the global model so far is kept, nothing is registered)."""
    now = time.time()
    fl.cancel(ctx, job_id, now)
    return fl_status.status(ctx, job_id, now)


@device_router.get("/{job_id}/{round_}/model")
def round_model(job_id: TextPath, round_: RoundPath, device: CurrentDevice, ctx: Ctx) -> Response:
    """The round's global model, for a device selected for it."""
    data, digest = fl.model_payload(ctx, device.device_id, job_id, round_)
    return Response(
        content=data,
        media_type="application/octet-stream",
        headers={MODEL_HASH_HEADER: digest},
    )


@device_router.post("/{job_id}/{round_}/update", response_model=FLUpdateAck)
async def upload_update(
    job_id: TextPath, round_: RoundPath, request: Request, device: CurrentDevice, ctx: Ctx
) -> FLUpdateAck:
    """Take an encoded update into the round, or refuse it with the reason (stored)."""
    payload = await request.body()
    return await run_in_threadpool(
        lambda: fl.receive_update(
            ctx,
            device.device_id,
            job_id,
            round_,
            payload,
            examples=request.headers.get(FL_EXAMPLES_HEADER),
            metrics=request.headers.get(FL_METRICS_HEADER),
            now=time.time(),
        )
    )


@device_router.post("/{job_id}/{round_}/decline", response_model=FLUpdateAck)
def decline_round(
    job_id: TextPath, round_: RoundPath, body: FLDecline, device: CurrentDevice, ctx: Ctx
) -> FLUpdateAck:
    """The device will not train this round; the round goes on without it."""
    return fl.decline(ctx, device.device_id, job_id, round_, body.reason, time.time())
