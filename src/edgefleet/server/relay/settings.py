"""Settings of a regional relay (``edgefleet server --relay``; env prefix ``EDGEFLEET_RELAY_``)."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["RelaySettings"]

_REGION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,56}$")


class RelaySettings(BaseSettings):
    """Everything a relay needs; it keeps no state on disk."""

    model_config = SettingsConfigDict(env_prefix="EDGEFLEET_RELAY_", extra="ignore")

    upstream: str = Field(description="The control plane's URL, e.g. https://fleet.example:8400.")
    region: str = Field(description="This relay's region: devices labelled region=<this>.")
    token: SecretStr = Field(description="An operator token of the upstream control plane.")
    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=8401, ge=0, le=65535, description="TCP port (0 picks a free one).")
    tls_certfile: Path | None = Field(default=None, description="PEM certificate for HTTPS.")
    tls_keyfile: Path | None = Field(default=None, description="PEM private key for HTTPS.")
    upstream_ca_file: Path | None = Field(
        default=None, description="CA bundle to verify an HTTPS upstream (default: system CAs)."
    )
    request_timeout_s: float = Field(
        default=330.0,
        gt=0,
        description="Longest wait for the upstream's answer (long polls of the desired state "
        "hold requests open for minutes).",
    )
    identity_ttl_s: float = Field(
        default=60.0, gt=0, description="How long a device credential's identity is cached."
    )
    forward_margin_s: float = Field(
        default=5.0,
        gt=0,
        description="Forward a round's aggregate this long before its deadline (at most 20% "
        "of the round's deadline) if some devices of the region have not sent yet.",
    )
    tick_s: float = Field(default=0.25, gt=0, description="How often held rounds are checked.")

    @field_validator("upstream")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"upstream must be an http:// or https:// URL, got {value!r}")
        return value.rstrip("/")

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not _REGION.match(value):
            raise ValueError(
                f"region {value!r} must be letters, digits and '_.-', at most 57 characters"
            )
        return value
