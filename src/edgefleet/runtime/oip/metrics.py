"""Prometheus text exposition of request counts and cumulative model telemetry.

Every series only grows while a model version is loaded: counters are totals since loading, and
latency is a histogram with the fixed buckets of
:data:`~edgefleet.telemetry.totals.LATENCY_BUCKETS_SECONDS` (the same on every device, so
``sum by (le)`` across a fleet and ``histogram_quantile`` over ``rate()`` are meaningful).
Telemetry windows, which the agent closes and uploads, do not reset any of them. A new model
version starts new series (its ``version`` label differs).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from edgefleet.telemetry.totals import TelemetryTotals

__all__ = ["render_metrics"]


def _escape(value: str) -> str:
    r"""A label value escaped as the text format requires (backslash, quote, newline).

    >>> print(_escape('a"b\\c\nd'))
    a\"b\\c\nd
    """
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _num(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return repr(float(value))


def _le(bound: float) -> str:
    """A bucket bound as Prometheus writes it.

    >>> [_le(b) for b in (2.5e-05, 0.001, 1.0, 10.0, math.inf)]
    ['2.5e-05', '0.001', '1', '10', '+Inf']
    """
    return "+Inf" if math.isinf(bound) else f"{bound:g}"


def render_metrics(
    totals: Iterable[TelemetryTotals], requests: Iterable[tuple[str, str, int, int]]
) -> str:
    """Render the text format (version 0.0.4).

    ``totals`` are each served model's telemetry since it was loaded; ``requests`` are (model,
    version, successes, failures) as counted by the HTTP layer.
    """
    lines = [
        "# HELP edgefleet_requests_total Inference requests answered, by outcome.",
        "# TYPE edgefleet_requests_total counter",
    ]
    for model, version, ok, failed in requests:
        for outcome, value in (("success", ok), ("failure", failed)):
            label = _labels(model=model, version=version, outcome=outcome)
            lines.append(f"edgefleet_requests_total{label} {value}")
    rows = list(totals)
    name = "edgefleet_inference_latency_seconds"
    lines += [
        f"# HELP {name} Latency of successful model inferences since the model was loaded.",
        f"# TYPE {name} histogram",
    ]
    for t in rows:
        for bound, count in t.latency.cumulative():
            label = _labels(model=t.model, version=t.version, le=_le(bound))
            lines.append(f"{name}_bucket{label} {count}")
        base = _labels(model=t.model, version=t.version)
        lines.append(f"{name}_sum{base} {_num(t.latency.sum)}")
        lines.append(f"{name}_count{base} {t.latency.count}")
    for metric, help_text, attr in (
        ("edgefleet_inference_errors_total", "Inferences that failed while running.", "errors"),
        ("edgefleet_inputs_rejected_total", "Inferences refused for invalid inputs.", "rejected"),
    ):
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} counter"]
        lines += [
            f"{metric}{_labels(model=t.model, version=t.version)} {getattr(t, attr)}" for t in rows
        ]
    lines += [
        "# HELP edgefleet_confidence_mean Mean per-sample confidence since the model was loaded.",
        "# TYPE edgefleet_confidence_mean gauge",
    ]
    for t in rows:
        if t.confidence.count:
            label = _labels(model=t.model, version=t.version)
            lines.append(f"edgefleet_confidence_mean{label} {_num(t.confidence.mean)}")
    return "\n".join(lines) + "\n"
