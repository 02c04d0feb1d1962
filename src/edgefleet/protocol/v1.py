"""Device API, version 1: the bodies agents and the control plane exchange.

Every path is under ``/api/device/v1``. Devices authenticate with ``Authorization: Bearer
<credential>``, where the credential was returned once by :class:`EnrollResponse`.

============================  ======  =================================  ==========================
path                          method  request body                       response body
============================  ======  =================================  ==========================
``/enroll``                   POST    :class:`EnrollRequest`             :class:`EnrollResponse`
``/heartbeat``                POST    :class:`Heartbeat`                 :class:`HeartbeatAck`
``/desired-state``            GET     (``?wait=S``, ``If-None-Match``)   :class:`SignedDesiredState`
``/events``                   POST    :class:`EventBatch`                :class:`BatchAck`
``/telemetry``                POST    :class:`TelemetryBatch`            :class:`BatchAck`
``/tuf/metadata/{file}``      GET                                        TUF metadata JSON
``/tuf/targets/{file}``       GET     (``Range`` honoured)               model bytes
``/fl/{job}/{round}/model``   GET                                        global model (downlink)
``/fl/{job}/{round}/update``  POST    encoded update (octet-stream)      :class:`FLUpdateAck`
``/fl/{job}/{round}/decline`` POST    :class:`FLDecline`                 :class:`FLUpdateAck`
============================  ======  =================================  ==========================

A federated round reaches a device as :attr:`DesiredState.fl`. The update's body is the
codec's payload (:mod:`edgefleet.federated.compression`); the number of training examples and
the device's own metrics travel in the headers :data:`FL_EXAMPLES_HEADER` and
:data:`FL_METRICS_HEADER` (a JSON object of numbers).

Integers, floats and text that the control plane stores use the constrained types of
:mod:`edgefleet.protocol.bounds` (a 64-bit counter, a 32-bit round, text without NUL), so a value
no column can hold is refused with a message naming its field.

>>> Heartbeat(inventory=Inventory(arch="x86_64")).inventory.arch
'x86_64'
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from edgefleet.protocol.bounds import (
    Count32,
    Count64,
    Finite,
    Name,
    Positive32,
    Positive64,
    Text,
)

__all__ = [
    "API_PREFIX",
    "FL_EXAMPLES_HEADER",
    "FL_METRICS_HEADER",
    "ActiveModel",
    "BatchAck",
    "DesiredModel",
    "DesiredState",
    "EnrollRequest",
    "EnrollResponse",
    "Event",
    "EventBatch",
    "EventKind",
    "FLAssignment",
    "FLDecline",
    "FLUpdateAck",
    "Heartbeat",
    "HeartbeatAck",
    "Inventory",
    "MaintenanceWindow",
    "ShadowComparison",
    "ShadowSpec",
    "Signature",
    "SignedDesiredState",
    "TelemetryBatch",
    "TelemetryWindow",
    "UpdatePolicy",
]

API_PREFIX = "/api/device/v1"
FL_EXAMPLES_HEADER = "X-Edgefleet-Examples"
"""Header of an update upload: the number of local training examples behind it."""
FL_METRICS_HEADER = "X-Edgefleet-Metrics"
"""Header of an update upload: the device's training metrics as a JSON object of numbers."""

_LABEL = r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,62}$"


class _Body(BaseModel):
    """Strict wire body: unknown fields are refused so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ActiveModel(_Body):
    """The model an agent serves right now."""

    name: str = Field(description="Stable serving name (the registry's model name).")
    version: str = Field(description="The model version.")
    release: Count64 = Field(description="Release counter of the TUF target it came from.")
    sha256: str = Field(description="SHA-256 of the model file, hex.")


class Inventory(_Body):
    """What an agent reports about its device on every heartbeat."""

    hostname: str = ""
    arch: str = Field(default="", description="Machine architecture (platform.machine()).")
    cpu_model: str = ""
    cpu_count: Count32 = 0
    memory_bytes: Count64 = Field(default=0, description="Total physical memory.")
    memory_available_bytes: Count64 = 0
    disk_free_bytes: Count64 = Field(default=0, description="Free bytes on the data disk.")
    os: str = ""
    python: str = ""
    onnxruntime_version: str = ""
    execution_providers: list[str] = Field(default_factory=list)
    agent_version: str = ""
    active_model: ActiveModel | None = None
    fl_tasks: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="Federated tasks this device trains (none: it takes no part in FL jobs).",
    )
    labels: dict[str, str] = Field(default_factory=dict)


class EnrollRequest(_Body):
    """First contact: a one-time (or multi-use) enrolment token and the device's labels."""

    token: str = Field(min_length=16, max_length=256)
    labels: dict[str, str] = Field(default_factory=dict, max_length=64)
    inventory: Inventory = Field(default_factory=Inventory)


