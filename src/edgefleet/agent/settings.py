"""Settings of the ``edgefleet agent`` process (environment prefix ``EDGEFLEET_``).

One :class:`AgentSettings` object is built by the command line and passed down; nothing deeper
reads the environment. Command-line options override environment variables.

>>> parse_labels("site=berlin, line=3")
{'site': 'berlin', 'line': '3'}
>>> parse_address("0.0.0.0:0")
('0.0.0.0', 0)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from edgefleet.errors import ConfigurationError
from edgefleet.protocol.labels import check_labels
from edgefleet.protocol.v1 import API_PREFIX
from edgefleet.runtime.options import parse_providers

__all__ = ["AgentSettings", "parse_address", "parse_labels"]

_T = TypeVar("_T")
MAX_LABELS = 64


def parse_labels(text: str) -> dict[str, str]:
    """Parse ``k=v,k2=v2`` into a dict, naming the first malformed entry.

    Keys and values follow :func:`edgefleet.protocol.labels.check_labels`, as the control plane
    checks them.

    Raises
    ------
    ConfigurationError
        An entry is not ``key=value``, a key or value is malformed, a key repeats, or there
        are more than 64 labels.
    """
    labels: dict[str, str] = {}
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep:
            raise ConfigurationError(f"label {item!r} is not key=value")
        if key in labels:
            raise ConfigurationError(f"label key {key!r} is given twice")
        labels[key] = value
    if len(labels) > MAX_LABELS:
        raise ConfigurationError(f"{len(labels)} labels given; at most {MAX_LABELS} are allowed")
    return check_labels(labels)


def parse_address(text: str) -> tuple[str, int]:
    """Parse ``HOST:PORT`` (``[v6]:PORT`` for IPv6); port 0 picks a free port.

    Raises
    ------
    ConfigurationError
        The text has no host or no port, or the port is not in 0..65535.
    """
    host, sep, port_text = text.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port_text.isdigit():
        raise ConfigurationError(f"address {text!r} is not HOST:PORT (e.g. 127.0.0.1:8500)")
    port = int(port_text)
    if port > 65535:
        raise ConfigurationError(f"address {text!r}: port {port} is not in 0..65535")
    return host, port


def _server_url(text: str) -> str:
    url = text.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"server URL {text!r} must be http(s)://HOST[:PORT][/PATH]")
    if parts.query or parts.fragment:
        raise ConfigurationError(f"server URL {text!r} must not carry a query or fragment")
    if url.endswith(API_PREFIX):  # accept the device API base as well as the server root
        url = url[: -len(API_PREFIX)]
    return url


def _as_value_error(parse: Callable[[str], _T], text: str) -> _T:
    try:
        return parse(text)
    except ConfigurationError as exc:
        raise ValueError(str(exc)) from None


class AgentSettings(BaseSettings):
    """Everything ``edgefleet agent`` needs; command-line options override the environment."""

    model_config = SettingsConfigDict(env_prefix="EDGEFLEET_", extra="forbid")

    server_url: str | None = Field(
        default=None,
        description="Control plane root URL (https://host:port). Needed to enrol; later starts "
        "default to the URL stored in credential.json.",
    )
    enroll_token: SecretStr | None = Field(
        default=None, description="Enrolment token; used once, on the first start only."
    )
    data_dir: Path = Field(
        description="Agent data directory: credential, trust metadata, models, spool, state."
    )
    labels: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, description="Device labels as k=v,k2=v2 (sent at enrolment)."
    )
    serve: str = Field(
        default="127.0.0.1:8500",
        description="HOST:PORT of the local Open Inference Protocol server (port 0: any free).",
    )
    ca_file: Path | None = Field(
        default=None, description="PEM file of CA certificates trusted for the server's TLS."
    )
    heartbeat_interval_s: float = Field(
        default=10.0, gt=0, description="Seconds between heartbeats."
    )
    poll_wait_s: float = Field(
        default=30.0, ge=0, le=300, description="Long-poll wait of a desired-state request."
    )
    telemetry_window_s: float = Field(
        default=60.0, gt=0, description="Seconds of telemetry per spooled window."
    )
    upload_interval_s: float = Field(
        default=15.0, gt=0, description="Seconds between uploads of spooled telemetry and events."
    )
    spool_budget_bytes: int = Field(
        default=64 * 1024 * 1024, gt=0, description="Disk budget of the telemetry spool."
    )
    health_watch_s: float = Field(
        default=60.0, ge=0, description="How long a newly activated model is watched."
    )
    health_min_requests: int = Field(
        default=20, ge=1, description="Requests needed before the health watch judges a model."
    )
    latency_factor: float = Field(
        default=3.0,
        gt=1,
        description="Roll back when the new model's median latency exceeds this times the "
        "previous model's (confidence bounds, in consecutive windows; see agent.health).",
    )
    latency_margin_ms: float = Field(
        default=1.0,
        ge=0,
        description="A latency regression must also add this much to the median (ignores noise).",
    )
    latency_window: int = Field(
        default=50,
        ge=10,
        description="Calls in one latency window of the health watch (the previous model needs "
        "as many).",
    )
    latency_windows: int = Field(
        default=3,
        ge=1,
        description="Consecutive slow latency windows that roll a new model back.",
    )
    error_rate_limit: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Roll back when this share of the new model's calls fail while running.",
    )
    backoff_base_s: float = Field(
        default=1.0, gt=0, description="First retry delay cap after a failure (full jitter)."
    )
    backoff_max_s: float = Field(
        default=300.0, gt=0, description="Largest retry delay after repeated failures."
    )
    retry_failed_s: float = Field(
        default=60.0,
        gt=0,
        description="First wait before a desired model that failed here is tried again "
        "(doubles per failure up to backoff_max_s; a new desired version is tried at once).",
    )
    request_timeout_s: float = Field(
        default=30.0, gt=0, description="Timeout of one control-plane request (plus poll wait)."
    )
    max_request_bytes: int = Field(
        default=8 * 1024 * 1024, gt=0, description="Largest request body the agent sends."
    )
    max_body_bytes: int = Field(
        default=64 * 1024 * 1024, gt=0, description="Local inference bodies over this get 413."
    )
    intra_op_threads: int = Field(
        default=0, ge=0, description="ONNX Runtime threads per operator (0: one per core)."
    )
    providers: str = Field(
        default="auto",
        description="Comma-separated execution providers, or 'auto' (accelerator, then CPU).",
    )
    nan_policy: Literal["reject", "allow"] = Field(
        default="reject", description="Refuse floating-point inputs holding NaN or infinity."
    )
    hold_max_s: float = Field(
        default=3600.0,
        gt=0,
        description="Seconds an update hold taken by local software may last before the agent "
        "reports it once as hold_overdue (the hold is still honoured).",
    )
    shutdown_grace_s: float = Field(
        default=10.0, ge=0, description="How long a stop waits for in-flight requests."
    )
    fl_tasks: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Federated tasks this device trains, comma-separated (a built-in name such "
        "as digits, or module:attr). Empty: the device takes no part in federated jobs.",
    )
    fl_partition: str = Field(
        default="0/1",
        description="I/N: the shard of the task's local data this device trains on "
        "(a real device's task reads its own data; 0/1 is all of it).",
    )

    # Validators raise ValueError so that pydantic reports every bad field at once.

    @field_validator("server_url")
    @classmethod
    def _check_server_url(cls, value: str | None) -> str | None:
        return None if value is None else _as_value_error(_server_url, value)

    @field_validator("labels", mode="before")
    @classmethod
    def _check_labels(cls, value: Any) -> Any:
        if isinstance(value, dict):
            value = ",".join(f"{k}={v}" for k, v in value.items())
        if isinstance(value, str):
            return _as_value_error(parse_labels, value)
        return value

    @field_validator("fl_tasks", mode="before")
    @classmethod
    def _check_fl_tasks(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("fl_partition")
    @classmethod
    def _check_fl_partition(cls, value: str) -> str:
        from edgefleet.agent.fl import parse_partition

        parse_partition(value)
        return value.strip()

    @field_validator("serve")
    @classmethod
    def _check_serve(cls, value: str) -> str:
        _as_value_error(parse_address, value)
        return value.strip()

    @field_validator("providers")
    @classmethod
    def _check_providers(cls, value: str) -> str:
        if not parse_providers(value):
            raise ValueError("providers must be 'auto' or a list of provider names")
        return value

    @property
    def serve_host(self) -> str:
        """Host part of :attr:`serve`."""
        return parse_address(self.serve)[0]

    @property
    def serve_port(self) -> int:
        """Port part of :attr:`serve`."""
        return parse_address(self.serve)[1]

    @property
    def trust_dir(self) -> Path:
        """TUF metadata and desired-state keys."""
        return self.data_dir / "trust"

    @property
    def models_dir(self) -> Path:
        """Verified model files (``<sha256>.onnx``)."""
        return self.data_dir / "models"

    @property
    def downloads_dir(self) -> Path:
        """Partial downloads; never loaded."""
        return self.data_dir / "downloads"

    @property
    def credential_path(self) -> Path:
        """The device's identity, written once at enrolment."""
        return self.data_dir / "credential.json"

    @property
    def state_path(self) -> Path:
        """Active and previous model."""
        return self.data_dir / "state.json"

    @property
    def hold_path(self) -> Path:
        """The update hold, present while local software holds updates."""
        return self.data_dir / "hold.json"

    @property
    def budget_path(self) -> Path:
        """Model bytes downloaded today (the daily download budget)."""
        return self.data_dir / "download_budget.json"

    @property
    def spool_path(self) -> Path:
        """Telemetry and event spool."""
        return self.data_dir / "spool.db"

    def load_options(self) -> dict[str, Any]:
        """Keyword options for :func:`edgefleet.runtime.load` (name and version excluded)."""
        return {
            "providers": parse_providers(self.providers),
            "intra_op_threads": self.intra_op_threads,
            "nan_policy": self.nan_policy,
            "spin_wait": False,
        }
