"""Federated jobs through the fleet: start, step rounds, take updates, report status.

A job moves by :func:`step_all`, which the server's federated loop calls every
``fl_eval_s`` under a lease (one server process at a time). Each step of a running job does
at most one thing, persisted before anyone hears of it:

- **open** a round: select devices (online, matching the selector, training the job's task),
  store the round with its participants, then give each selected device an
  :class:`~edgefleet.protocol.v1.FLAssignment` in its desired state;
- **close** a round that is due (every selected device answered, enough updates, or the
  deadline): decode the accepted updates, aggregate them with the job's strategy, evaluate the
  new global model on the task's held-out data, store it and the strategy's state with the
  round's result in one transaction, then clear the devices' assignments;
- **finish** after the last round: export the global model to ONNX, calibrate it, register it
  as a new version of the job's model (ready for ``edgefleet rollout``).

A restart between "stored" and "told the devices" is repaired by the next step, which
re-issues the assignments of the open round. Devices upload through :func:`receive_update`.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
from collections.abc import Iterator
from typing import Any

import numpy as np

from edgefleet.errors import (
    ConflictError,
    EdgefleetError,
    ForbiddenError,
    NotFoundError,
    PayloadTooLargeError,
    ProtocolError,
)
from edgefleet.federated import (
    ClientUpdate,
    DenseCodec,
    Median,
    PrivacyAccountant,
    Strategy,
    TrimmedMean,
    codec_from_spec,
    model_hash,
    privacy_from_spec,
    private_mean,
    strategy_from_spec,
)
from edgefleet.federated.streaming import streaming_mean
from edgefleet.protocol.v1 import FLAssignment, FLUpdateAck
from edgefleet.server.context import ServerContext
from edgefleet.server.fl import JobConfig, close_reason, select_devices
from edgefleet.server.fl.checks import check_examples, check_metrics, decode_update
from edgefleet.server.services import audit, fl_model
from edgefleet.server.store import FLJobRow, FLRoundRow, FLUpdateRow

__all__ = [
    "REGION_PREFIX",
    "cancel",
    "decline",
    "device_parts",
    "get_job",
    "model_payload",
    "receive_update",
    "start",
    "step_all",
]

log = logging.getLogger(__name__)

REGION_PREFIX = "region:"
"""Parts named ``region:<name>`` hold a regional relay's aggregate (dense float32 payload); the
devices it covers are settled as ``in_region``: they took part, their updates never left."""


def _is_region(part: FLUpdateRow) -> bool:
    return part.device_id.startswith(REGION_PREFIX)


def device_parts(parts: list[FLUpdateRow]) -> list[FLUpdateRow]:
    """The selected devices' parts (not refused ones, not regional aggregates)."""
    return [p for p in parts if p.state != "refused" and not _is_region(p)]


# -- starting and stopping ------------------------------------------------------------------


def start(
    ctx: ServerContext,
    *,
    task: str,
    model: str,
    version: str,
    selector: dict[str, str],
    config: JobConfig,
    now: float,
) -> FLJobRow:
    """Check and store a new job, starting from registered model ``model@version``.

    The first round opens at the federated loop's next step. The job is stored under the
    registry lock, under which a deployment checks for active jobs and then writes: a
    deployment is either refused because of the job or finished before the job exists.

    Raises
    ------
    ConfigurationError
        The task cannot be loaded or the model does not fit it.
    NotFoundError
        No such model version.
    """
    loaded = fl_model.job_task(task)
    params = fl_model.params_of_version(ctx, loaded, model, version)
    initial = fl_model.evaluate(loaded, params)
    strategy = strategy_from_spec(config.strategy)
    row = FLJobRow(
        job_id="fl-" + secrets.token_hex(6),
        model=model,
        base_version=version,
        task=task,
        selector=dict(selector),
        config={**config.to_json(), "initial_metrics": initial, "num_params": int(params.size)},
        state="running",
        round=0,
        model_sha256=fl_model.store_params(ctx, params),
        strategy_state=strategy.state_dict(),
        privacy_state={},
        result_version=None,
        reason="",
        revision=1,
        created_at=now,
        updated_at=now,
    )
    with ctx.registry_lock:
        return ctx.store.create_fl_job(row)


