"""Update policies per selector: maintenance windows and a daily download budget.

A policy applies to every device whose labels match its selector; when several match, the one
set last wins. Policies travel inside the signed desired state (``policy``), so setting one
re-issues the desired states of the devices it covers. The agent enforces them: it downloads
ahead, activates only inside a window, and stops downloading for the day at its budget.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from edgefleet.protocol.cron import CronSchedule
from edgefleet.protocol.labels import check_labels, matches
from edgefleet.protocol.v1 import UpdatePolicy
from edgefleet.server.context import ServerContext

__all__ = ["list_policies", "policy_for", "reissue", "set_policy"]

_POLICIES = "update_policies"


def list_policies(ctx: ServerContext) -> list[dict[str, Any]]:
    """Every stored policy: ``{"selector": ..., "policy": ..., "at": ...}``, oldest first."""
    raw = ctx.store.get_setting(_POLICIES)
    return list(json.loads(raw)) if raw else []


def set_policy(
    ctx: ServerContext, selector: dict[str, str], policy: UpdatePolicy | None, now: float
) -> list[str]:
    """Set (or with None, remove) the policy of ``selector``; return the devices re-issued.

    Raises
    ------
    ConfigurationError
        A bad selector or cron expression (nothing is stored then).
    """
    check_labels(selector)
    if policy is not None:
        for window in policy.windows:
            CronSchedule.parse(window.cron)
    with ctx.registry_lock:
        kept = [p for p in list_policies(ctx) if p["selector"] != selector]
        if policy is not None:
            kept.append({"selector": selector, "policy": policy.model_dump(mode="json"), "at": now})
        ctx.store.set_setting(_POLICIES, json.dumps(kept))
    devices = [d.device_id for d in ctx.store.list_devices(selector)]
    reissue(ctx, devices, now)
    return devices


def policy_for(ctx: ServerContext, device_id: str) -> UpdatePolicy | None:
    """The newest policy whose selector matches the device's labels, or None."""
    policies = list_policies(ctx)
    if not policies:
        return None
    device = ctx.store.get_device(device_id)
    if device is None:
        return None
    found = [p for p in policies if matches(p["selector"], device.labels)]
    if not found:
        return None
    return UpdatePolicy.model_validate(max(found, key=lambda p: p["at"])["policy"])


def reissue(ctx: ServerContext, device_ids: list[str], now: float) -> None:
    """Give ``device_ids`` new desired-state versions with unchanged models and shadows."""
    groups: dict[str, list[str]] = defaultdict(list)
    states = ctx.store.list_desired_states(device_ids)
    payloads: dict[str, tuple[dict[str, Any] | None, dict[str, Any] | None]] = {}
    for device_id in device_ids:
        row = states.get(device_id)
        model, shadow = (row.model, row.shadow) if row is not None else (None, None)
        key = json.dumps([model, shadow], sort_keys=True)
        payloads[key] = (model, shadow)
        groups[key].append(device_id)
    expires_at = now + ctx.settings.desired_state_expiry_s
    for key, ids in groups.items():
        model, shadow = payloads[key]
        versions = ctx.store.set_desired_states(ids, model, now, expires_at, shadow)
        for device_id, issued in versions.items():
            ctx.versions.record(device_id, issued, expires_at)
    if device_ids:
        ctx.changes.changed()
