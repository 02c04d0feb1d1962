"""Process settings for ``edgefleet bench`` that come from the environment."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["BenchSettings"]


class BenchSettings(BaseSettings):
    """``EDGEFLEET_*`` environment variables read once by the CLI."""

    model_config = SettingsConfigDict(env_prefix="EDGEFLEET_", extra="ignore")

    sysfs_root: Path = Field(
        default=Path("/"),
        description="Root under which /sys and /proc are read (a container mount, a test tree).",
    )