def cancel(ctx: ServerContext, job_id: str, now: float) -> FLJobRow:
    """Stop a running job; its devices' assignments are cleared.

    Raises
    ------
    NotFoundError
        No such job.
    ConflictError
        The job is not running.
    """
    job = get_job(ctx, job_id)
    if job.state != "running":
        raise ConflictError(f"federated job {job_id} is {job.state}, not running")
    job = ctx.store.update_fl_job(
        job_id, job.revision, now, {"state": "cancelled", "reason": "cancelled by an operator"}
    )
    if job.round:
        _clear_assignments(ctx, job, job.round, now)
    return job


# -- the loop ---------------------------------------------------------------------------------


def step_all(ctx: ServerContext, now: float) -> None:
    """Step every running job once (the federated loop's body)."""
    for job in ctx.store.list_fl_jobs(states=("running",)):
        try:
            step(ctx, job, now)
        except ConflictError as exc:  # another process or an operator moved it: next time
            log.debug("federated job %s: %s", job.job_id, exc)
        except Exception:
            log.exception("stepping federated job %s failed; retrying", job.job_id)


def step(ctx: ServerContext, job: FLJobRow, now: float) -> FLJobRow:
    """Do the next thing a running job needs: open, close or finish a round (or nothing)."""
    config = JobConfig.from_json(job.config)
    if job.round == 0:
        return _open_round(ctx, job, config, 1, now)
    current = ctx.store.get_fl_round(job.job_id, job.round)
    if current is None:  # cannot happen: a round is stored with the job's move to it
        raise NotFoundError(f"job {job.job_id} has no round {job.round}")
    if current.state == "open":
        parts = ctx.store.list_fl_updates(job.job_id, current.round)
        reason = close_reason(
            states=["accepted" if p.state == "in_region" else p.state for p in device_parts(parts)],
            min_results=config.min_results,
            deadline=current.deadline,
            now=now,
        )
        if reason is None:
            _ensure_assignments(ctx, job, config, current, parts, now)
            return job
        return _close_round(ctx, job, config, current, parts, reason, now)
    if job.round >= config.rounds:
        return _finish(ctx, job, now)
    return _open_round(ctx, job, config, job.round + 1, now)


def _candidates(ctx: ServerContext, job: FLJobRow, now: float) -> list[str]:
    """Devices that match the job's selector, are online, train its task, and are not busy.

    A device holds one federated assignment at a time: one that is in another job's round
    is left to that job until the round closes.
    """
    online_after = now - ctx.settings.device_offline_after_s
    ids = [
        device.device_id
        for device in ctx.store.list_devices(job.selector or None)
        if device.last_seen_at >= online_after
        and job.task in (device.inventory.get("fl_tasks") or [])
    ]
    states = ctx.store.list_desired_states(ids)
    return [
        device_id
        for device_id in ids
        if device_id not in states
        or (states[device_id].fl or {}).get("job_id", job.job_id) == job.job_id
    ]


