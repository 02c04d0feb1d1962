"""Settings of the ``edgefleet server`` process (environment prefix ``EDGEFLEET_``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from edgefleet.errors import ConfigurationError

__all__ = ["CONFIG_FILE", "ServerSettings", "load_settings"]

CONFIG_FILE = "server.yaml"
MiB = 2**20


class ServerSettings(BaseSettings):
    """Everything the control plane needs.

    Command-line options override the environment, which overrides ``server.yaml``.
    """

    model_config = SettingsConfigDict(env_prefix="EDGEFLEET_", extra="ignore")

    data_dir: Path = Field(description="Server data dir (created by `edgefleet server init`).")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default: SQLite file edgefleet.db in the data dir. "
        "PostgreSQL: postgresql+psycopg://user:password@host/db.",
    )
    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=8400, ge=0, le=65535, description="TCP port (0 picks a free one).")
    tls_certfile: Path | None = Field(default=None, description="PEM certificate for HTTPS.")
    tls_keyfile: Path | None = Field(default=None, description="PEM private key for HTTPS.")
    root_key_path: Path | None = Field(
        default=None, description="Where the TUF root key lives (set by init; may be offline)."
    )
    max_body_bytes: int = Field(
        default=4 * MiB, gt=0, description="Largest request body on every endpoint but pushes."
    )
    max_model_bytes: int = Field(
        default=512 * MiB, gt=0, description="Largest model upload (`edgefleet model push`)."
    )
    timestamp_expiry_s: float = Field(
        default=86400.0, gt=0, description="Lifetime of TUF timestamp metadata (re-signed at half)."
    )
    snapshot_expiry_s: float = Field(
        default=7 * 86400.0, gt=0, description="Lifetime of TUF snapshot metadata."
    )
    targets_expiry_s: float = Field(
        default=90 * 86400.0, gt=0, description="Lifetime of TUF targets metadata."
    )
    desired_state_expiry_s: float = Field(
        default=7 * 86400.0, gt=0, description="Lifetime of a signed desired state."
    )
    resign_interval_s: float = Field(
        default=60.0, gt=0, description="How often the re-signing loop checks expiries."
    )
    long_poll_max_s: float = Field(
        default=30.0, ge=0, description="Longest a desired-state request may wait for a change."
    )
    desired_state_refresh_s: float = Field(
        default=1.0,
        gt=0,
        description="How often each server process re-reads desired-state versions written by "
        "other processes sharing the database (its own writes count at once).",
    )
    heartbeat_flush_s: float = Field(
        default=1.0,
        gt=0,
        description="How often buffered heartbeats are stored (one transaction for all).",
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="Server log lines: 'text', or 'json' (one JSON object per line, with the "
        "audit trail's fields).",
    )
    opentelemetry: bool = Field(
        default=False,
        description="Emit OpenTelemetry traces, metrics and logs for every request through "
        "FastAPI's native instrumentation and the globally configured providers (costs CPU on "
        "every device request).",
    )
    device_offline_after_s: float = Field(
        default=60.0, gt=0, description="A device with no heartbeat for this long is offline."
    )
    rollout_eval_s: float = Field(
        default=5.0,
        gt=0,
        description="How often running rollouts are evaluated (each gate also has its own "
        "interval); one server process at a time does it.",
    )
    fl_eval_s: float = Field(
        default=2.0,
        gt=0,
        description="How often federated jobs are stepped (open a round, close one that is "
        "due); one server process at a time does it.",
    )
    max_fl_update_bytes: int = Field(
        default=256 * MiB,
        gt=0,
        description="Largest federated update upload on any job (each job also refuses an "
        "update larger than a dense float32 copy of its model).",
    )

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL, defaulting to SQLite in the data dir."""
        return self.database_url or f"sqlite:///{self.data_dir / 'edgefleet.db'}"

    @property
    def keys_dir(self) -> Path:
        """Online signing keys (mode 0700)."""
        return self.data_dir / "keys"

    @property
    def artifacts_dir(self) -> Path:
        """Content-addressed artifact files."""
        return self.data_dir / "artifacts"


def load_settings(data_dir: Path, **overrides: object) -> ServerSettings:
    """Settings for ``data_dir``: its ``server.yaml``, then the environment, then ``overrides``.

    Raises
    ------
    ConfigurationError
        When the data dir was never initialised or its configuration is malformed.
    """
    config = data_dir / CONFIG_FILE
    if not config.is_file():
        raise ConfigurationError(
            f"{data_dir} is not an edgefleet server data dir (no {CONFIG_FILE}); "
            f"run `edgefleet server init --data-dir {data_dir}` first"
        )
    try:
        stored = yaml.safe_load(config.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{config} is not valid YAML: {exc}") from exc
    if not isinstance(stored, dict):
        raise ConfigurationError(f"{config} must hold a mapping of settings")
    given = {k: v for k, v in overrides.items() if v is not None}
    # Environment beats the file; explicit overrides beat both. pydantic-settings gives init
    # values priority over the environment, so only file values the environment does not set
    # are passed as init values.
    unknown = sorted(set(stored) - set(ServerSettings.model_fields))
    if unknown:
        raise ConfigurationError(f"{config}: unknown settings {', '.join(unknown)}")
    env = {name.upper() for name in os.environ}
    values: dict[str, Any] = {
        k: v for k, v in stored.items() if f"EDGEFLEET_{k.upper()}" not in env
    }
    values.update(given)
    values["data_dir"] = data_dir
    try:
        return ServerSettings(**values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigurationError(f"invalid server settings: {problems}") from exc