class EnrollResponse(_Body):
    """The device's identity and its trust anchors, returned once."""

    device_id: str
    credential: str = Field(description="Bearer secret; the server keeps only its hash.")
    tuf_root: dict[str, Any] = Field(description="The TUF root metadata the device trusts first.")
    desired_state_keys: dict[str, str] = Field(
        description="Key id -> Ed25519 public key (hex) that signs desired states."
    )


class Heartbeat(_Body):
    """Periodic liveness and inventory report."""

    inventory: Inventory
    state: Text = Field(default="idle", max_length=64, description="The agent's reconcile state.")
    desired_version: Count64 = Field(default=0, description="Last desired-state version applied.")
    held_since: Finite | None = Field(
        default=None, description="When local software took the update hold, if it holds it."
    )


class HeartbeatAck(_Body):
    """The server's answer to a heartbeat."""

    server_time: float
    desired_version: int = Field(description="Newest desired-state version for this device.")


class DesiredModel(_Body):
    """The model a device should run: a TUF target and what the device needs to check it."""

    name: str
    version: str
    target: str = Field(description="TUF target path of the artifact.")
    release: Positive64 = Field(description="Release counter; never decreases for a name.")
    sha256: str
    length: Positive64


class ShadowSpec(_Body):
    """A candidate model to run beside the active one on sampled live inputs.

    The shadow never answers a request: the agent runs it off the request path on a
    ``sample_rate`` share of the inputs the active model served, compares the two outputs, and
    reports the comparison in ``role="shadow"`` telemetry windows.
    """

    model: DesiredModel
    sample_rate: float = Field(
        gt=0.0, le=1.0, description="Share of live inferences also run on the shadow model."
    )


class MaintenanceWindow(_Body):
    """When a device may activate a new model: a cron start time (UTC) and a duration."""

    cron: str = Field(
        max_length=200,
        description="Five-field cron expression (minute hour day-of-month month day-of-week), UTC.",
    )
    duration_s: Finite = Field(gt=0, description="How long the window stays open after a start.")


class UpdatePolicy(_Body):
    """How a device may update: maintenance windows and a daily download budget.

    With ``windows``, a device downloads and verifies ahead but activates only inside one of
    them. With ``daily_download_bytes``, model downloads stop for the (UTC) day once that
    many bytes were fetched, and resume the next day where they stopped.
    """

    windows: list[MaintenanceWindow] = Field(default_factory=list, max_length=32)
    daily_download_bytes: Positive64 | None = None


class FLAssignment(_Body):
    """A federated round this device takes part in: train from the round's model, send the delta.

    The device fetches the round's global model, checks it against ``model_hash``, trains it on
    its local data with ``task``, encodes ``trained - global`` with ``compression`` (keeping
    the codec's state, e.g. error-feedback residuals, on its disk), and uploads the payload.
    """

    job_id: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$",
        description="The job's id (also a folder name on the device).",
    )
    round: Positive32
    task: str = Field(min_length=1, max_length=200, description="Task spec the device trains.")
    model_hash: str = Field(
        pattern=r"^[0-9a-f]{16}$", description="model_hash of the round's global model."
    )
    num_params: Positive64
    compression: str = Field(max_length=200, description="Uplink codec spec, e.g. dgc:0.999.")
    local_epochs: int = Field(default=1, ge=1, le=1000)
    learning_rate: Finite | None = Field(default=None, gt=0)
    batch_size: Positive32 | None = None
    mu: Finite = Field(default=0.0, ge=0, description="FedProx proximal coefficient.")
    privacy: str | None = Field(
        default=None, max_length=200, description="Differential privacy applied on the device."
    )
    seed: Count64 = Field(default=0, description="Seeds local training (with round, device).")
    deadline: float = Field(description="Server time after which the update is refused.")