def _open_round(
    ctx: ServerContext, job: FLJobRow, config: JobConfig, round_: int, now: float
) -> FLJobRow:
    candidates = _candidates(ctx, job, now)
    if not candidates:
        reason = (
            f"waiting for devices: none online matches the selector, trains {job.task} "
            "and is free of other jobs' rounds"
        )
        if job.reason != reason:
            return ctx.store.update_fl_job(job.job_id, job.revision, now, {"reason": reason})
        return job
    selected = select_devices(candidates, config.per_round, seed=config.seed, round_=round_)
    params = fl_model.load_params(ctx, job.model_sha256)
    row = FLRoundRow(
        job_id=job.job_id,
        round=round_,
        state="open",
        opened_at=now,
        deadline=now + config.deadline_s,
        closed_at=None,
        model_hash=model_hash(params),
        model_sha256=job.model_sha256,
        result={"candidates": len(candidates)},
    )
    job = ctx.store.open_fl_round(job, now, row, selected)
    assignment = _assignment(job, config, row)
    _write_assignments(ctx, dict.fromkeys(selected, assignment), now)
    log.info(
        "federated job %s: round %d opened with %d of %d devices",
        job.job_id,
        round_,
        len(selected),
        len(candidates),
    )
    return job


def _assignment(job: FLJobRow, config: JobConfig, round_row: FLRoundRow) -> dict[str, Any]:
    strategy = strategy_from_spec(config.strategy)
    mu = strategy.config_for_client().get("mu", 0.0)
    return FLAssignment(
        job_id=job.job_id,
        round=round_row.round,
        task=job.task,
        model_hash=round_row.model_hash,
        num_params=int(job.config["num_params"]),
        compression=config.compression,
        local_epochs=config.local_epochs,
        learning_rate=config.learning_rate,
        batch_size=config.batch_size,
        mu=float(mu) if isinstance(mu, int | float) else 0.0,
        privacy=config.privacy,
        seed=config.seed,
        deadline=round_row.deadline,
    ).model_dump(mode="json")


def _write_assignments(
    ctx: ServerContext, assignments: dict[str, dict[str, Any] | None], now: float
) -> None:
    """Set (or clear, with None) devices' assignments and wake their long polls."""
    if not assignments:
        return
    expires_at = now + ctx.settings.desired_state_expiry_s
    versions = ctx.store.set_fl_assignments(assignments, now, expires_at)
    for device_id, version in versions.items():
        ctx.versions.record(device_id, version, expires_at)
    ctx.changes.changed()


def _ensure_assignments(
    ctx: ServerContext,
    job: FLJobRow,
    config: JobConfig,
    round_row: FLRoundRow,
    parts: list[FLUpdateRow],
    now: float,
) -> None:
    """Re-issue assignments a restart may have kept from the selected devices."""
    waiting = [p.device_id for p in parts if p.state == "assigned"]
    if not waiting:
        return
    states = ctx.store.list_desired_states(waiting)
    missing = [
        device_id
        for device_id in waiting
        if not _holds(states[device_id].fl if device_id in states else None, job, round_row)
    ]
    if missing:
        log.info("federated job %s: re-issuing %d assignments", job.job_id, len(missing))
        _write_assignments(ctx, dict.fromkeys(missing, _assignment(job, config, round_row)), now)


def _holds(fl: dict[str, Any] | None, job: FLJobRow, round_row: FLRoundRow) -> bool:
    return fl is not None and fl.get("job_id") == job.job_id and fl.get("round") == round_row.round


def _clear_assignments(ctx: ServerContext, job: FLJobRow, round_: int, now: float) -> None:
    parts = ctx.store.list_fl_updates(job.job_id, round_)
    ids = [p.device_id for p in device_parts(parts)]
    states = ctx.store.list_desired_states(ids)
    holding = [d for d in ids if d in states and (states[d].fl or {}).get("job_id") == job.job_id]
    _write_assignments(ctx, dict.fromkeys(holding), now)


