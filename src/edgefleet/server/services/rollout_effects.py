"""What a rollout's state means for its devices' desired states, applied idempotently.

Every function here computes the desired state each targeted device should have for the
rollout's current (persisted) state and changes only the devices that differ. Calling them
again, after a restart or from another server process, changes nothing more.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from edgefleet.errors import NotFoundError
from edgefleet.server.context import ServerContext
from edgefleet.server.rollout.cohorts import assign_arms, assign_stages, hardware_class
from edgefleet.server.rollout.spec import Stage
from edgefleet.server.services.registry import desired_model, ensure_release
from edgefleet.server.store.rows import DeviceRow, RolloutRow

__all__ = [
    "Payload",
    "apply_desired",
    "arm_b",
    "back_to_previous",
    "classes_of",
    "current_payloads",
    "everyone_on_candidate",
    "members",
    "rollback_release",
    "stage_payloads",
    "targets",
]

Payload = tuple[dict[str, Any] | None, dict[str, Any] | None]
"""A desired ``(model, shadow)`` pair."""


def targets(ctx: ServerContext, row: RolloutRow) -> dict[str, DeviceRow]:
    """The devices the rollout targets now (its selector; later enrolments included)."""
    return {d.device_id: d for d in ctx.store.list_devices(row.selector)}


def classes_of(devices: dict[str, DeviceRow]) -> dict[str, str]:
    """Device id -> hardware class."""
    return {d: hardware_class(row.labels, row.inventory) for d, row in devices.items()}


def members(row: RolloutRow, classes: dict[str, str], share: float) -> set[str]:
    """The devices within ``share`` of the targets (stratified by hardware class)."""
    stage_of = assign_stages(row.rollout_id, classes, [share])
    return {device for device, index in stage_of.items() if index == 0}


def arm_b(row: RolloutRow, classes: dict[str, str], share_b: float) -> set[str]:
    """An experiment's arm-B devices."""
    return {d for d, arm in assign_arms(row.rollout_id, classes, share_b).items() if arm == "b"}


def _same(current: Payload, wanted: Payload) -> bool:
    return json.dumps(current, sort_keys=True) == json.dumps(wanted, sort_keys=True)


def apply_desired(ctx: ServerContext, wanted: dict[str, Payload], now: float) -> list[str]:
    """Give each device its wanted ``(model, shadow)`` unless it has it; return those changed."""
    if not wanted:
        return []
    current = ctx.store.list_desired_states(list(wanted))
    groups: dict[str, list[str]] = defaultdict(list)
    payloads: dict[str, Payload] = {}
    for device_id, payload in wanted.items():
        row = current.get(device_id)
        have: Payload = (row.model, row.shadow) if row is not None else (None, None)
        if _same(have, payload):
            continue
        key = json.dumps(payload, sort_keys=True)
        payloads[key] = payload
        groups[key].append(device_id)
    expires_at = now + ctx.settings.desired_state_expiry_s
    changed: list[str] = []
    for key, ids in groups.items():
        model, shadow = payloads[key]
        try:
            versions = ctx.store.set_desired_states(ids, model, now, expires_at, shadow)
        except NotFoundError:  # a device was deleted meanwhile: set the others one by one
            versions = {}
            for device_id in ids:
                try:
                    versions.update(
                        ctx.store.set_desired_states([device_id], model, now, expires_at, shadow)
                    )
                except NotFoundError:
                    continue
        for device_id, issued in versions.items():
            ctx.versions.record(device_id, issued, expires_at)
        changed.extend(versions)
    if changed:
        ctx.changes.changed()
    return changed


def stage_payloads(
    row: RolloutRow, stage: Stage, classes: dict[str, str], current: dict[str, Payload]
) -> dict[str, Payload]:
    """Wanted desired states at ``stage``: its members on the candidate (or shadowing it).

    Devices outside the stage that still run or shadow the candidate (from a stage an operator
    or a restart left behind) go back to the previous model; others are left alone.
    """
    inside = members(row, classes, stage.share)
    previous: Payload = (row.previous, None)
    if stage.kind == "shadow":
        spec = {"model": row.candidate, "sample_rate": stage.sample_rate}
        member: Payload = (row.previous, spec)
    else:
        member = (row.candidate, None)
    wanted: dict[str, Payload] = {}
    for device_id in classes:
        if device_id in inside:
            wanted[device_id] = member
        elif _touches_candidate(current.get(device_id), row.candidate):
            wanted[device_id] = previous
    return wanted


def _touches_candidate(payload: Payload | None, candidate: dict[str, Any]) -> bool:
    if payload is None:
        return False
    model, shadow = payload
    sha = candidate["sha256"]
    return (model is not None and model.get("sha256") == sha) or (
        shadow is not None and shadow.get("model", {}).get("sha256") == sha
    )


def current_payloads(ctx: ServerContext, device_ids: list[str]) -> dict[str, Payload]:
    """Device id -> its desired ``(model, shadow)`` now."""
    return {d: (r.model, r.shadow) for d, r in ctx.store.list_desired_states(device_ids).items()}


def rollback_release(ctx: ServerContext, row: RolloutRow, now: float) -> dict[str, Any]:
    """A release of the previous version newer than the candidate's (downgrade protection).

    Devices never accept a lower release number, so going back publishes the previous file as
    a new release; calling this again returns that same release.
    """
    version_row = ctx.store.get_model_version(row.previous["name"], row.previous["version"])
    if version_row is None:
        raise NotFoundError(
            f"model {row.previous['name']}@{row.previous['version']} left the registry"
        )
    release = ensure_release(ctx, version_row, now)
    return desired_model(release)


def back_to_previous(
    ctx: ServerContext, row: RolloutRow, previous: dict[str, Any], now: float
) -> list[str]:
    """Every targeted device that runs or shadows the candidate goes to ``previous``."""
    devices = targets(ctx, row)
    current = current_payloads(ctx, list(devices))
    wanted: dict[str, Payload] = {
        d: (previous, None) for d in devices if _touches_candidate(current.get(d), row.candidate)
    }
    return apply_desired(ctx, wanted, now)


def everyone_on_candidate(ctx: ServerContext, row: RolloutRow, now: float) -> list[str]:
    """Every targeted device runs the candidate (promotion, completion)."""
    devices = targets(ctx, row)
    return apply_desired(ctx, dict.fromkeys(devices, (row.candidate, None)), now)