class DesiredState(_Body):
    """What one device should run, signed by the server (Uptane's director role, simplified)."""

    device_id: str
    version: int = Field(ge=1, description="Grows with every change for this device.")
    issued_at: float
    expires_at: float
    model: DesiredModel | None = None
    shadow: ShadowSpec | None = Field(
        default=None, description="A candidate to run in shadow beside ``model``."
    )
    policy: UpdatePolicy | None = Field(
        default=None, description="Maintenance windows and download budget for this device."
    )
    fl: FLAssignment | None = Field(
        default=None, description="The federated round this device should train, if any."
    )


class Signature(_Body):
    """An Ed25519 signature over the canonical JSON of a payload."""

    keyid: str
    sig: str = Field(description="Hex signature.")


class SignedDesiredState(_Body):
    """A desired state with its signatures."""

    signed: DesiredState
    signatures: list[Signature]


EventKind = Literal[
    "enrolled",
    "desired_state",
    "download_started",
    "download_finished",
    "verified",
    "verification_failed",
    "incompatible",
    "smoke_test_passed",
    "smoke_test_failed",
    "activated",
    "health_passed",
    "rolled_back",
    "deferred",
    "held",
    "hold_released",
    "hold_overdue",
    "shadow_started",
    "shadow_stopped",
    "telemetry_dropped",
    "fl_update",
    "error",
]


class Event(_Body):
    """One step of the agent's work, reported to the server (idempotent by ``event_id``)."""

    event_id: Text = Field(min_length=8, max_length=64)
    at: Finite
    kind: EventKind
    model: Name = ""
    version: Name = ""
    release: Count64 = 0
    ok: bool = True
    detail: Text = Field(default="", max_length=4000)


class EventBatch(_Body):
    """Events uploaded together."""

    events: list[Event] = Field(max_length=1000)


class ShadowComparison(_Body):
    """How a shadow model's outputs compared with the active model's on the same inputs."""

    active_version: str = Field(description="The active model version it was compared with.")
    compared: Count64 = Field(description="Samples both models scored.")
    disagreed: Count64 = Field(description="Samples whose top-1 class (or comparison) differs.")
    confidence_delta_sum: float = Field(
        default=0.0, description="Sum over samples of shadow minus active (calibrated) confidence."
    )


class TelemetryWindow(_Body):
    """One model version's telemetry over one time window (idempotent by ``window_id``).

    ``role="shadow"`` windows describe a shadow model: its own latency and confidence on the
    sampled inputs, and in ``shadow`` its comparison with the active model. Confidence values
    are calibrated (temperature scaling from the release) when the release carries one.
    """

    window_id: Text = Field(min_length=8, max_length=64)
    model: Name
    version: Name
    started_at: Finite
    ended_at: Finite
    snapshot: dict[str, Any] = Field(description="TelemetrySnapshot.to_dict() of the window.")
    swaps: Count32 = 0
    rollbacks: Count32 = 0
    role: Literal["active", "shadow"] = "active"
    shadow: ShadowComparison | None = None


class TelemetryBatch(_Body):
    """Telemetry windows uploaded together, with the spool's running drop counter."""

    batch_id: Text = Field(min_length=8, max_length=64)
    windows: list[TelemetryWindow] = Field(max_length=1000)
    dropped_total: Count64 = Field(
        0,
        description="Windows the spool ever dropped, over its byte budget or refused for good "
        "by the control plane (monotonic).",
    )


class BatchAck(_Body):
    """How many items of a batch were new, and how many had been received before."""

    accepted: int
    duplicates: int


class FLUpdateAck(_Body):
    """The server's answer to an update: taken into the round, or why not."""

    job_id: str
    round: int
    accepted: bool
    detail: str = ""


class FLDecline(_Body):
    """A device says it will not train a round it was given (task not enabled, no data...)."""

    reason: Text = Field(min_length=1, max_length=1000)