def _close_round(
    ctx: ServerContext,
    job: FLJobRow,
    config: JobConfig,
    round_row: FLRoundRow,
    parts: list[FLUpdateRow],
    why: str,
    now: float,
) -> FLJobRow:
    task = fl_model.job_task(job.task)
    global_model = fl_model.load_params(ctx, round_row.model_sha256)
    accepted = [p for p in parts if p.state == "accepted"]
    strategy = strategy_from_spec(config.strategy)
    strategy.load_state_dict(job.strategy_state)
    updates, regional = _updates(ctx, config, strategy, accepted, global_model.size)
    selected = device_parts(parts)
    sampling = min(1.0, len(selected) / max(1, int(round_row.result.get("candidates", 1))))
    updates, privacy = _private(config, sampling, updates, regional, job.privacy_state)
    changes: dict[str, Any] = {}
    if privacy is not None:
        changes["privacy_state"] = privacy["state"]
    if updates:
        new_model = strategy.aggregate(global_model, updates)
        changes["model_sha256"] = fl_model.store_params(ctx, new_model)
        changes["strategy_state"] = strategy.state_dict()
        state = "closed"
    else:
        new_model = global_model
        state = "failed"
        why = f"{why}; no update: the global model stays"
    metrics = fl_model.evaluate(task, new_model)
    train_losses = [
        float(p.metrics["loss"])
        for p in accepted
        if isinstance(p.metrics.get("loss"), int | float) and math.isfinite(p.metrics["loss"])
    ]
    result = {
        **round_row.result,
        "closed_by": why,
        "selected": len(selected),
        "participants": sum(1 for p in selected if p.state in ("accepted", "in_region")),
        "regions": sorted(p.device_id[len(REGION_PREFIX) :] for p in accepted if _is_region(p)),
        "dropouts": sum(1 for p in selected if p.state == "assigned"),
        "rejected": sum(1 for p in selected if p.state == "rejected"),
        "refused": sum(1 for p in parts if p.state == "refused"),
        "examples": sum(p.num_examples for p in accepted),
        "bytes_up": sum(p.bytes_up for p in parts),
        "bytes_down": sum(p.bytes_down for p in parts),
        "metrics": metrics,
        "train_loss": float(np.mean(train_losses)) if train_losses else None,
    }
    if privacy is not None:
        result["privacy"] = {k: v for k, v in privacy.items() if k != "state"}
    job = ctx.store.close_fl_round(job, now, round_row.round, state, result, changes)
    audit.record_decision(
        ctx, "fl.round_close", f"{job.job_id}/{round_row.round}", f"{state}: {why}", {}, now
    )
    _clear_assignments(ctx, job, round_row.round, now)
    log.info(
        "federated job %s: round %d %s (%s) accuracy %s",
        job.job_id,
        round_row.round,
        state,
        why,
        metrics.get("accuracy"),
    )
    return job


def _updates(
    ctx: ServerContext,
    config: JobConfig,
    strategy: Strategy,
    accepted: list[FLUpdateRow],
    size: int,
) -> tuple[list[ClientUpdate], list[bool]]:
    """The round's updates for the strategy (from their stored payloads), regional or not.

    A mean-based strategy gets the example-weighted mean of the devices' updates (and of the
    regional aggregates) as one update each, computed one payload at a time
    (:func:`~edgefleet.federated.streaming.streaming_mean`): the same result, without holding
    every decoded update. Robust strategies, and privacy applied here, need every update.
    """

    def payloads(parts: list[FLUpdateRow]) -> Iterator[tuple[bytes, int]]:
        for p in parts:
            yield ctx.artifacts.path(str(p.payload_sha256)).read_bytes(), p.num_examples

    codec = codec_from_spec(config.compression)
    groups = [
        ([p for p in accepted if not _is_region(p)], codec),
        ([p for p in accepted if _is_region(p)], DenseCodec()),
    ]
    central = config.privacy is not None and privacy_from_spec(config.privacy).at == "relay"
    updates: list[ClientUpdate] = []
    regional: list[bool] = []
    for region, (parts, coder) in enumerate(groups):
        if not parts:
            continue
        if not isinstance(strategy, TrimmedMean | Median) and not central:
            updates.append(ClientUpdate(*streaming_mean(payloads(parts), size, coder)))
            regional.append(bool(region))
            continue
        for payload, examples in payloads(parts):
            updates.append(ClientUpdate(coder.decode(payload, size), examples))
            regional.append(bool(region))
    return updates, regional


