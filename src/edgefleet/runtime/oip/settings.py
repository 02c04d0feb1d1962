"""Settings of the ``edgefleet serve`` process (environment prefix ``EDGEFLEET_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from edgefleet.runtime.options import parse_providers

__all__ = ["ServeSettings"]


class ServeSettings(BaseSettings):
    """Everything ``edgefleet serve`` needs; command-line options override the environment."""

    model_config = SettingsConfigDict(env_prefix="EDGEFLEET_", extra="forbid")

    model_path: Path = Field(description="ONNX model file or pipeline definition to serve.")
    name: str | None = Field(
        default=None, description="Name to serve under (default: the file name without suffix)."
    )
    version: str = Field(default="1", description="Version label reported by the protocol.")
    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port (0 picks a free one).")
    max_body_bytes: int = Field(
        default=64 * 1024 * 1024, gt=0, description="Larger request bodies get HTTP 413."
    )
    nan_policy: Literal["reject", "allow"] = Field(
        default="reject", description="Refuse floating-point inputs holding NaN or infinity."
    )
    intra_op_threads: int = Field(
        default=0, ge=0, description="ONNX Runtime threads per operator (0: one per core)."
    )
    spin_wait: bool = Field(
        default=False,
        description=(
            "Let idle ONNX Runtime threads spin. Off by default: concurrent requests already keep"
            " the cores busy, and spinning threads take CPU from them (and burn energy)."
        ),
    )
    providers: str = Field(
        default="auto",
        description="Comma-separated execution providers, or 'auto' (accelerator, then CPU).",
    )
    shutdown_grace_seconds: float = Field(
        default=30.0, ge=0, description="How long SIGTERM waits for in-flight requests."
    )

    def load_options(self) -> dict[str, object]:
        """Keyword options for :func:`edgefleet.runtime.load_any`."""
        providers = parse_providers(self.providers)
        options: dict[str, object] = {
            "version": self.version,
            "nan_policy": self.nan_policy,
            "intra_op_threads": self.intra_op_threads,
            "spin_wait": self.spin_wait,
            "providers": providers,
        }
        if self.name:
            options["name"] = self.name
        return options
