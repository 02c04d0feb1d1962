"""Device-side services: enrolment, heartbeats and signed desired states."""

from __future__ import annotations

import secrets
from typing import Any

from edgefleet.errors import AuthError, ConfigurationError, NotFoundError
from edgefleet.protocol.labels import check_labels
from edgefleet.protocol.signing import sign_desired_state
from edgefleet.protocol.v1 import (
    DesiredModel,
    DesiredState,
    EnrollRequest,
    EnrollResponse,
    FLAssignment,
    Heartbeat,
    ShadowSpec,
    SignedDesiredState,
)
from edgefleet.server.context import ServerContext
from edgefleet.server.services.policies import policy_for
from edgefleet.server.services.registry import deployment_for
from edgefleet.server.store.rows import DeviceRow, HeartbeatRow
from edgefleet.server.tokens import hash_token, new_token

__all__ = [
    "decommission",
    "enroll",
    "heartbeat",
    "load_desired_version",
    "needs_reissue",
    "relabel",
    "signed_desired_state",
]


def enroll(ctx: ServerContext, body: EnrollRequest, now: float) -> EnrollResponse:
    """Trade an enrolment token for a device identity and the trust anchors.

    The device's labels are the token's labels overridden by the ones the device sends. A
    deployment whose selector matches the new device becomes its first desired state.
    """
    row = ctx.store.consume_enroll_token(hash_token(body.token), now)
    if row is None:
        raise AuthError("enrolment token is unknown, expired or used up")
    labels = check_labels({**row.labels, **body.labels})
    device_id = "dev-" + secrets.token_hex(8)
    credential = new_token("device")
    inventory = body.inventory.model_copy(update={"labels": labels}).model_dump(mode="json")
    ctx.store.create_device(device_id, hash_token(credential), labels, inventory, now)
    model = deployment_for(ctx, labels)
    expires_at = now + ctx.settings.desired_state_expiry_s
    version = ctx.store.set_desired_state(device_id, model, now, expires_at)
    ctx.versions.record(device_id, version, expires_at)
    return EnrollResponse(
        device_id=device_id,
        credential=credential,
        tuf_root=ctx.repository.trusted_root(),
        desired_state_keys={ctx.director.keyid: ctx.director.public_hex},
    )


def heartbeat(ctx: ServerContext, device_id: str, body: Heartbeat, now: float) -> None:
    """Record a heartbeat (buffered; stored by the server's next heartbeat flush).

    The stored inventory also carries ``held_since`` (when local software holds updates).
    """
    inventory: dict[str, Any] = body.inventory.model_dump(mode="json")
    inventory["held_since"] = body.held_since
    ctx.heartbeats.add(HeartbeatRow(device_id, inventory, body.state, now))


def load_desired_version(ctx: ServerContext, device_id: str) -> tuple[int, float]:
    """The device's newest desired-state ``(version, expires_at)``, read from the database.

    Noted in the process's cache; ``(0, 0.0)`` when the device has none yet.
    """
    state = ctx.store.get_desired_state(device_id)
    if state is None:
        return 0, 0.0
    ctx.versions.record(device_id, state.version, state.expires_at)
    return state.version, state.expires_at


def needs_reissue(ctx: ServerContext, expires_at: float, now: float) -> bool:
    """Whether a desired state expiring at ``expires_at`` is past half of its lifetime."""
    return expires_at - now < ctx.settings.desired_state_expiry_s / 2


def signed_desired_state(ctx: ServerContext, device_id: str, now: float) -> SignedDesiredState:
    """The device's desired state, signed; re-issued with a new version when half expired."""
    row = ctx.store.get_desired_state(device_id)
    if row is None or needs_reissue(ctx, row.expires_at, now):
        model = row.model if row is not None else None
        shadow = row.shadow if row is not None else None
        ctx.store.set_desired_state(
            device_id, model, now, now + ctx.settings.desired_state_expiry_s, shadow
        )
        row = ctx.store.get_desired_state(device_id)
        if row is None:
            raise NotFoundError(f"device {device_id} has no desired state")
    ctx.versions.record(device_id, row.version, row.expires_at)
    state = DesiredState(
        device_id=device_id,
        version=row.version,
        issued_at=row.issued_at,
        expires_at=row.expires_at,
        model=DesiredModel.model_validate(row.model) if row.model else None,
        shadow=ShadowSpec.model_validate(row.shadow) if row.shadow else None,
        policy=policy_for(ctx, device_id),
        fl=FLAssignment.model_validate(row.fl) if row.fl else None,
    )
    return sign_desired_state(state, ctx.director)


def decommission(ctx: ServerContext, device_id: str, now: float) -> DeviceRow:
    """Retire a device; its history stays.

    Its credential is revoked (its device API calls get 401) and it leaves every selection:
    deployments, rollouts and federated rounds.

    Raises
    ------
    NotFoundError
        No device ``device_id``.
    """
    ctx.heartbeats.flush()  # a heartbeat buffered before this must not outlive it unseen
    row, credential_hash = ctx.store.decommission_device(device_id, now)
    ctx.credentials.discard(credential_hash)
    ctx.changes.changed()  # its long poll, if any, ends and its next call is refused
    return row


def relabel(
    ctx: ServerContext, device_id: str, set_labels: dict[str, str], remove: list[str]
) -> DeviceRow:
    """Set (add or replace) and remove labels of a device; returns it with its new labels.

    Other labels are kept, even those another request changes at the same time.

    Raises
    ------
    NotFoundError
        No device ``device_id``.
    ConfigurationError
        A key or value is malformed, or a key is both set and removed.
    """
    both = sorted(set(set_labels).intersection(remove))
    if both:
        raise ConfigurationError(f"label {both[0]!r} is both set and removed")
    # read and written in one transaction: a concurrent change to another key is kept
    return ctx.store.update_device_labels(device_id, check_labels(set_labels), remove)