def _private(
    config: JobConfig,
    sampling: float,
    updates: list[ClientUpdate],
    regional: list[bool],
    state: dict[str, Any],
) -> tuple[list[ClientUpdate], dict[str, Any] | None]:
    """Apply the job's differential privacy at aggregation; account for the round.

    With ``at=relay`` and no relay in front of a device, the server is where its update is
    aggregated: the devices' updates are clipped and averaged with Gaussian noise
    (``private_mean``) before the strategy sees them; regional aggregates arrive noised.
    With ``at=device`` every update arrived noised. The accountant records one round per
    closed round: at ``sampling`` (selected / candidates) for the central placement; for the
    device placement at rate 1 (the server sees each update, so no amplification: an upper
    bound for a device that took part in every round).
    """
    if config.privacy is None:
        return updates, None
    spec = privacy_from_spec(config.privacy)
    accountant = PrivacyAccountant.from_state_dict(state) if state else PrivacyAccountant()
    devices = [u for u, region in zip(updates, regional, strict=True) if not region]
    regions = [u for u, region in zip(updates, regional, strict=True) if region]
    clipped = 0
    if spec.at == "relay" and devices:
        mean, clipped = private_mean(
            [u.delta for u in devices], spec.mechanism(), np.random.default_rng()
        )
        devices = [ClientUpdate(mean, sum(u.num_examples for u in devices))]
    rate = 1.0 if spec.at == "device" else sampling
    if updates:
        accountant.record(rate, spec.noise)
    try:
        epsilon: float | None = accountant.epsilon(spec.delta)
    except ImportError as exc:  # the accountant is the `privacy` extra
        log.warning("cannot report the spent epsilon: %s", exc)
        epsilon = None
    info = {
        "spec": spec.spec(),
        "epsilon": epsilon,
        "delta": spec.delta,
        "rounds": accountant.rounds,
        "clipped": clipped,
        "state": accountant.state_dict(),
    }
    return devices + regions, info


def _finish(ctx: ServerContext, job: FLJobRow, now: float) -> FLJobRow:
    task = fl_model.job_task(job.task)
    params = fl_model.load_params(ctx, job.model_sha256)
    try:
        with ctx.registry_lock:
            version = fl_model.register_result(ctx, task, job.model, params, now, job.job_id)
    except NotImplementedError as exc:
        return ctx.store.update_fl_job(
            job.job_id,
            job.revision,
            now,
            {"state": "completed", "reason": f"not registered: {exc}"},
        )
    except EdgefleetError as exc:
        return ctx.store.update_fl_job(
            job.job_id,
            job.revision,
            now,
            {"state": "failed", "reason": f"registering the result failed: {exc}"},
        )
    return ctx.store.update_fl_job(
        job.job_id,
        job.revision,
        now,
        {
            "state": "completed",
            "result_version": version,
            "reason": f"registered {job.model}@{version}; roll it out with "
            f"`edgefleet rollout start {job.model}@{version}`",
        },
    )


# -- devices ----------------------------------------------------------------------------------


def model_payload(
    ctx: ServerContext, device_id: str, job_id: str, round_: int
) -> tuple[bytes, str]:
    """The round's global model for a selected device (float32 little-endian) and its hash.

    Raises
    ------
    NotFoundError
        No such job or round.
    ForbiddenError
        The device was not selected for the round.
    """
    job = get_job(ctx, job_id)
    if job.state != "running":
        raise ConflictError(f"federated job {job_id} is {job.state}; its rounds are over")
    round_row = ctx.store.get_fl_round(job_id, round_)
    if round_row is None:
        raise NotFoundError(f"federated job {job_id} has no round {round_}")
    part = ctx.store.get_fl_update(job_id, round_, device_id)
    if part is None or part.state == "refused":
        raise ForbiddenError(f"device {device_id} was not selected for round {round_}")
    data = ctx.artifacts.path(round_row.model_sha256).read_bytes()
    ctx.store.add_fl_bytes_down(job_id, round_, device_id, len(data))
    return data, round_row.model_hash


