"""Prometheus text exposition of inference statistics and model telemetry."""

from __future__ import annotations

import math
from collections.abc import Iterable

from edgefleet.telemetry import TelemetrySnapshot

__all__ = ["render_metrics"]

_QUANTILES = (0.5, 0.9, 0.99, 0.999)


def _labels(**labels: str) -> str:
    inner = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in labels.items()
    )
    return "{" + inner + "}"


def _num(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return repr(float(value))


def render_metrics(
    snapshots: Iterable[TelemetrySnapshot], requests: Iterable[tuple[str, str, int, int]]
) -> str:
    """Render the text format.

    ``snapshots`` are cumulative model telemetry; ``requests`` are (model, version,
    successes, failures) as counted by the HTTP layer.
    """
    lines = [
        "# HELP edgefleet_requests_total Inference requests answered, by outcome.",
        "# TYPE edgefleet_requests_total counter",
    ]
    for model, version, ok, failed in requests:
        for outcome, value in (("success", ok), ("failure", failed)):
            label = _labels(model=model, version=version, outcome=outcome)
            lines.append(f"edgefleet_requests_total{label} {value}")
    snaps = list(snapshots)
    lines += [
        "# HELP edgefleet_inference_latency_seconds Model inference latency (mergeable sketch).",
        "# TYPE edgefleet_inference_latency_seconds summary",
    ]
    for s in snaps:
        for q in _QUANTILES:
            label = _labels(model=s.model, version=s.version, quantile=str(q))
            lines.append(
                f"edgefleet_inference_latency_seconds{label} {_num(s.latency.quantile(q))}"
            )
        base = _labels(model=s.model, version=s.version)
        lines.append(f"edgefleet_inference_latency_seconds_sum{base} {_num(s.latency.sum)}")
        lines.append(f"edgefleet_inference_latency_seconds_count{base} {s.latency.count}")
    for name, help_text, attr in (
        ("edgefleet_inference_errors_total", "Inferences that failed while running.", "errors"),
        ("edgefleet_inputs_rejected_total", "Inferences refused for invalid inputs.", "rejected"),
    ):
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
        lines += [
            f"{name}{_labels(model=s.model, version=s.version)} {getattr(s, attr)}" for s in snaps
        ]
    lines += [
        "# HELP edgefleet_confidence_mean Mean per-sample confidence of the model's outputs.",
        "# TYPE edgefleet_confidence_mean gauge",
    ]
    for s in snaps:
        if s.confidence.count:
            label = _labels(model=s.model, version=s.version)
            lines.append(f"edgefleet_confidence_mean{label} {_num(s.confidence.mean)}")
    return "\n".join(lines) + "\n"
