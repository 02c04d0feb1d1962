"""The status of a federated job as JSON: the job, its rounds and each device's part."""

from __future__ import annotations

from typing import Any

from edgefleet.server.context import ServerContext
from edgefleet.server.services.fl import device_parts, get_job
from edgefleet.server.store import FLRoundRow, FLUpdateRow

__all__ = ["status"]


def status(ctx: ServerContext, job_id: str, now: float) -> dict[str, Any]:
    """A job, its rounds and the devices' parts in the current round, as JSON."""
    job = get_job(ctx, job_id)
    rounds = ctx.store.list_fl_rounds(job_id)
    parts = ctx.store.list_fl_updates(job_id)
    by_round: dict[int, list[FLUpdateRow]] = {}
    for part in parts:
        by_round.setdefault(part.round, []).append(part)
    return {
        "job_id": job.job_id,
        "model": job.model,
        "base_version": job.base_version,
        "task": job.task,
        "selector": job.selector,
        "config": {k: v for k, v in job.config.items() if k != "initial_metrics"},
        "initial_metrics": job.config.get("initial_metrics", {}),
        "state": job.state,
        "round": job.round,
        "result_version": job.result_version,
        "reason": job.reason,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "rounds": [_round_json(r, by_round.get(r.round, []), now) for r in rounds],
    }


def _round_json(row: FLRoundRow, parts: list[FLUpdateRow], now: float) -> dict[str, Any]:
    selected = device_parts(parts)
    out: dict[str, Any] = {
        "round": row.round,
        "state": row.state,
        "opened_at": row.opened_at,
        "deadline": row.deadline,
        "closed_at": row.closed_at,
        "model_hash": row.model_hash,
        **row.result,
        "devices": [
            {
                "device_id": p.device_id,
                "state": p.state,
                "reason": p.reason,
                "num_examples": p.num_examples,
                "bytes_up": p.bytes_up,
                "bytes_down": p.bytes_down,
                "metrics": p.metrics,
            }
            for p in parts
        ],
    }
    if row.state == "open":
        out["selected"] = len(selected)
        out["participants"] = sum(1 for p in selected if p.state in ("accepted", "in_region"))
        out["bytes_up"] = sum(p.bytes_up for p in parts)
        out["bytes_down"] = sum(p.bytes_down for p in parts)
        out["closes_in_s"] = max(0.0, row.deadline - now)
    return out