def receive_update(
    ctx: ServerContext,
    device_id: str,
    job_id: str,
    round_: int,
    payload: bytes,
    *,
    examples: str | None,
    metrics: str | None,
    now: float,
) -> FLUpdateAck:
    """Check an uploaded update and take it into its round, or refuse it with the reason stored.

    A payload that fails a check (size, example count, codec, shape, NaN or Inf) settles the
    device's part as ``rejected`` with the reason; the round goes on without it. An update for
    a closed round, or from a device that was not selected, is refused and noted on the round.
    Sending the same accepted update again is acknowledged again (an upload retried after a
    lost answer).

    Raises
    ------
    NotFoundError
        No such job or round.
    ForbiddenError
        The device was not selected for the round.
    ConflictError
        The round is closed, or the device already sent another update.
    PayloadTooLargeError, ProtocolError
        The update is malformed (after its rejection is stored).
    """
    job = get_job(ctx, job_id)
    round_row = ctx.store.get_fl_round(job_id, round_)
    if round_row is None:
        raise NotFoundError(f"federated job {job_id} has no round {round_}")
    if job.state != "running":
        raise ConflictError(f"federated job {job_id} is {job.state}; it takes no updates")
    part = ctx.store.get_fl_update(job_id, round_, device_id)
    if part is None or part.state == "refused":
        reason = f"device {device_id} was not selected for round {round_}"
        ctx.store.note_refused_fl_update(job_id, round_, device_id, reason, len(payload), now)
        raise ForbiddenError(reason)
    if part.state == "accepted" and hashlib.sha256(payload).hexdigest() == part.payload_sha256:
        return FLUpdateAck(job_id=job_id, round=round_, accepted=True, detail="already taken")
    if round_row.state != "open" or part.state != "assigned":
        reason = (
            f"round {round_} of job {job_id} is closed"
            if round_row.state != "open"
            else f"device {device_id} already sent round {round_} ({part.state})"
        )
        ctx.store.note_refused_fl_update(job_id, round_, device_id, reason, len(payload), now)
        raise ConflictError(reason)
    config = JobConfig.from_json(job.config)
    num_params = int(job.config["num_params"])
    try:
        count = check_examples(examples)
        reported = check_metrics(metrics)
        delta = decode_update(config.compression, payload, num_params)
    except (ProtocolError, PayloadTooLargeError) as exc:
        ctx.store.settle_fl_update(
            job_id, round_, device_id, now, state="rejected", reason=str(exc), bytes_up=len(payload)
        )
        raise
    del delta  # decoded only to check it; aggregation decodes again from the stored payload
    sha256, _ = ctx.artifacts.put_bytes(payload)
    ctx.store.settle_fl_update(
        job_id,
        round_,
        device_id,
        now,
        state="accepted",
        num_examples=count,
        bytes_up=len(payload),
        payload_sha256=sha256,
        metrics=reported,
    )
    return FLUpdateAck(job_id=job_id, round=round_, accepted=True)


def decline(
    ctx: ServerContext, device_id: str, job_id: str, round_: int, reason: str, now: float
) -> FLUpdateAck:
    """A selected device will not train the round (its reason is stored; the round goes on)."""
    ctx.store.settle_fl_update(
        job_id, round_, device_id, now, state="rejected", reason=f"declined: {reason}"
    )
    return FLUpdateAck(job_id=job_id, round=round_, accepted=False, detail="declined")


def get_job(ctx: ServerContext, job_id: str) -> FLJobRow:
    """The job ``job_id``; :class:`NotFoundError` when there is none."""
    job = ctx.store.get_fl_job(job_id)
    if job is None:
        raise NotFoundError(f"no federated job {job_id!r}")
    return job
