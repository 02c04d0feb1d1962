"""How a model is loaded: execution providers, threads, optimisation and input policy."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import onnxruntime as ort

from edgefleet.errors import ConfigurationError
from edgefleet.runtime.calibrated import check_temperature
from edgefleet.telemetry import ConfidenceExtractor

__all__ = ["PREFERRED_PROVIDERS", "LoadOptions", "parse_providers", "resolve_providers"]

log = logging.getLogger(__name__)

# Auto-detection order: the first available accelerator, then the CPU as the fallback.
# TensorRT is left out on purpose: it builds engines for minutes on first load.
PREFERRED_PROVIDERS = (
    "CUDAExecutionProvider",
    "ROCMExecutionProvider",
    "OpenVINOExecutionProvider",
    "CoreMLExecutionProvider",
    "DmlExecutionProvider",
    "CPUExecutionProvider",
)

GraphOptimization = Literal["disable", "basic", "extended", "all"]
_OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


@dataclass(frozen=True)
class LoadOptions:
    """Options for :func:`edgefleet.runtime.load`; every field can be passed as a keyword."""

    name: str | None = None
    """Name the model is known and served under; defaults to the file name without suffix."""
    version: str = "1"
    """Version label carried in telemetry and protocol responses."""
    providers: tuple[str, ...] | Literal["auto"] = "auto"
    """Execution providers in order of preference, or ``"auto"``: the first available
    accelerator, with the CPU as fallback."""
    intra_op_threads: int = 0
    """Threads inside one operator; 0 lets ONNX Runtime choose (one per physical core)."""
    inter_op_threads: int = 0
    """Threads across independent operators; 0 lets ONNX Runtime choose."""
    spin_wait: bool = True
    """Let idle worker threads spin (lower latency) or sleep (less idle CPU and energy)."""
    graph_optimization: GraphOptimization = "all"
    """ONNX Runtime graph optimisation level."""
    optimized_cache_dir: Path | None = None
    """Where to keep the optimised graph so later loads on this device start faster."""
    nan_policy: Literal["reject", "allow"] = "allow"
    """Whether floating-point inputs may contain NaN or infinity. ``"allow"`` (as ONNX Runtime
    does) suits models that use NaN as "missing", e.g. converted tree ensembles; ``"reject"``
    refuses them with an error naming the input (``edgefleet serve`` rejects by default)."""
    confidence: ConfidenceExtractor | Literal["auto"] | None = "auto"
    """Per-sample confidence for telemetry: ``"auto"`` takes the maximum probability of a
    softmax classifier output, ``None`` records none, or any extractor."""
    calibration_temperature: float | None = None
    """Temperature scaling for the ``"auto"`` confidence: record the maximum of
    ``softmax(log(p) / T)`` instead of the raw maximum probability (``None``: raw)."""
    warmup: bool = True
    """Run one inference on zeros at load time so the slow first run is not a user's."""

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> LoadOptions:
        """Build options from keywords, naming any unknown or invalid one."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise ConfigurationError(
                f"unknown load option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        if isinstance(kwargs.get("providers"), list | tuple):
            kwargs["providers"] = tuple(kwargs["providers"])
        if kwargs.get("optimized_cache_dir") is not None:
            kwargs["optimized_cache_dir"] = Path(kwargs["optimized_cache_dir"])
        options = cls(**kwargs)
        options.validate()
        return options

    def validate(self) -> None:
        """Raise :class:`ConfigurationError` naming the first invalid field."""
        for field in ("intra_op_threads", "inter_op_threads"):
            value = getattr(self, field)
            if not isinstance(value, int) or value < 0:
                raise ConfigurationError(f"{field} must be a non-negative integer, got {value!r}")
        if self.graph_optimization not in _OPT_LEVELS:
            raise ConfigurationError(
                f"graph_optimization must be one of {', '.join(_OPT_LEVELS)}, "
                f"got {self.graph_optimization!r}"
            )
        if self.nan_policy not in ("reject", "allow"):
            raise ConfigurationError(f"nan_policy must be reject or allow, got {self.nan_policy!r}")
        if self.providers != "auto" and (
            not isinstance(self.providers, tuple) or not self.providers
        ):
            raise ConfigurationError("providers must be 'auto' or a non-empty list of names")
        if self.calibration_temperature is not None:
            check_temperature(self.calibration_temperature)
        if not (
            self.confidence in ("auto", None) or isinstance(self.confidence, ConfidenceExtractor)
        ):
            raise ConfigurationError(
                "confidence must be 'auto', None or a callable confidence extractor"
            )

    def session_options(self) -> ort.SessionOptions:
        """ONNX Runtime session options for these settings."""
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.intra_op_threads
        so.inter_op_num_threads = self.inter_op_threads
        so.graph_optimization_level = _OPT_LEVELS[self.graph_optimization]
        spin = "1" if self.spin_wait else "0"
        so.add_session_config_entry("session.intra_op.allow_spinning", spin)
        so.add_session_config_entry("session.inter_op.allow_spinning", spin)
        so.log_severity_level = 3
        return so

    def optimized_path(self, model_bytes_digest: str, providers: list[str]) -> Path | None:
        """File for the cached optimised graph, keyed by model, runtime and settings."""
        if self.optimized_cache_dir is None or self.graph_optimization == "disable":
            return None
        key = "|".join([model_bytes_digest, ort.__version__, self.graph_optimization, *providers])
        digest = hashlib.sha256(key.encode()).hexdigest()[:24]
        return self.optimized_cache_dir / f"{digest}.optimized.onnx"


def parse_providers(text: str) -> tuple[str, ...] | Literal["auto"]:
    """A command-line provider list: ``auto`` or comma-separated names.

    >>> parse_providers("CUDAExecutionProvider, CPUExecutionProvider")
    ('CUDAExecutionProvider', 'CPUExecutionProvider')
    >>> parse_providers("auto")
    'auto'
    """
    if text.strip() == "auto":
        return "auto"
    return tuple(p.strip() for p in text.split(",") if p.strip())


def resolve_providers(requested: tuple[str, ...] | Literal["auto"]) -> list[str]:
    """Turn a provider request into the list handed to ONNX Runtime.

    ``"auto"`` gives the first available accelerator followed by the CPU. An explicit list must
    name only providers this ONNX Runtime build has; otherwise the error lists those it has.
    """
    available = ort.get_available_providers()
    if requested == "auto":
        chosen = [p for p in PREFERRED_PROVIDERS if p in available and p != "CPUExecutionProvider"]
        return [*chosen[:1], "CPUExecutionProvider"]
    missing = [p for p in requested if p not in available]
    if missing:
        raise ConfigurationError(
            f"execution provider(s) {', '.join(missing)} not available in this ONNX Runtime "
            f"build; available: {', '.join(available)}"
        )
    return list(requested)
