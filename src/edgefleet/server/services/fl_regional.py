"""A regional relay's aggregate for a federated round: checked, stored, standing for its devices.

With a residency policy, a relay (``edgefleet server --relay``) takes the updates of its
region's devices, averages them and uploads only the aggregate with the example count and
the ids of the devices it covers. :func:`receive_regional` checks that upload and stores it as
the round's part ``region:<name>`` (dense float32, aggregated like any accepted update), with
the covered devices settled as ``in_region``: they took part, their own updates never left the
region.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from edgefleet.errors import ConflictError, ForbiddenError, NotFoundError, ProtocolError
from edgefleet.server.context import ServerContext
from edgefleet.server.fl.checks import decode_update
from edgefleet.server.services.fl import REGION_PREFIX, get_job

__all__ = ["REGION_LABEL", "receive_regional"]

REGION_LABEL = "region"
"""The device label naming a device's region."""

_MAX_EXAMPLES = 10**12
_REGION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,56}$")


def receive_regional(
    ctx: ServerContext,
    job_id: str,
    round_: int,
    region: str,
    device_ids: Sequence[str],
    payload: bytes,
    examples: int,
    now: float,
    *,
    privacy: str | None = None,
) -> dict[str, Any]:
    """Check a relay's aggregate for round ``round_`` of ``job_id`` and take it, or refuse it.

    Every listed device must have been selected for the round, still be waiting for its
    update (``assigned``) and carry the label ``region=<region>``. The payload must decode as
    dense float32 to the job's number of parameters, all finite. Nothing is stored when a
    check fails; a second aggregate from the same region for the same round is refused.

    Returns
    -------
    dict
        What was taken: ``part`` (``region:<name>``), ``devices``, ``examples``, ``bytes``.

    Raises
    ------
    NotFoundError
        No such job or round.
    ForbiddenError
        A device was not selected for the round, or does not carry ``region=<region>``.
    ConflictError
        The round is closed, the region already sent it, or a device's part is settled.
    ProtocolError
        The region name, device list, example count or payload is malformed.
    """
    if not _REGION.match(region):
        raise ProtocolError(
            f"region {region[:80]!r} is not a region name (letters, digits, '_.-', at most 57)"
        )
    ids = list(device_ids)
    if not ids:
        raise ProtocolError("a regional aggregate must name the devices it covers")
    if len(set(ids)) != len(ids):
        raise ProtocolError("a regional aggregate names a device twice")
    if not 1 <= examples <= _MAX_EXAMPLES:
        raise ProtocolError(f"example count must be in [1, {_MAX_EXAMPLES}], got {examples}")
    job = get_job(ctx, job_id)
    if job.state != "running":
        raise ConflictError(f"federated job {job_id} is {job.state}; it takes no updates")
    round_row = ctx.store.get_fl_round(job_id, round_)
    if round_row is None:
        raise NotFoundError(f"federated job {job_id} has no round {round_}")
    if round_row.state != "open":
        raise ConflictError(f"round {round_} of job {job_id} is closed")
    part_id = REGION_PREFIX + region
    if ctx.store.get_fl_update(job_id, round_, part_id) is not None:
        raise ConflictError(f"region {region} already sent round {round_} of job {job_id}")
    for device_id in ids:
        part = ctx.store.get_fl_update(job_id, round_, device_id)
        if part is None or part.state == "refused":
            raise ForbiddenError(f"device {device_id} was not selected for round {round_}")
        if part.state != "assigned":
            raise ConflictError(f"device {device_id} already sent round {round_} ({part.state})")
        device = ctx.store.get_device(device_id)
        label = None if device is None else device.labels.get(REGION_LABEL)
        if label != region:
            raise ForbiddenError(
                f"device {device_id} is not in region {region} "
                f"(its label {REGION_LABEL}={label or '(none)'})"
            )
    decode_update("dense", payload, int(job.config["num_params"]))
    sha256, _ = ctx.artifacts.put_bytes(payload)
    reason = f"aggregated in region {region}"
    ctx.store.settle_regional_fl_update(
        job_id,
        round_,
        part_id,
        ids,
        now,
        reason=reason + (f" (privacy {privacy})" if privacy else ""),
        num_examples=examples,
        bytes_up=len(payload),
        payload_sha256=sha256,
        metrics={"devices": float(len(ids))},
    )
    return {"part": part_id, "devices": len(ids), "examples": examples, "bytes": len(payload)}
