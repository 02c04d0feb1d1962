"""The rows the store returns: frozen dataclasses, JSON columns decoded to dicts and lists.

Timestamps are float Unix seconds, as the caller passed them in (``now``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AuditRow",
    "DeploymentRow",
    "DesiredStateRow",
    "DeviceRow",
    "EnrollTokenRow",
    "EventRow",
    "HeartbeatRow",
    "ModelVersionRow",
    "OperatorTokenRow",
    "ReleaseRow",
    "RolloutEventRow",
    "RolloutRow",
    "TelemetryBatchRow",
    "TelemetryRow",
]


@dataclass(frozen=True)
class OperatorTokenRow:
    """An operator's API token (only its hash is stored)."""

    id: int
    token_hash: str
    name: str
    created_at: float


@dataclass(frozen=True)
class EnrollTokenRow:
    """An enrolment token: labels given to the devices it enrols, and how often it may be used.

    ``uses`` and ``remaining`` are None for a token without a use limit; ``expires_at`` is None
    for a token that never expires.
    """

    id: int
    token_hash: str
    labels: dict[str, str]
    uses: int | None
    remaining: int | None
    expires_at: float | None
    created_at: float
    revoked_at: float | None = None


@dataclass(frozen=True)
class DeviceRow:
    """An enrolled device, its last reported inventory and its bookkeeping counters.

    ``telemetry_dropped`` is the highest drop counter the device's spool reported;
    ``desired_version`` the version of its newest desired state (0 before the first).
    """

    device_id: str
    credential_hash: str
    labels: dict[str, str]
    inventory: dict[str, Any]
    state: str
    enrolled_at: float
    last_seen_at: float
    telemetry_dropped: int
    desired_version: int
    decommissioned_at: float | None = None


@dataclass(frozen=True)
class HeartbeatRow:
    """One heartbeat to store: the device's inventory and state, and when it was seen."""

    device_id: str
    inventory: dict[str, Any]
    state: str
    seen_at: float


@dataclass(frozen=True)
class TelemetryBatchRow:
    """One device's batch of telemetry windows to store, and its spool's drop counter."""

    device_id: str
    windows: Sequence[Mapping[str, Any]]
    dropped_total: int
    received_at: float


@dataclass(frozen=True)
class ModelVersionRow:
    """A pushed model version: the file's identity and what a device needs to check it."""

    id: int
    name: str
    version: str
    sha256: str
    size_bytes: int
    opset: int
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    memory_estimate_bytes: int
    golden_sha256: str | None
    calibration: dict[str, Any] | None
    metadata: dict[str, Any]
    created_at: float


@dataclass(frozen=True)
class ReleaseRow:
    """A published TUF target of a model version; ``release`` only grows per model name."""

    name: str
    release: int
    version: str
    target: str
    sha256: str
    length: int
    custom: dict[str, Any]
    created_at: float


@dataclass(frozen=True)
class DesiredStateRow:
    """The newest desired state of one device (``model`` None: run no model)."""

    device_id: str
    version: int
    model: dict[str, Any] | None
    issued_at: float
    expires_at: float
    shadow: dict[str, Any] | None = None
    fl: dict[str, Any] | None = None


@dataclass(frozen=True)
class EventRow:
    """One step of an agent's work, as the agent reported it."""

    id: int
    device_id: str
    event_id: str
    at: float
    kind: str
    model: str
    version: str
    release: int
    ok: bool
    detail: str


@dataclass(frozen=True)
class TelemetryRow:
    """One model version's telemetry over one time window of one device."""

    id: int
    device_id: str
    window_id: str
    model: str
    version: str
    started_at: float
    ended_at: float
    snapshot: dict[str, Any]
    swaps: int
    rollbacks: int
    received_at: float
    role: str = "active"
    shadow: dict[str, Any] | None = None


@dataclass(frozen=True)
class RolloutRow:
    """A rollout or A/B experiment and where it stands.

    ``candidate`` and ``previous`` are desired-model payloads (the release the rollout brings,
    and the one it started from). ``plan`` is the plan as JSON; ``status`` the last evaluation
    (gate values, counts); ``revision`` grows with every transition.
    """

    rollout_id: str
    kind: str
    model: str
    candidate: dict[str, Any]
    previous: dict[str, Any]
    selector: dict[str, str]
    plan: dict[str, Any]
    state: str
    stage: int
    stage_started_at: float
    status: dict[str, Any]
    reason: str
    revision: int
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class RolloutEventRow:
    """One entry of a rollout's timeline."""

    id: int
    rollout_id: str
    at: float
    kind: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class FLJobRow:
    """A federated job: what it trains, how, and where it stands.

    ``config`` holds the job's settings (rounds, per_round, strategy, compression, deadline_s,
    ...); ``model_sha256`` the artifact of the current global parameters; ``strategy_state``
    and ``privacy_state`` the server-side state that must survive a restart.
    """

    job_id: str
    model: str
    base_version: str
    task: str
    selector: dict[str, str]
    config: dict[str, Any]
    state: str
    round: int
    model_sha256: str
    strategy_state: dict[str, Any]
    privacy_state: dict[str, Any]
    result_version: str | None
    reason: str
    revision: int
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class FLRoundRow:
    """One round of a job (``state``: ``open``, ``closed`` or ``failed``)."""

    job_id: str
    round: int
    state: str
    opened_at: float
    deadline: float
    closed_at: float | None
    model_hash: str
    model_sha256: str
    result: dict[str, Any]


@dataclass(frozen=True)
class FLUpdateRow:
    """A device's part in a round (``state``: ``assigned``, ``accepted`` or ``rejected``)."""

    job_id: str
    round: int
    device_id: str
    state: str
    reason: str
    num_examples: int
    bytes_up: int
    bytes_down: int
    payload_sha256: str | None
    metrics: dict[str, Any]
    updated_at: float


@dataclass(frozen=True)
class DeploymentRow:
    """An operator's deployment: ``model@version`` (release) to a selector's devices."""

    id: int
    model: str
    version: str
    release: int
    selector: dict[str, str]
    devices: list[str]
    actor: str
    created_at: float


@dataclass(frozen=True)
class AuditRow:
    """One audited action: who (``actor``), when (``at``), on what, and what came of it."""

    id: int
    at: float
    actor: str
    action: str
    target: str
    outcome: str
    detail: dict[str, Any]
